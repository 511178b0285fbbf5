"""No password leaves the process (mscm.redact): URIs in params, run.yaml, checkpoints, printed commands
and error messages read user:***@host. The search-level check (a real search with a password in its
tracking URI leaves it nowhere) is in test_tune_search.py."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.portable

SECRET = "s3cret-Pw"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"postgresql://mscm:{SECRET}@db.internal:5432/mlflow", "postgresql://mscm:***@db.internal:5432/mlflow"),
        (f"postgresql+psycopg://mscm:{SECRET}@h/db", "postgresql+psycopg://mscm:***@h/db"),
        (
            f"see http://u:{SECRET}@127.0.0.1:5000 and sqlite:////tmp/a.db",
            "see http://u:***@127.0.0.1:5000 and sqlite:////tmp/a.db",
        ),
        ("postgresql://mscm@h/db", "postgresql://mscm@h/db"),  # no password: unchanged (libpq's .pgpass)
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("/data/sysu:2@x", "/data/sysu:2@x"),  # not a URI
    ],
)
def test_the_password_of_a_uri_is_masked(text, expected):
    from mscm.redact import redact

    assert redact(text) == expected


def test_configs_and_errors_never_carry_the_password(tmp_path):
    import dataclasses

    from mscm.config import dump_yaml, load_run_config
    from mscm.errors import TrackingError
    from mscm.tracking.mlflow_run import config_params

    uri = f"postgresql://mscm:{SECRET}@db:5432/mlflow"
    cfg = load_run_config("smoke", {"tracking.tracking_uri": uri})
    assert config_params(cfg)["tracking.tracking_uri"] == "postgresql://mscm:***@db:5432/mlflow"
    assert SECRET not in dump_yaml(cfg)
    err = TrackingError(f"cannot reach {uri}", hint=f"check {uri}")
    assert SECRET not in str(err) and SECRET not in err.hint
    assert dataclasses.replace(cfg).tracking.tracking_uri == uri  # the live config keeps it for connecting


def test_a_checkpoint_stores_no_password(tmp_path):
    import dataclasses

    import torch

    from mscm.checkpoint import save_checkpoint
    from mscm.config import load_run_config
    from mscm.model import build_model

    cfg = load_run_config(
        "smoke",
        {
            "tracking.tracking_uri": f"http://u:{SECRET}@127.0.0.1:5000",
            "data.height": 64,
            "data.width": 32,
            "model.alb_heads": 2,
        },
    )
    model = build_model(dataclasses.replace(cfg.model, pretrained=None), 4, 64, 32)
    save_checkpoint(tmp_path, cfg=cfg, num_classes=4, model=model, epoch=1, metrics={})
    assert SECRET.encode() not in (tmp_path / "model.pt").read_bytes()
    assert torch.load(tmp_path / "model.pt", weights_only=True)["config"]["tracking"]["tracking_uri"].endswith(
        "u:***@127.0.0.1:5000"
    )
