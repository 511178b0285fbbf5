"""Protocols of docs/protocols.md: seeded gallery draws exactly as
the reference data_manager makes them, query/gallery selection, removal rules and trials."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from mscm.datasets import DATASETS, PROTOCOL_SPECS, get_protocol
from mscm.datasets.records import ImageRecord, Modality, VIReIDDataset
from mscm.eval.metrics import evaluate_features
from mscm.eval.protocols import candidates, draw_gallery, trial_split
from mscm.eval.runner import evaluate_protocol

VIS, IR = Modality.VISIBLE, Modality.INFRARED


def _records(root: str, modality: Modality, layout: dict[tuple[int, int], int], sub: str = "") -> list[ImageRecord]:
    """Records for {(pid, cam): n_images}, paths like the real layout root/[sub/]camC/PPPP/NNNN.jpg."""
    out = []
    for (pid, cam), n in sorted(layout.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        for k in range(n):
            out.append(
                ImageRecord(os.path.join(root, sub, f"cam{cam}", f"{pid:04d}", f"{k:04d}.jpg"), pid, cam, modality)
            )
    return out


def _dataset(name: str, vis: dict, ir: dict, root: str = "/data") -> VIReIDDataset:
    subs = {"llcm": ("test_vis", "test_nir")}.get(name, ("", ""))
    return VIReIDDataset(name, root, [], [], _records(root, VIS, vis, subs[0]), _records(root, IR, ir, subs[1]), 0)


def _sysu(rng: np.random.Generator, ids=(1, 2, 5, 12, 40), min_n=1, max_n=6) -> VIReIDDataset:
    vis = {(p, c): int(rng.integers(min_n, max_n)) for p in ids for c in (1, 2, 4, 5) if rng.random() > 0.2}
    ir = {(p, c): int(rng.integers(1, 4)) for p in ids for c in (3, 6)}
    return _dataset("sysu", vis, ir)


def _reference_sysu_gallery(data_path: str, ids: list[int], cams: list[str], trial: int, multi: bool) -> list[str]:
    """The lineage's process_gallery_sysu, as docs/protocols.md describes it, on real folders."""
    random.seed(trial)
    files = []
    for pid in sorted(f"{x:04d}" for x in ids):
        for cam in cams:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                new_files = sorted([img_dir + "/" + i for i in os.listdir(img_dir)])
                if multi:
                    files.extend(random.sample(new_files, 10))
                else:
                    files.append(random.choice(new_files))
    return files


def test_protocol_table_matches_the_schema():
    assert set(PROTOCOL_SPECS) == {p.name for d in DATASETS.values() for p in d.protocols}
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("sysu-outdoor")


@pytest.mark.parametrize("multi", [False, True])
def test_gallery_draw_reproduces_the_reference(tmp_path, multi):
    rng = np.random.default_rng(0)
    ids = [3, 1, 20, 7, 100]
    layout = {}
    for pid in ids:
        for cam in (1, 2, 4, 5):
            if rng.random() < 0.25:
                continue  # some identities have no folder in some cameras
            n = int(rng.integers(10, 14)) if multi else int(rng.integers(1, 8))
            layout[(pid, cam)] = n
            folder = tmp_path / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for k in rng.permutation(n):  # creation order differs from sorted order
                (folder / f"{k:04d}.jpg").touch()
    records = []
    for pid, cam in layout:
        folder = os.path.join(str(tmp_path), f"cam{cam}", f"{pid:04d}")
        records += [ImageRecord(folder + "/" + f, pid, cam, VIS) for f in os.listdir(folder)]
    rng.shuffle(records)  # the reader's record order must not matter
    for cams in ((1, 2, 4, 5), (1, 2)):
        for trial in range(4):
            want = _reference_sysu_gallery(str(tmp_path), ids, [f"cam{c}" for c in cams], trial, multi)
            got = draw_gallery(records, cams, trial, "multi" if multi else "single")
            assert [records[i].path for i in got] == want


