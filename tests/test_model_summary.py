"""``mscm model-summary``: per-part table and total, overrides, one forward."""

from __future__ import annotations

import re

from mscm.cli import main as cli_main


def test_model_summary_table_and_forward(capsys):
    rc = cli_main(["model-summary", "-c", "smoke", "--set", "model.mimb_scales=1", "--num-classes", "7", "--forward"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "resnet18, 4 streams, MIMB scales 1" in out and "7 classes, input 128x64" in out
    rows = dict(re.findall(r"^  (\S+)\s+([\d.]+) M", out, flags=re.M))
    assert "alb.self" in rows and "alb.layer2" not in rows
    parts = sum(float(v) for k, v in rows.items() if k != "total")
    assert abs(parts - float(rows["total"])) < 1e-3
    assert "features (8, 512), logits (8, 7)" in out


def test_model_summary_reports_bad_overrides(capsys):
    assert cli_main(["model-summary", "-c", "smoke", "--set", "model.alb_heads=3"]) == 2
    assert "alb_heads" in capsys.readouterr().err
