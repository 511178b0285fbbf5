"""k-reciprocal re-ranking (mscm.eval.rerank) on a case worked by hand, and in `mscm evaluate` as results
of their own name beside the plain ones."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mscm.eval.rerank import RerankSettings, rerank_distances

# One query at 0 and gallery items at 1, 2 and 10 on a line (features used as they are). Squared distances
# from q: 1, 4, 100; g1-g2 1, g1-g3 81, g2-g3 64. With k1 = 2 (3 nearest, self included):
#   R(q) = {q, g1, g2}, R(g1) = {g1, q, g2}, R(g2) = {g2, g1, q}, R(g3) = {g3} (g3 is no one's 3 nearest);
#   round(k1/2) = 1 adds nothing. V (over q, g1, g2, g3), weights exp(-d) normalised:
#   V_q  = (1, e^-1, e^-4, 0) / 1.386195 = (0.721399, 0.265387, 0.013213, 0)
#   V_g1 = (e^-1, 1, e^-1, 0) / 1.735759 = (0.211942, 0.576117, 0.211942, 0)
#   V_g2 = (e^-4, e^-1, 1, 0) / 1.386195 = (0.013213, 0.265387, 0.721399, 0);  V_g3 = (0, 0, 0, 1)
# k2 = 1: d_J = 1 - m / (2 - m), m = sum of the element-wise minima:
#   q-g1: m = 0.211942 + 0.265387 + 0.013213 = 0.490542 -> d_J = 0.675020
#   q-g2: m = 0.013213 + 0.265387 + 0.013213 = 0.291813 -> d_J = 0.829168;  q-g3: m = 0 -> d_J = 1
# lambda = 0.5: d* = (d_J + d) / 2 = 0.837510, 2.414584, 50.5.
# k2 = 2: V_q and V_g1 become mean(V_q, V_g1) = (0.466671, 0.420752, 0.112578, 0) (g1's 2 nearest: itself and
#   q, which ties with g2 and comes first by index), V_g2 = mean(V_g2, V_g1) = (0.112578, 0.420752, 0.466671, 0),
#   V_g3 = mean(V_g3, V_g2) = (0.006607, 0.132694, 0.360700, 0.5):
#   q-g1: d_J = 0 -> d* = 0.5;  q-g2: m = 0.645908 -> d_J = 0.522996 -> d* = 2.261498
#   q-g3: m = 0.251879 -> d_J = 0.855914 -> d* = 50.427957
QUERY, GALLERY = torch.tensor([[0.0]]), torch.tensor([[1.0], [2.0], [10.0]])


@pytest.mark.parametrize(
    ("k2", "want"),
    [(1, [0.837510, 2.414584, 50.5]), (2, [0.5, 2.261498, 50.427957])],
)
def test_the_hand_worked_case(k2, want):
    got = rerank_distances(QUERY, GALLERY, RerankSettings(k1=2, k2=k2, lam=0.5), normalize=False)
    assert got.shape == (1, 3)
    np.testing.assert_allclose(got[0], want, atol=2e-6)


def test_lambda_one_is_the_original_distance_and_settings_are_checked():
    got = rerank_distances(QUERY, GALLERY, RerankSettings(k1=2, k2=1, lam=1.0), normalize=False)
    np.testing.assert_allclose(got[0], [1.0, 4.0, 100.0])
    with pytest.raises(ValueError, match="lambda"):
        RerankSettings(k1=2, k2=1, lam=1.5)


def test_evaluate_reports_reranked_results_under_their_own_name(tmp_path):
    from train_configs import tiny_config

    from mscm.checkpoint import save_checkpoint
    from mscm.eval.checkpoint_eval import EvalOptions, evaluate_checkpoints
    from mscm.model import build_model

    cfg = tiny_config(tmp_path)
    torch.manual_seed(2)
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), 16, cfg.data.height, cfg.data.width)
    ckpt = save_checkpoint(tmp_path / "ckpt", cfg=cfg, num_classes=16, model=model, epoch=1, metrics={})
    options = dict(protocols=("sysu-all",), trials=2, progress=False, cache_dir=str(tmp_path / "cache"))
    plain = evaluate_checkpoints([ckpt], EvalOptions(**options))
    both = evaluate_checkpoints([ckpt], EvalOptions(**options, rerank=True))
    assert set(plain.results) == {"sysu-all"} and set(both.results) == {"sysu-all", "rerank/sysu-all"}
    assert both.results["sysu-all"].mean == plain.results["sysu-all"].mean  # the plain numbers stay
    reranked = both.results["rerank/sysu-all"]
    assert 0.0 < reranked.mean["mAP"] <= 1.0 and reranked.mean != plain.results["sysu-all"].mean
    assert "re-ranked (k-reciprocal)" in both.table()
    assert "rerank/mAP" in reranked.summary(prefix="rerank/")
