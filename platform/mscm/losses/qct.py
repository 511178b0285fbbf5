"""Quadruple Center Triplet (QCT) loss (docs/model.md, "The Quadruple Center Triplet (QCT) loss").

Features f_i (n x D) in ``streams`` equal blocks [V1|V2|I1|I2] (or [V|I]); the first half of the blocks is
visible, the second half infrared. Batch centres, recomputed every call: per modality c^V_y, c^I_y, overall
c_y and per stream c^s_y. With d(a, b) = ||a - b||_2:

    cross = 1/n sum_i d(f_i, c^{other modality}_{y_i})
    intra = 1/n sum_i d(f_i, c^{s(i)}_{y_i})
    neg   = 1/n sum_i mean_{j: y_j != y_i} [margin - d(f_i, c_{y_j})]_+
    total = 1/2 [(1 - alpha) cross + alpha intra + neg]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-12  # sqrt clamp, so gradients stay finite when a feature sits on a centre


def _safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(min=EPS).sqrt()


def _check_layout(features: torch.Tensor, labels: torch.Tensor, streams: int) -> int:
    if streams not in (2, 4):
        raise ValueError(f"streams must be 2 or 4, got {streams}")
    if features.ndim != 2:
        raise ValueError(f"features must be n x D, got shape {tuple(features.shape)}")
    n = features.shape[0]
    if labels.shape != (n,):
        raise ValueError(f"labels must have shape ({n},) to match the features, got {tuple(labels.shape)}")
    if n == 0 or n % streams:
        raise ValueError(f"{n} features cannot be split into {streams} equal stream blocks")
    return n // streams


def _check_coverage(counts: torch.Tensor, ids: torch.Tensor, names: tuple[str, ...], what: str) -> None:
    """counts: groups x identities. Every identity needs a sample in every group (its centre must exist)."""
    empty = (counts == 0).nonzero()
    if len(empty):
        g, k = empty[0].tolist()
        raise ValueError(
            f"QCT: identity {int(ids[k])} has no {names[g]} sample in the batch (every identity needs every {what})"
        )


def _centres(onehot: torch.Tensor, features: torch.Tensor, groups: torch.Tensor, count: int):
    """Per-group, per-identity centres: (count x P x D) and sample counts (count x P).
    ``onehot`` n x P, ``groups`` n (group index of each row)."""
    member = F.one_hot(groups, count).to(features.dtype)  # n x G
    weights = member.T[:, :, None] * onehot[None]  # G x n x P
    counts = weights.sum(1)  # G x P
    sums = torch.einsum("gnp,nd->gpd", weights, features)
    return sums / counts.clamp(min=1)[..., None], counts


def qct_loss(
    features: torch.Tensor, labels: torch.Tensor, streams: int = 4, margin: float = 0.7, alpha: float = 0.0
) -> dict[str, torch.Tensor]:
    """QCT terms ``cross``, ``intra``, ``neg`` and ``total`` (scalars). See the module docstring.

    Raises ValueError when the features do not split into ``streams`` equal blocks or when an identity
    lacks a modality (or a stream) in the batch.
    """
    block = _check_layout(features, labels, streams)
    f = features.float()
    n = f.shape[0]
    ids, inv = torch.unique(labels, return_inverse=True)
    onehot = F.one_hot(inv, len(ids)).to(f.dtype)  # n x P
    stream = torch.arange(n, device=f.device) // block
    modality = (stream >= streams // 2).long()  # 0 visible, 1 infrared

    c_mod, n_mod = _centres(onehot, f, modality, 2)
    _check_coverage(n_mod, ids, ("visible", "infrared"), "modality")
    c_stream, n_stream = _centres(onehot, f, stream, streams)
    names = ("V1", "V2", "I1", "I2") if streams == 4 else ("V", "I")
    _check_coverage(n_stream, ids, tuple(f"stream {s}" for s in names), "stream")
    centres = (onehot.T @ f) / onehot.sum(0)[:, None]  # P x D, all streams

    cross = _safe_sqrt((f - c_mod[1 - modality, inv]).pow(2).sum(1)).mean()
    intra = _safe_sqrt((f - c_stream[stream, inv]).pow(2).sum(1)).mean()

    # d(f_i, c_k) for every identity k from the differences (n x P x D is small: 96 x 6 x 2048), not the
    # authors' ||f||^2 + ||c||^2 - 2 f.c, which loses ~1e-4 to cancellation when f is near c.
    sq = (f[:, None, :] - centres[None]).pow(2).sum(-1)  # n x P
    hinge = (margin - _safe_sqrt(sq)).clamp(min=0)
    # Mean over the batch positions j with y_j != y_i: identity k weighs as often as it occurs.
    others = onehot.sum(0)[None] * (1 - onehot)  # n x P
    neg = ((hinge * others).sum(1) / others.sum(1).clamp(min=1)).mean()

    total = 0.5 * ((1 - alpha) * cross + alpha * intra + neg)
    return {"cross": cross, "intra": intra, "neg": neg, "total": total}
