"""``mscm evaluate`` (and jobs/evaluate.py) on real checkpoints of an untrained ResNet-18 MSCMNet, saved
with the checkpoint format, on synthetic data in the datasets' layouts; run in-process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mscm.checkpoint import save_checkpoint
from mscm.cli import main
from mscm.config import load_run_config
from mscm.data.synth import generate_atomic
from mscm.eval.report import Report
from mscm.model import build_model

H, W = 64, 32
REPO = Path(__file__).resolve().parent.parent


def _checkpoint(path: Path, layout: str, root: Path | None, cache: Path, **overrides) -> Path:
    protocol = {"sysu": "sysu-all", "regdb": "regdb-v2t", "llcm": "llcm-i2v"}[layout]
    cfg = load_run_config(
        "smoke",
        {
            "data.dataset": layout,
            "data.root": None if root is None else str(root),
            "data.height": H,
            "data.width": W,
            "data.cache_dir": str(cache),
            "model.alb_heads": 4,
            "eval.protocol": protocol,
            "eval.trials": 2,
            "eval.batch_size": 256,
            **overrides,
        },
    )
    torch.manual_seed(0)
    model = build_model(cfg.model, 4, H, W)
    return save_checkpoint(path, cfg=cfg, num_classes=4, model=model, epoch=7, metrics={"mAP": 0.5})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    cache = base / "cache"
    roots = {layout: base / layout for layout in ("sysu", "regdb")}
    for layout, root in roots.items():
        generate_atomic(layout, root, 8 if layout == "sysu" else 4, seed=1, height=H, width=W, progress=False)
    ckpts = {
        "sysu": _checkpoint(base / "ckpt-sysu", "sysu", roots["sysu"], cache),
        # Lighter models for the split bookkeeping (no MIMB, no non-local blocks): half the torch ops.
        **{
            f"regdb{k}": _checkpoint(
                base / f"ckpt-regdb{k}",
                "regdb",
                roots["regdb"],
                cache,
                **{"data.regdb_trial": k, "model.mimb_scales": 0, "model.non_local": False},
            )
            for k in (1, 2)
        },
    }
    return base, roots, ckpts


def test_evaluate_prints_the_table_and_writes_json_and_plot(setup, capsys):
    base, roots, ckpts = setup
    out_json, out_png = base / "out" / "sysu.json", base / "out" / "cmc.png"
    # --trials and --feature override the checkpoint's eval settings (2 trials, feature bn).
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(ckpts["sysu"]),
            "--trials",
            "3",
            "--feature",
            "pool",
            "--json",
            str(out_json),
            "--cmc-plot",
            str(out_png),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    # The paper layout: a column group per setting, the run's name as the row.
    assert "All Search" in text and "Indoor Search" in text and "smoke" in text
    for header in ("R1", "R5", "R10", "R20", "mAP", "mINP"):
        assert header in text
    assert "sysu-all (single-shot, 3 trials, feature pool" in text and "±" in text
    report = Report.from_dict(json.loads(out_json.read_text()))
    assert list(report.results) == ["sysu-all", "sysu-indoor"]
    assert [t.trial for t in report.results["sysu-all"].trials] == [0, 1, 2]  # every trial kept
    assert report.results["sysu-all"].extra["epoch"] == 7
    assert report.dataset["root"] == str(roots["sysu"]) and report.settings["image_size"] == [H, W]
    # The printed R1 of all-search is the JSON's mean, in %.
    assert f"{100 * report.results['sysu-all'].mean['rank1']:.2f}" in text
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regdb_checkpoints_of_two_splits_are_combined(setup, capsys):
    base, _, ckpts = setup
    out = base / "regdb.json"
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(ckpts["regdb1"]),
            "--checkpoint",
            str(ckpts["regdb2"]),
            "--protocol",
            "regdb-v2t",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "Visible to Thermal" in text and "regdb-v2t (splits 1, 2, feature bn" in text
    report = Report.from_dict(json.loads(out.read_text()))
    assert [t.trial for t in report.results["regdb-v2t"].trials] == [1, 2]
    assert report.dataset["regdb_split"] == [1, 2] and len(report.checkpoints) == 2
    # The same split twice is refused: one model per split.
    rc = main(
        [
            "evaluate",
            "--checkpoint",
            str(ckpts["regdb1"]),
            "--checkpoint",
            str(ckpts["regdb1"]),
            "--protocol",
            "regdb-v2t",
            "--quiet",
        ]
    )
    assert rc == 2 and "splits repeat" in capsys.readouterr().err
    rc = main(["evaluate", "--checkpoint", str(ckpts["regdb1"]), "--checkpoint", str(ckpts["sysu"]), "--quiet"])
    assert rc == 2 and "only for RegDB" in capsys.readouterr().err


def test_clear_errors(setup, tmp_path, capsys):
    _, roots, ckpts = setup
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"conv1.weight": torch.zeros(1)}, foreign / "model.pt")  # e.g. a torchvision state dict
    cases = [
        (["--checkpoint", str(tmp_path / "nothing")], "checkpoint file not found"),
        (["--checkpoint", str(foreign)], "not an mscm MSCMNet checkpoint"),
        (["--checkpoint", str(ckpts["sysu"]), "--dataset", str(tmp_path / "no-data")], "expected a folder"),
        (["--checkpoint", str(ckpts["sysu"]), "--dataset", str(roots["regdb"])], "SYSU-MM01"),
        (["--checkpoint", str(ckpts["sysu"]), "--protocol", "llcm-i2v"], "not a protocol of sysu"),
        (["--checkpoint", str(ckpts["sysu"]), "--layout", "llcm"], "give the llcm dataset folder"),
        (["--checkpoint", str(ckpts["sysu"]), "--trials", "0"], "eval.trials"),
    ]
    for args, message in cases:
        assert main(["evaluate", *args, "--quiet"]) == 2, args
        assert message in capsys.readouterr().err, args


def test_jobs_wrapper_is_the_same_command():
    env = {"PYTHONPATH": str(REPO / "platform")}
    res = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "evaluate.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 0 and "--checkpoint" in res.stdout and "--cmc-plot" in res.stdout