def test_draws_leave_global_random_alone_and_depend_on_the_trial():
    ds = _sysu(np.random.default_rng(1), max_n=9)
    random.seed(123)
    before = random.random()
    random.seed(123)
    a = draw_gallery(ds.test_visible, (1, 2, 4, 5), 0)
    assert random.random() == before
    assert np.array_equal(a, draw_gallery(ds.test_visible, (1, 2, 4, 5), 0))
    assert any(not np.array_equal(a, draw_gallery(ds.test_visible, (1, 2, 4, 5), t)) for t in range(1, 5))


def test_sysu_splits():
    ds = _sysu(np.random.default_rng(2))
    folders = {(r.pid, r.camid) for r in ds.test_visible}
    for name, cams in (("sysu-all", {1, 2, 4, 5}), ("sysu-indoor", {1, 2})):
        spec = get_protocol(name)
        split = trial_split(spec, ds, trial=3)
        # Query: every infrared image of cams 3 and 6, in both modes.
        assert sorted(split.query) == list(range(len(ds.test_infrared)))
        # Single-shot gallery: exactly one image per (id, camera) folder of the mode's cameras.
        drawn = [(ds.test_visible[i].pid, ds.test_visible[i].camid) for i in split.gallery]
        assert sorted(drawn) == sorted(f for f in folders if f[1] in cams)
    with pytest.raises(ValueError, match="gallery mode"):
        trial_split(get_protocol("sysu-all"), ds, 0, "few")  # type: ignore[arg-type]


