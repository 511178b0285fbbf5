"""The shipped search spaces travel inside the installed package (``ray submit`` copies only the job
script to the head node, so a space name must resolve without the checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mscm.tune.spaces import space_dirs

REPO = Path(__file__).resolve().parents[1]


def test_package_folder_links_to_the_top_level_spaces():
    link = REPO / "platform" / "mscm" / "search_spaces"
    assert link.is_symlink() and link.resolve() == (REPO / "search_spaces").resolve()
    assert any(d.resolve() == (REPO / "search_spaces").resolve() for d in space_dirs())


def test_wheel_contains_the_spaces_as_files(tmp_path):
    pytest.importorskip("setuptools", minversion="68")  # pyproject's build requirement, no download
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(REPO / "pyproject.toml", src)
    for folder in ("platform", "search_spaces"):  # a copy, so the build leaves no build/ in the checkout
        shutil.copytree(
            REPO / folder, src / folder, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    (src / "README.md").write_text("mscm\n")
    out = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(src), "-w", str(out), "--no-deps", "--no-build-isolation", "-q"],
        check=True,
        capture_output=True,
        text=True,
    )
    (wheel,) = out.glob("mscm-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {Path(n).name: zf.read(n) for n in zf.namelist() if n.startswith("mscm/search_spaces/")}
    expected = sorted(p.name for p in (REPO / "search_spaces").glob("*.yaml"))
    assert sorted(shipped) == expected and {"mimb.yaml", "smoke.yaml"} <= set(shipped)
    for name, data in shipped.items():  # real file contents, not links
        assert data == (REPO / "search_spaces" / name).read_bytes()
