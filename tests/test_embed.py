"""`mscm embed`: a folder's embeddings with their file names and the model in one .npz, equal to what
`mscm retrieve` computes; bad input is one line, exit 2, nothing written."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from PIL import Image
from train_configs import tiny_config

from mscm.cli import main as cli_main


def test_embed_writes_paths_embeddings_and_the_model(tmp_path, capsys):
    from mscm.checkpoint import save_checkpoint
    from mscm.datasets.records import Modality
    from mscm.model import build_model
    from mscm.registry.retrieve import embed_files
    from mscm.registry.source import load_embedder

    cfg = tiny_config(tmp_path)
    torch.manual_seed(6)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), 16, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp_path / "ckpt", cfg=cfg, num_classes=16, model=model, epoch=1, metrics={})
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg", "c.png"):
        Image.fromarray(rng.integers(0, 256, (70, 30, 3), dtype=np.uint8)).save(images / name)
    (images / "broken.png").write_bytes(b"not an image")
    out = tmp_path / "features.npz"
    args = ["embed", "--model", str(ckpt), "--images", str(images), "--modality", "infrared", "--quiet"]
    assert cli_main([*args, "--out", str(out)]) == 0
    assert "3 embeddings of" in capsys.readouterr().out
    got = np.load(out)
    assert list(got["paths"]) == ["a.png", "c.png", "sub/b.jpg"]
    assert str(got["modality"]) == "infrared" and str(got["model"]) == str(ckpt)
    assert len(got["skipped"]) == 1 and "broken.png" in got["skipped"][0]
    files = [images / p for p in got["paths"]]
    want, _, _ = embed_files(load_embedder(str(ckpt)), files, Modality.INFRARED, progress=False)
    assert np.abs(got["embeddings"] - want.numpy()).max() == 0.0


def test_bad_modality_or_output_is_one_line_and_nothing_is_written(tmp_path, capsys):
    for extra, message in (
        (["--modality", "thermalish", "--out", str(tmp_path / "f.npz")], "unknown modality 'thermalish'"),
        (["--modality", "visible", "--out", str(tmp_path / "f.parquet")], "must end in .npz"),
    ):
        code = cli_main(["embed", "--model", str(tmp_path / "nope"), "--images", str(tmp_path), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], err
    assert not list(tmp_path.glob("f.*"))
