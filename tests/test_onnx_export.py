"""`mscm export --format onnx` checked with ONNX Runtime against PyTorch: the embeddings agree to 1e-4 on
batches other than the traced one and on both modalities, the top-10 rankings of the synthetic test
split are identical, and `mscm retrieve --model model.onnx` ranks through ONNX Runtime without importing
mscm's model code."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from processes import child_env
from train_configs import tiny_config

from mscm.cli import main as cli_main

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install -e '.[onnx]')")
pytest.importorskip("onnxscript", reason="the onnx extra is not installed (pip install -e '.[onnx]')")

NUM_CLASSES = 16


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A seeded checkpoint on the synthetic SYSU layout, exported with the CLI."""
    from mscm.checkpoint import save_checkpoint
    from mscm.model import build_model

    tmp = tmp_path_factory.mktemp("onnx")
    cfg = tiny_config(tmp)
    torch.manual_seed(5)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), NUM_CLASSES, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp / "ckpt", cfg=cfg, num_classes=NUM_CLASSES, model=model, epoch=1, metrics={})
    out = tmp / "model.onnx"
    assert cli_main(["export", "--model", str(ckpt), "--out", str(out), "--format", "onnx"]) == 0
    return ckpt, out, cfg, tmp


def test_the_onnx_file_has_a_dynamic_batch_opset_18_and_its_input_size(exported):
    import onnx

    from mscm.registry.onnx_model import OPSET

    _, out, cfg, _ = exported
    proto = onnx.load(str(out))
    assert {o.domain: o.version for o in proto.opset_import}[""] == OPSET == 18
    images = proto.graph.input[0].type.tensor_type.shape.dim
    assert images[0].dim_param and [d.dim_value for d in images[1:]] == [cfg.data.height, cfg.data.width, 3]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert (int(meta["height"]), int(meta["width"])) == (cfg.data.height, cfg.data.width)


def test_onnx_runtime_gives_the_pytorch_embeddings_on_other_batches_and_both_modalities(exported):
    from mscm.registry.export import example_inputs
    from mscm.registry.onnx_model import OnnxRunner
    from mscm.tracking.model_logging import embedding_model_from_checkpoint

    ckpt, out, cfg, _ = exported
    runner = OnnxRunner(out)
    reference, _, _ = embedding_model_from_checkpoint(ckpt)
    for batch in (1, 5, 17):  # traced with 2
        images, _ = example_inputs(batch, cfg.data.height, cfg.data.width, seed=batch)
        for modality in (0, 1):
            mods = torch.full((batch,), modality, dtype=torch.int64)
            with torch.inference_mode():
                want = reference(images, mods)
            assert (runner(images, mods) - want).abs().max() <= 1e-4, (batch, modality)


def test_the_top_10_rankings_of_the_synthetic_test_split_are_identical(exported):
    """Identical wherever a ranking is decided by more than float noise. This untrained model's cosine
    scores all lie within about 0.05 of each other, so some neighbours in a top-10 differ by 2e-7, below
    the 1.4e-6 the two runtimes' scores differ by: such a pair may swap, and only such a pair may."""
    from mscm.data.build import build_dataset
    from mscm.datasets.records import Modality
    from mscm.eval import open_test_images
    from mscm.registry.onnx_model import OnnxRunner
    from mscm.tracking.model_logging import embedding_model_from_checkpoint

    ckpt, out, cfg, tmp = exported
    images = open_test_images(build_dataset(cfg.data, progress=False), cfg.data.height, cfg.data.width)
    query = torch.from_numpy(np.stack(list(images.infrared)))  # infrared queries, visible gallery (SYSU all-search)
    gallery = torch.from_numpy(np.stack(list(images.visible)))
    reference, _, _ = embedding_model_from_checkpoint(ckpt)
    runner = OnnxRunner(out)

    def scores(embed) -> np.ndarray:
        q = embed(query, torch.full((len(query),), int(Modality.INFRARED)))
        g = embed(gallery, torch.full((len(gallery),), int(Modality.VISIBLE)))
        return (q @ g.T).numpy()

    with torch.inference_mode():
        want_scores = scores(reference)
    got_scores = scores(runner)
    noise = 2 * float(np.abs(got_scores - want_scores).max())  # a pair closer than this can swap
    want = np.argsort(-want_scores, axis=1, kind="stable")[:, :10]
    got = np.argsort(-got_scores, axis=1, kind="stable")[:, :10]
    top11 = -np.sort(-want_scores, axis=1)[:, :11]
    decided = (-np.diff(top11, axis=1) > noise).all(axis=1)  # no near-tie anywhere in the top-10 (and 11th)
    assert len(query) >= 20 and decided.sum() >= len(query) // 2, (int(decided.sum()), noise)
    assert (got[decided] == want[decided]).all(), "a ranking decided by more than float noise differs"
    rows = np.arange(len(query))[:, None]
    assert (np.abs(want_scores[rows, got] - want_scores[rows, want]) <= noise).all(), "a swap beyond a near-tie"


def test_retrieve_with_the_onnx_file_uses_onnx_runtime_without_the_model_code(exported, tmp_path):
    """A child process: after `mscm retrieve --model model.onnx`, no mscm.model module was imported."""
    from PIL import Image

    _, out, cfg, _ = exported
    rng = np.random.default_rng(0)
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (80, 40, 3), dtype=np.uint8)).save(gallery / f"g{i}.png")
    query = gallery / "g2.png"
    probe = (
        "import sys; from mscm.cli import main; code = main(sys.argv[1:]); "
        "leaked = sorted(m for m in sys.modules if m.startswith('mscm.model')); "
        "print('LEAKED', leaked); sys.exit(code)"
    )
    args = ["retrieve", "--model", str(out), "--query", str(query), "--modality", "visible"]
    args += ["--gallery", str(gallery), "--gallery-modality", "visible", "--out", str(tmp_path / "r"), "--top", "4"]
    done = subprocess.run([sys.executable, "-c", probe, *args], env=child_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LEAKED []" in done.stdout, done.stdout
    ranked = json.loads((tmp_path / "r" / "ranked.json").read_text())
    first = ranked["matches"][0] if isinstance(ranked, dict) else ranked[0]["matches"][0]
    assert first["path"].endswith("g2.png") and first["score"] == pytest.approx(1.0, abs=1e-5)


def test_a_file_that_is_not_onnx_is_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    args = ["retrieve", "--model", str(bad), "--query", str(bad), "--modality", "visible", "--gallery", str(tmp_path)]
    assert cli_main([*args, "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ONNX Runtime cannot load it" in err[0], err
    assert not (tmp_path / "r").exists()
