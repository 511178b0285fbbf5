"""The untrained baseline of a search: the model every trial starts from (same config, same seed, no
training step), evaluated on the split the trials select on. A search's best trial is read against it;
without it a user cannot tell whether the search found anything."""

from __future__ import annotations

from ..config import RunConfig

BASELINE_METRICS = ("mAP", "rank1", "mINP")


def untrained_scores(cfg: RunConfig) -> dict[str, float]:
    """mAP, rank1 and mINP of the untrained model on ``cfg.eval.protocol`` with ``cfg.eval.trials`` draws,
    on the CPU of the calling process, from the same data (and held-out identities) as a trial."""
    import torch

    from .engine import Engine

    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        engine = Engine(cfg, device="cpu")
        result = engine.evaluate()
    return {k: float(result.mean[k]) for k in BASELINE_METRICS}
