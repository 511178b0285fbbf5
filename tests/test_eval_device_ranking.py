"""The device ranking (mscm.eval.device_ranking, used when features are on a GPU) gives the CPU
ranker's scores exactly. Run here on CPU tensors: integer-valued features make every distance exact
in float32 on both paths and make ties common, the case where the two paths work differently."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mscm.eval.device_ranking import score_on_device
from mscm.eval.metrics import removal_mask, score_features
from mscm.eval.reference import reference_scores

EXACT = ("valid", "num_pos", "first_rank", "dedup_rank")


def _case(seed: int, nq: int = 40, ng: int = 90, ids: int = 12):
    rng = np.random.default_rng(seed)
    q = torch.from_numpy(rng.integers(-2, 3, (nq, 6)).astype(np.float32))
    g = torch.from_numpy(rng.integers(-2, 3, (ng, 6)).astype(np.float32))
    q_pids = rng.integers(0, ids + 2, nq)  # some query identities are not in the gallery
    g_pids = rng.integers(0, ids, ng)  # not grouped: the CPU ranker permutes, the device one does not
    q_cams, g_cams = rng.integers(1, 7, nq), rng.integers(1, 7, ng)
    return q, g, q_pids, g_pids, q_cams, g_cams


def _assert_same(a, b):
    assert a.num_gallery == b.num_gallery
    for f in EXACT:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    for f in ("ap", "inp"):  # same ranks; float64 sums in another order differ in the last bit
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-13, atol=0, err_msg=f)


@pytest.mark.parametrize("removal", ["none", "sysu", "same-camera", "mask"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_device_ranking_equals_the_cpu_ranker_and_the_reference(removal, seed):
    q, g, q_pids, g_pids, q_cams, g_cams = _case(seed)
    if removal == "mask":
        rule = np.random.default_rng(seed + 10).random((len(q), len(g))) < 0.2
    else:
        rule = removal
    kwargs = dict(q_cams=q_cams, g_cams=g_cams, removal=rule)
    cpu = score_features(q, g, q_pids, g_pids, on_device=False, **kwargs)
    device = score_features(q, g, q_pids, g_pids, on_device=True, **kwargs)
    _assert_same(cpu, device)
    mask = rule if removal == "mask" else removal_mask(removal, q_pids, q_cams, g_pids, g_cams)
    ref = reference_scores(-(q @ g.T).numpy(), q_pids, g_pids, mask)
    _assert_same(ref, device)
    assert (~device.valid).any() and device.valid.any()  # both kinds of query are exercised


def test_device_blocks_do_not_change_the_scores():
    q, g, q_pids, g_pids, q_cams, g_cams = _case(5, nq=33)
    one = score_on_device(q, g, q_pids, g_pids, q_cams, g_cams, "same-camera")
    many = score_on_device(q, g, q_pids, g_pids, q_cams, g_cams, "same-camera", budget=1)  # a row per block
    _assert_same(one, many)


def test_device_ranking_refuses_non_finite_features():
    q, g, q_pids, g_pids, _, _ = _case(0)
    q[3, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        score_features(q, g, q_pids, g_pids, on_device=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_features_on_a_gpu_rank_there_with_the_same_scores():
    q, g, q_pids, g_pids, q_cams, g_cams = _case(3)
    cpu = score_features(q, g, q_pids, g_pids, q_cams=q_cams, g_cams=g_cams, removal="sysu")
    gpu = score_features(q.cuda(), g.cuda(), q_pids, g_pids, q_cams=q_cams, g_cams=g_cams, removal="sysu")
    _assert_same(cpu, gpu)
