"""The identity sampler (P ids x K visible + K infrared per step, label-aligned, DDP-aware, epoch
length per docs/model.md, "The training recipe") and the training loader built on the image caches."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from data_fixtures import HEIGHT, WIDTH, synthetic

from mscm.config.schema import DataConfig
from mscm.data import read_dataset
from mscm.data.cache import ImageCache
from mscm.data.loader import TrainLoader, build_train_loader
from mscm.data.sampler import IdentitySampler


def labels(counts: dict[int, int], seed: int = 0) -> list[int]:
    """A shuffled label list with ``counts[label]`` images per label."""
    out = [lab for lab, n in counts.items() for _ in range(n)]
    np.random.default_rng(seed).shuffle(out)
    return out


VIS = labels({c: 3 + c % 5 for c in range(20)}, seed=1)
IR = labels({c: 2 + c % 3 for c in range(20)}, seed=2)


def steps(sampler: IdentitySampler) -> list:
    return list(iter(sampler))


def test_each_step_is_p_ids_times_k_aligned_across_modalities():
    s = IdentitySampler(VIS, IR, 6, 4, seed=0)
    vis, ir = np.array(VIS), np.array(IR)
    for v, i, lab in steps(s):
        assert v.shape == i.shape == lab.shape == (24,)
        assert np.array_equal(vis[v], lab) and np.array_equal(ir[i], lab)  # label-aligned
        assert np.array_equal(lab, np.repeat(lab[::4], 4))  # id1 x K, id2 x K, ...
        assert len(set(lab.tolist())) == 6  # P distinct ids


def test_defaults_are_the_papers_p6_k4():
    cfg = DataConfig()
    assert (cfg.identities_per_batch, cfg.instances_per_identity) == (6, 4)


def test_epoch_length_follows_the_reference_and_is_configurable():
    s = IdentitySampler(VIS, IR, 6, 4)
    assert len(s) == int(max(len(VIS), len(IR)) / 24) + 1 == len(steps(s))
    s = IdentitySampler(VIS, IR, 3, 2, iterations_per_epoch=17)
    assert len(s) == 17 == len(steps(s))


def test_instances_are_drawn_with_replacement_and_cover_every_image():
    # identity 0 has 1 visible image: K = 4 draws must repeat it
    vis = [0] + labels({c: 6 for c in range(1, 8)})
    ir = labels({c: 5 for c in range(8)})
    s = IdentitySampler(vis, ir, 4, 4, iterations_per_epoch=400, seed=3)
    seen_vis, seen_ir, ids = Counter(), Counter(), Counter()
    for v, i, lab in steps(s):
        seen_vis.update(v.tolist()), seen_ir.update(i.tolist()), ids.update(lab[::4].tolist())
    assert set(seen_vis) == set(range(len(vis))) and set(seen_ir) == set(range(len(ir)))
    freq = np.array([ids[c] for c in range(8)]) / (400 * 4)
    assert np.all(np.abs(freq - 1 / 8) < 0.03), freq  # identities drawn uniformly


def test_same_seed_and_epoch_same_steps_other_epoch_differs():
    a, b = IdentitySampler(VIS, IR, 6, 4, seed=5), IdentitySampler(VIS, IR, 6, 4, seed=5)
    flat = lambda ss: np.concatenate([np.concatenate(x) for x in ss])  # noqa: E731
    assert np.array_equal(flat(steps(a)), flat(steps(b)))
    b.set_epoch(1)
    assert not np.array_equal(flat(steps(a)), flat(steps(b)))
    c = IdentitySampler(VIS, IR, 6, 4, seed=6)
    assert not np.array_equal(flat(steps(a)), flat(steps(c)))
    # state_dict restores the position (epoch) and seed
    b2 = IdentitySampler(VIS, IR, 6, 4, seed=0)
    b2.load_state_dict(b.state_dict())
    assert np.array_equal(flat(steps(b2)), flat(steps(b)))


@pytest.mark.parametrize("world", [2, 3])
def test_ddp_ranks_take_different_identities_and_the_same_number_of_steps(world):
    samplers = [IdentitySampler(VIS, IR, 6, 2, rank=r, world_size=world, seed=1) for r in range(world)]
    global_steps = int(max(len(VIS), len(IR)) / 12) + 1
    assert {len(s) for s in samplers} == {-(-global_steps // world)}
    per_rank = [steps(s) for s in samplers]
    assert {len(p) for p in per_rank} == {len(samplers[0])}
    for step in zip(*per_rank):
        ids = [set(lab.tolist()) for _, _, lab in step]
        assert sum(len(x) for x in ids) == len(set().union(*ids)) == 6 * world  # disjoint across ranks
    assert all(not s.warnings for s in samplers)


def test_ddp_with_too_few_identities_still_runs_equal_steps_and_warns():
    vis, ir = labels({c: 4 for c in range(8)}), labels({c: 4 for c in range(8)})
    samplers = [IdentitySampler(vis, ir, 6, 2, rank=r, world_size=2) for r in range(2)]
    assert len(steps(samplers[0])) == len(steps(samplers[1]))
    assert any("may share identities" in w for w in samplers[0].warnings)
    for _, _, lab in steps(samplers[1]):
        assert len(set(lab.tolist())) == 6


def test_labels_missing_a_modality_are_never_sampled():
    vis = labels({c: 4 for c in range(10)})
    ir = labels({c: 4 for c in range(9)})  # label 9 has no infrared image
    s = IdentitySampler(vis, ir, 3, 2, iterations_per_epoch=200)
    assert any("[9]" in w for w in s.warnings)
    assert all(9 not in lab for _, _, lab in steps(s))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(identities_per_batch=11), "a batch needs identities_per_batch = 11"),
        (dict(rank=2, world_size=2), "rank 2 is not in 0..1"),
        (dict(instances_per_identity=0), ">= 1"),
    ],
)
def test_bad_arguments(kwargs, message):
    args = dict(identities_per_batch=4, instances_per_identity=2) | kwargs
    with pytest.raises(ValueError, match=message):
        IdentitySampler(labels({c: 2 for c in range(10)}), labels({c: 2 for c in range(10)}), **args)


# -- the training loader ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def caches(tmp_path_factory):
    ds = read_dataset("llcm", synthetic(tmp_path_factory, "llcm"))
    d = tmp_path_factory.mktemp("cache")
    return (
        ds,
        ImageCache(ds.train_visible, HEIGHT, WIDTH, d, progress=False),
        ImageCache(ds.train_infrared, HEIGHT, WIDTH, d, progress=False),
    )


def cfg(**kw) -> DataConfig:
    return DataConfig(
        **(
            dict(
                dataset="llcm",
                height=HEIGHT,
                width=WIDTH,
                identities_per_batch=3,
                instances_per_identity=2,
                loader_workers=0,
            )
            | kw
        )
    )


@pytest.mark.parametrize("workers", [0, 1])
def test_loader_yields_cached_images_with_aligned_labels(caches, workers):
    ds, vis, ir = caches
    loader = build_train_loader(vis, ir, ds, cfg(iterations_per_epoch=4, loader_workers=workers), seed=2)
    assert isinstance(loader, TrainLoader) and len(loader) == 4 and loader.batch_size == 6
    loader.set_epoch(3)
    expected = list(iter(loader.sampler))
    got = list(loader)
    assert len(got) == 4
    for (v_img, i_img, lab), (v_idx, i_idx, exp_lab) in zip(got, expected):
        assert v_img.dtype == torch.uint8 and v_img.shape == (6, HEIGHT, WIDTH, 3) and i_img.shape == v_img.shape
        assert torch.equal(lab, torch.from_numpy(exp_lab))
        assert np.array_equal(v_img.numpy(), vis.take(v_idx)) and np.array_equal(i_img.numpy(), ir.take(i_idx))
        assert [vis.records[k].label for k in v_idx] == lab.tolist() == [ir.records[k].label for k in i_idx]


def test_loader_state_round_trip(caches):
    ds, vis, ir = caches
    a = build_train_loader(vis, ir, ds, cfg(iterations_per_epoch=3), seed=4)
    a.set_epoch(7)
    b = build_train_loader(vis, ir, ds, cfg(iterations_per_epoch=3), seed=0)
    b.load_state_dict(a.state_dict())
    for (x1, y1, l1), (x2, y2, l2) in zip(a, b):
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and torch.equal(l1, l2)


def test_loader_ranks_partition_the_epoch(caches):
    ds, vis, ir = caches
    loaders = [
        build_train_loader(vis, ir, ds, cfg(iterations_per_epoch=5), rank=r, world_size=2, seed=1) for r in range(2)
    ]
    assert len(loaders[0]) == len(loaders[1]) == 3
    for (_, _, l0), (_, _, l1) in zip(*loaders):
        assert not set(l0.tolist()) & set(l1.tolist())


def test_loader_refuses_wrong_resolution_or_test_caches(caches, tmp_path):
    ds, vis, ir = caches
    with pytest.raises(ValueError, match=f"visible training cache is {HEIGHT}x{WIDTH}"):
        build_train_loader(vis, ir, ds, DataConfig(dataset="llcm", height=32, width=16))
    test_cache = ImageCache(ds.test_visible, HEIGHT, WIDTH, tmp_path, progress=False)
    with pytest.raises(ValueError, match="built from the test records"):
        build_train_loader(test_cache, ir, ds, cfg())
