"""`mscm evaluate --ranked-lists K`: a PNG grid per protocol whose first row is the query with the lowest AP
of the first trial, its top-K framed green or red by identity, with the rows listed in a JSON file."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from train_configs import tiny_config

from mscm.cli import main as cli_main


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from mscm.checkpoint import save_checkpoint
    from mscm.model import build_model

    tmp = tmp_path_factory.mktemp("ranked")
    cfg = tiny_config(tmp)
    torch.manual_seed(4)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), 16, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp / "ckpt", cfg=cfg, num_classes=16, model=model, epoch=1, metrics={})
    args = ["evaluate", "--checkpoint", str(ckpt), "--protocol", "sysu-all", "--trials", "1", "--quiet"]
    assert cli_main([*args, "--ranked-lists", "5", "--ranked-dir", str(tmp / "lists")]) == 0
    return tmp / "lists" / "ranked-sysu-all.png", cfg, ckpt


def test_the_first_row_is_the_query_with_the_lowest_ap_of_the_first_trial(grid):
    from mscm.checkpoint import load_model
    from mscm.data.build import build_dataset
    from mscm.datasets import get_protocol
    from mscm.eval import EvalRequest, extract_test_features, open_test_images
    from mscm.eval.metrics import distances, score_distmat
    from mscm.eval.protocols import GalleryFolders, candidates, records_of, trial_split

    png, cfg, ckpt = grid
    rows = json.loads(png.with_suffix(".json").read_text())["rows"]
    assert png.is_file() and len(rows) == 10 and all(len(r["gallery"]) == 5 for r in rows)
    # The trial's per-query APs recomputed through the public ranking functions:
    model, cfg, _ = load_model(ckpt, "cpu")
    images = open_test_images(build_dataset(cfg.data, progress=False), cfg.data.height, cfg.data.width)
    spec, dataset = get_protocol("sysu-all"), images.dataset
    request = EvalRequest(dataclasses.replace(cfg.eval, trials=1), protocols=("sysu-all",))
    feats = extract_test_features(model, images, request)
    g_rec = records_of(dataset, spec.gallery_modality)
    split = trial_split(spec, dataset, 0, "single", candidates(spec, dataset), GalleryFolders(g_rec, spec.gallery_cams))
    q_rec = records_of(dataset, spec.query_modality)
    d = distances(
        feats.of(spec.query_modality, False, split.query), feats.of(spec.gallery_modality, False, split.gallery)
    )
    pid = lambda rec, idx: np.array([rec[i].pid for i in idx])  # noqa: E731
    cam = lambda rec, idx: np.array([rec[i].camid for i in idx])  # noqa: E731
    scores = score_distmat(
        d.numpy(), pid(q_rec, split.query), pid(g_rec, split.gallery),
        q_cams=cam(q_rec, split.query), g_cams=cam(g_rec, split.gallery), removal=spec.removal,
    )  # fmt: skip
    lowest = float(np.nanmin(scores.ap))
    assert rows[0]["ap"] == pytest.approx(lowest, abs=1e-9) and rows[0]["kind"] == "lowest AP"
    worst = [r["ap"] for r in rows if r["kind"] == "lowest AP"]
    assert worst == sorted(worst) and min(r["ap"] for r in rows) == rows[0]["ap"]
    first = rows[0]
    assert first["correct"] == [bool(q_rec[first["query"]].pid == g_rec[j].pid) for j in first["gallery"]]


def test_each_gallery_image_is_framed_by_whether_it_is_the_same_identity(grid):
    from PIL import Image

    from mscm.eval.ranked_lists import COLOURS

    png, _, _ = grid
    rows = json.loads(png.with_suffix(".json").read_text())["rows"]
    im = np.asarray(Image.open(png).convert("RGB"))
    # Tiles are laid on a fixed pitch: find each frame's top-left corner on the first row, from the left.
    band = im[24 + 1]  # one pixel into the first row's frames
    colours = {tuple(c) for c in (COLOURS["query"], COLOURS[True], COLOURS[False])}
    starts, previous = [], None
    for px in map(tuple, band):
        if px in colours and px != previous:
            starts.append(px)
        previous = px if px in colours else None
    assert starts[0] == COLOURS["query"]
    assert starts[1:6] == [COLOURS[ok] for ok in rows[0]["correct"]]
