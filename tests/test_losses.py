"""QCT loss (docs/model.md, "The Quadruple Center Triplet (QCT) loss") and the combined MSCMNet objective."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mscm.config import LossConfig
from mscm.losses import MSCMLoss, qct_loss
from mscm.model import ModelOutput


def blocks(per_stream: dict[str, list[float]], labels: list[int], extra_dim: float | None = None):
    """Concatenate per-stream 1-D features (optionally with a constant second coordinate) and labels."""
    f = torch.tensor([x for s in per_stream.values() for x in s], dtype=torch.float32)[:, None]
    if extra_dim is not None:
        f = torch.cat([f, torch.full_like(f, extra_dim)], dim=1)
    return f, torch.tensor(labels * len(per_stream))


def test_hand_worked_four_streams():
    # Identity 0:  V1 {0, 2}   V2 {4, 6}   I1 {1, 3}   I2 {5, 7}
    # Identity 1:  the same + 10.
    # Stream centres (id 0): V1 1, V2 5, I1 2, I2 6 -> every sample is 1 from its stream centre: intra = 1.
    # Modality centres (id 0): V 3, I 4. V samples to c^I = 4: 4, 2, 0, 2; I samples to c^V = 3: 2, 0, 2, 4
    #   -> 16 per identity, cross = 32 / 16 = 2.
    # Overall centres: c_0 = 3.5, c_1 = 13.5. margin 10, one other identity:
    #   id 0 samples x: [10 - (13.5 - x)]_+ = [x - 3.5]_+ -> 0, 0, .5, 2.5, 0, 0, 1.5, 3.5 = 8
    #   id 1 samples y: [10 - (y - 3.5)]_+ = [13.5 - y]_+ -> 3.5, 1.5, 0, 0, 2.5, .5, 0, 0 = 8  -> neg = 16/16 = 1
    # total = 1/2 [(1 - a) 2 + a 1 + 1]: a = 0 -> 1.5; a = 0.5 -> 1.25.
    streams = {"V1": [0, 2, 10, 12], "V2": [4, 6, 14, 16], "I1": [1, 3, 11, 13], "I2": [5, 7, 15, 17]}
    f, y = blocks(streams, [0, 0, 1, 1])
    out = qct_loss(f, y, streams=4, margin=10.0, alpha=0.0)
    assert out["cross"].item() == pytest.approx(2.0, abs=1e-5)
    assert out["intra"].item() == pytest.approx(1.0, abs=1e-5)
    assert out["neg"].item() == pytest.approx(1.0, abs=1e-5)
    assert out["total"].item() == pytest.approx(1.5, abs=1e-5)
    assert qct_loss(f, y, streams=4, margin=10.0, alpha=0.5)["total"].item() == pytest.approx(1.25, abs=1e-5)
    # The paper's margin 0.7 is far below every negative distance here: no hinge.
    assert qct_loss(f, y, streams=4)["neg"].item() == 0.0


def test_hand_worked_two_streams_three_identities():
    # 2-D features (x, 7); V: id0 0, id1 10, id2 20; I: id0 2, id1 12, id2 22.
    # cross: every sample is 2 from the other modality's centre -> 2. intra: 1 sample per stream -> 0.
    # Overall centres 1, 11, 21; margin 15; hinge = [15 - d]_+, averaged over the two other identities:
    #   0: (c1: 4, c2: 0) -> 2     2: (6, 0) -> 3
    #   10: (c0: 6, c2: 4) -> 5    12: (4, 6) -> 5
    #   20: (c0: 0, c1: 6) -> 3    22: (0, 4) -> 2        neg = 20 / 6
    # total = (2 + 20/6) / 2 = 8/3.
    f, y = blocks({"V": [0, 10, 20], "I": [2, 12, 22]}, [0, 1, 2], extra_dim=7.0)
    out = qct_loss(f, y, streams=2, margin=15.0)
    assert out["cross"].item() == pytest.approx(2.0, abs=1e-5)
    assert out["intra"].item() == pytest.approx(0.0, abs=1e-5)
    assert out["neg"].item() == pytest.approx(20 / 6, abs=1e-5)
    assert out["total"].item() == pytest.approx(8 / 3, abs=1e-5)


def reference_qct(f, y, streams, margin, alpha):
    """The section-4 formula written out with loops (an independent check of the vectorised code)."""
    n = len(y)
    block = n // streams
    stream = [i // block for i in range(n)]
    mod = [int(s >= streams // 2) for s in stream]

    def centre(members):
        return torch.stack([f[k] for k in members]).mean(0)

    cross = intra = neg = 0.0
    for i in range(n):
        cross += (f[i] - centre([j for j in range(n) if y[j] == y[i] and mod[j] != mod[i]])).norm()
        intra += (f[i] - centre([j for j in range(n) if y[j] == y[i] and stream[j] == stream[i]])).norm()
        hinges = [
            (margin - (f[i] - centre([k for k in range(n) if y[k] == y[j]])).norm()).clamp(min=0)
            for j in range(n)
            if y[j] != y[i]
        ]
        neg += sum(hinges) / len(hinges)
    cross, intra, neg = cross / n, intra / n, neg / n
    return {"cross": cross, "intra": intra, "neg": neg, "total": 0.5 * ((1 - alpha) * cross + alpha * intra + neg)}


@pytest.mark.parametrize("streams, alpha", [(4, 0.0), (4, 0.3), (2, 0.7)])
def test_matches_the_formula_on_random_features(streams, alpha):
    g = torch.Generator().manual_seed(streams)
    per_block = [2, 0, 1, 0, 2, 1]  # 3 identities x K = 2
    y = torch.tensor(per_block * streams)
    f = torch.randn(len(y), 6, generator=g) * 0.4
    got = qct_loss(f, y, streams=streams, margin=0.7, alpha=alpha)
    want = reference_qct(f, y.tolist(), streams, 0.7, alpha)
    assert want["neg"] > 0  # the hinge is active in this draw
    for k in ("cross", "intra", "neg", "total"):
        assert got[k].item() == pytest.approx(float(want[k]), abs=1e-5), k


def test_invariant_to_identity_order_within_the_batch():
    g = torch.Generator().manual_seed(0)
    y_block = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    f = torch.randn(4 * 8, 5, generator=g) * 0.3
    y = y_block.repeat(4)
    base = qct_loss(f, y)
    perm = torch.randperm(8, generator=g)
    same = torch.cat([perm + 8 * b for b in range(4)])  # one order for all blocks
    each = torch.cat([torch.randperm(8, generator=g) + 8 * b for b in range(4)])  # a new order per block
    for order in (same, each):
        out = qct_loss(f[order], y[order])
        for k in base:
            assert out[k].item() == pytest.approx(base[k].item(), abs=1e-6), k
    relabelled = qct_loss(f, torch.tensor([7, 7, 3, 3, 11, 11, 5, 5]).repeat(4))
    assert relabelled["total"].item() == pytest.approx(base["total"].item(), abs=1e-6)


@pytest.mark.parametrize("fill", ["random", "identical", "zeros"])
def test_gradients_are_finite(fill):
    y = torch.tensor([0, 0, 1, 1]).repeat(4)
    f = {"random": torch.randn(16, 8), "identical": torch.ones(16, 8) * 0.1, "zeros": torch.zeros(16, 8)}[fill]
    f.requires_grad_()
    out = qct_loss(f, y, alpha=0.5)
    out["total"].backward()
    assert torch.isfinite(out["total"]) and torch.isfinite(f.grad).all()
    if fill != "random":  # every distance is 0: only the hinge (margin 0.7) is left
        assert out["neg"].item() == pytest.approx(0.7, abs=1e-5)


def test_single_identity_batch_has_no_negative_term():
    out = qct_loss(torch.randn(8, 4), torch.zeros(8, dtype=torch.long))
    assert out["neg"].item() == 0.0 and torch.isfinite(out["total"])


def test_layout_errors():
    with pytest.raises(ValueError, match="identity 1 has no infrared sample"):
        qct_loss(torch.randn(4, 3), torch.tensor([0, 1, 0, 0]), streams=2)
    with pytest.raises(ValueError, match="identity 3 has no visible sample"):
        qct_loss(torch.randn(8, 3), torch.tensor([0, 0, 0, 0, 0, 3, 0, 3]), streams=4)
    with pytest.raises(ValueError, match="identity 1 has no stream V2 sample"):
        qct_loss(torch.randn(8, 3), torch.tensor([0, 1, 0, 0, 0, 1, 0, 1]), streams=4)
    with pytest.raises(ValueError, match="7 features cannot be split into 4 equal stream blocks"):
        qct_loss(torch.randn(7, 3), torch.zeros(7, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must have shape"):
        qct_loss(torch.randn(8, 3), torch.zeros(6, dtype=torch.long))


def test_mscm_loss_combines_weighted_terms():
    g = torch.Generator().manual_seed(2)
    y = torch.tensor([0, 1, 2, 0, 1, 2]).repeat(4)
    out = ModelOutput(torch.randn(24, 6, generator=g), torch.randn(24, 3, generator=g))
    terms = MSCMLoss(LossConfig(), streams=4)(out, y)
    assert set(terms) == {"total", "ce", "qct", "qct_cross", "qct_intra", "qct_neg"}
    qct = qct_loss(out.features, y)
    assert terms["ce"].item() == pytest.approx(F.cross_entropy(out.logits, y).item(), abs=1e-6)
    assert terms["qct"].item() == pytest.approx(qct["total"].item(), abs=1e-6)
    assert terms["total"].item() == pytest.approx(terms["ce"].item() + terms["qct"].item(), abs=1e-5)
    cfg = LossConfig(ce_weight=0.5, qct_weight=2.0, label_smoothing=0.1, qct_alpha=0.4)
    weighted = MSCMLoss(cfg, streams=4)(out, y)
    smoothed_ce = F.cross_entropy(out.logits, y, label_smoothing=0.1).item()
    assert weighted["ce"].item() == pytest.approx(smoothed_ce, abs=1e-6)
    assert weighted["qct"].item() == pytest.approx(qct_loss(out.features, y, alpha=0.4)["total"].item(), abs=1e-6)
    assert weighted["total"].item() == pytest.approx(0.5 * smoothed_ce + 2.0 * weighted["qct"].item(), abs=1e-5)
