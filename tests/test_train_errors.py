"""An error a worker hits after the preflight (an image whose header is sound but whose pixels do not
decode) ends the run at once: Ray Train does not retry it, and the driver reports the worker's own
error as one line, without a traceback from any process."""

from __future__ import annotations

import io
import os
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from data_fixtures import copy_dataset, synthetic

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent


def undecodable_png(width: int = 32, height: int = 64) -> bytes:
    """A PNG whose chunks (and their checksums) are sound but whose pixel stream is noise: it passes
    ``PIL.Image.verify`` and fails to decode."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buf, "PNG")
    data, pos = bytearray(buf.getvalue()), 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = bytes(data[pos + 4 : pos + 8])
        if kind == b"IDAT":
            body = bytes(random.Random(0).getrandbits(8) for _ in range(length))
            data[pos + 8 : pos + 8 + length] = body
            data[pos + 8 + length : pos + 12 + length] = struct.pack(">I", zlib.crc32(kind + body))
        pos += 12 + length
    return bytes(data)


def _tracebacks_other_than_rays_ignorable_ones(output: str) -> list[str]:
    """Traceback lines, less those Ray prints for its own transient hiccups that it says are "safe to
    ignore" (seen with the CPUs saturated: the Train controller's resource request timed out once)."""
    lines, found = output.splitlines(), []
    for n, line in enumerate(lines):
        if "Traceback" in line and not (n and "safe to ignore" in lines[n - 1]):
            found.append(line)
    return found


def test_undecodable_image_in_a_worker_is_not_retried_and_reported_once(tmp_path_factory, tmp_path):
    from mscm.preflight.images import image_problem

    root = copy_dataset(synthetic(tmp_path_factory, "sysu", identities=24), tmp_path / "sysu")
    image = sorted((root / "cam1").glob("*/*.jpg"))[0]
    image.write_bytes(undecodable_png())
    assert image_problem(str(image)) is None  # the header check passes: only decoding finds it

    env = {**os.environ, "MSCM_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO / "platform")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mscm",
            "train",
            "-c",
            "smoke",
            "--set",
            f"data.root={root}",
            "--set",
            "data.height=64",
            "--set",
            "data.width=32",
            "--set",
            "model.alb_heads=2",
            "--set",
            "train.max_failures=3",
            "--set",
            "tracking.system_metrics=false",
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--set",
            f"train.storage_path={tmp_path / 'ray'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("mscm train: error: ")]
    assert errors == [
        f"mscm train: error: cannot read image {image}: OSError: broken data stream when reading image file"
    ], output
    assert "hint: --set data.skip_corrupt=true" in proc.stderr
    assert not _tracebacks_other_than_rays_ignorable_ones(output), output
    assert output.count("not retried") == 1, output  # one attempt: max_failures=3 did not apply
    assert "RETRY" not in output, output
