"""Inference cost of a model: deployed parameters and single-image latency (the multi-objective metrics)."""

from __future__ import annotations

import pytest

from mscm.config import load_run_config
from mscm.model import build_model
from mscm.model.cost import inference_latency_ms, inference_parameters


def _model(classes: int = 10, **overrides):
    cfg = load_run_config("smoke", overrides)
    return cfg, build_model(cfg.model, classes, cfg.data.height, cfg.data.width)


def test_parameters_leave_out_the_classifier_only():
    _, small = _model(10)
    _, large = _model(500)
    total = sum(p.numel() for p in small.parameters())
    classifier = sum(p.numel() for p in small.classifier.parameters())
    assert inference_parameters(small) == total - classifier
    assert inference_parameters(small) == inference_parameters(large)  # not a function of the identities


def test_parameters_follow_the_architecture():
    counts = [inference_parameters(_model(**{"model.mimb_scales": s})[1]) for s in (0, 2, 4)]
    assert counts[0] < counts[1] < counts[2]  # each scale adds its ALB


def test_latency_is_measured_in_eval_mode_and_restores_the_mode():
    cfg, model = _model()
    seen = []
    hook = model.bottleneck.register_forward_pre_hook(lambda mod, args: seen.append(mod.training))
    model.train()
    ms = inference_latency_ms(model, cfg.data.height, cfg.data.width, runs=3, warmup=1)
    hook.remove()
    assert ms > 0
    assert seen == [False] * 4  # warm-up + 3 timed runs, none in training mode
    assert model.training
    with pytest.raises(ValueError, match="runs must be >= 1"):
        inference_latency_ms(model, cfg.data.height, cfg.data.width, runs=0)