def _random_features(n: int, dim: int, pids: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
    centres = rng.standard_normal((int(pids.max()) + 1, dim))
    x = centres[pids] + 1.5 * rng.standard_normal((n, dim))
    return torch.nn.functional.normalize(torch.from_numpy(x.astype(np.float32)), dim=1)


@pytest.mark.parametrize("protocol", ["sysu-all", "sysu-indoor", "llcm-i2v", "llcm-v2i"])
def test_evaluate_protocol_equals_direct_metrics_per_trial(protocol):
    rng = np.random.default_rng(3)
    if protocol.startswith("sysu"):
        ds = _sysu(rng)
    else:
        ids = (4, 8, 15, 16)
        vis = {(p, c): int(rng.integers(1, 4)) for p in ids for c in range(1, 10) if rng.random() > 0.4}
        nir = {(p, c): int(rng.integers(1, 4)) for p in ids for c in (1, 2, 4, 5, 6, 7, 8, 9) if rng.random() > 0.4}
        ds = _dataset("llcm", vis, nir)
    spec = get_protocol(protocol)
    pool = candidates(spec, ds)
    q_rec = ds.test_infrared if spec.query_modality == IR else ds.test_visible
    g_rec = ds.test_visible if spec.gallery_modality == VIS else ds.test_infrared
    qf = _random_features(len(pool.query), 16, np.array([q_rec[i].pid for i in pool.query]), rng)
    gf = _random_features(len(pool.gallery), 16, np.array([g_rec[i].pid for i in pool.gallery]), rng)
    shared = evaluate_protocol(protocol, ds, qf, gf, trials=4)
    per_trial = evaluate_protocol(protocol, ds, qf, gf, trials=4, memory_budget=1)  # no shared matrix
    assert [t.trial for t in shared.trials] == [0, 1, 2, 3]
    g_pos = {int(i): k for k, i in enumerate(pool.gallery)}
    for t, a, b in zip(range(4), shared.trials, per_trial.trials):
        assert a.metrics == pytest.approx(b.metrics)
        split = trial_split(spec, ds, t)
        q_pos = np.searchsorted(pool.query, split.query)
        gi = [g_pos[int(i)] for i in split.gallery]
        m = evaluate_features(
            qf[q_pos],
            gf[gi],
            [q_rec[i].pid for i in split.query],
            [g_rec[i].pid for i in split.gallery],
            q_cams=[q_rec[i].camid for i in split.query],
            g_cams=[g_rec[i].camid for i in split.gallery],
            removal=spec.removal,
            cmc=spec.cmc,
        )
        assert a.metrics == pytest.approx(m.as_dict())
        assert (a.num_query, a.num_gallery) == (len(split.query), len(split.gallery))


def test_cam3_queries_lose_cam2_gallery_images():
    # One identity, gallery = one image in each of cams 1 and 2; the cam2 image equals the query.
    ds = _dataset("sysu", {(1, 1): 1, (1, 2): 1, (2, 1): 1}, {(1, 3): 1, (1, 6): 1})
    g_order = [(r.pid, r.camid) for r in ds.test_visible]
    e = {(1, 2): [1.0, 0.0, 0.0], (1, 1): [0.0, 1.0, 0.0], (2, 1): [0.6, 0.8, 0.0]}
    gf = torch.tensor([e[k] for k in g_order])
    qf = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # cam3 query, cam6 query
    r = evaluate_protocol("sysu-all", ds, qf, gf, trials=1)
    # cam6 query: ranking [pid1 cam2 (1.0), pid2 (0.6), pid1 cam1 (0.0)]: hits at ranks 1 and 3,
    # AP = (1 + 2/3) / 2. cam3 query: cam2 image removed, kept [pid2, pid1 cam1]: AP 1/2, no rank-1.
    assert r.trials[0].metrics["rank1"] == pytest.approx(0.5)
    assert r.trials[0].metrics["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1 / 2) / 2)


def test_regdb_uses_the_whole_gallery_once_with_standard_cmc():
    ids = (1, 2, 3)
    ds = _dataset("regdb", {(p, 1): 3 for p in ids}, {(p, 2): 3 for p in ids})
    rng = np.random.default_rng(4)
    pids = np.repeat(ids, 3)
    vf, tf = _random_features(9, 8, pids, rng), _random_features(9, 8, pids, rng)
    r = evaluate_protocol("regdb-v2t", ds, vf, tf, trials=10)
    assert len(r.trials) == 1 and r.cmc_kind == "standard"
    assert (r.trials[0].num_query, r.trials[0].num_gallery) == (9, 9)
    m = evaluate_features(vf, tf, pids, pids, cmc="standard")
    assert r.trials[0].metrics == pytest.approx(m.as_dict())
    t2v = evaluate_protocol("regdb-t2v", ds, tf, vf, trials=1)
    assert t2v.trials[0].metrics == pytest.approx(evaluate_features(tf, vf, pids, pids, cmc="standard").as_dict())
    with pytest.raises(ValueError, match="whole gallery"):
        evaluate_protocol("regdb-v2t", ds, vf, tf, gallery_mode="multi")


def test_llcm_same_camera_removal_and_cameras():
    # nir query of pid 1 in cam2; vis gallery: pid 1 in cam2 (identical feature) and cam5, pid 2 in cam2.
    ds = _dataset("llcm", {(1, 2): 1, (1, 5): 1, (2, 2): 1}, {(1, 2): 1, (2, 3): 1})
    spec = get_protocol("llcm-i2v")
    pool = candidates(spec, ds)
    assert all(ds.test_infrared[i].camid != 3 for i in pool.query)  # no nir cam3 in LLCM's list
    g_key = [(ds.test_visible[i].pid, ds.test_visible[i].camid) for i in pool.gallery]
    e = {(1, 2): [1.0, 0.0], (2, 2): [0.8, 0.6], (1, 5): [0.0, 1.0]}
    gf = torch.tensor([e[k] for k in g_key])
    qf = torch.tensor([[1.0, 0.0]])
    r = evaluate_protocol("llcm-i2v", ds, qf, gf, trials=2)
    # Same pid and camera removed: kept [pid2 cam2 (0.8), pid1 cam5 (0.0)] -> rank 2, AP 1/2.
    for t in r.trials:
        assert t.metrics["rank1"] == 0.0 and t.metrics["rank5"] == 1.0 and t.metrics["mAP"] == pytest.approx(0.5)


def test_mismatches_are_reported():
    ds = _sysu(np.random.default_rng(5))
    with pytest.raises(ValueError, match="protocol 'regdb-v2t' is for regdb"):
        evaluate_protocol("regdb-v2t", ds, torch.zeros(1, 2), torch.zeros(1, 2))
    pool = candidates(get_protocol("sysu-all"), ds)
    with pytest.raises(ValueError, match="one row per sysu-all gallery candidate"):
        evaluate_protocol("sysu-all", ds, torch.zeros(len(pool.query), 2), torch.zeros(1, 2))
