"""Passwords never leave the process: the one rule that redacts them from URIs, wherever mscm logs,
prints, stores or tags a value (MLflow params and artifacts, checkpoint configs, the console, error
messages).

A URI's password (``postgresql://mscm:PASSWORD@host/db``, ``http://user:PASSWORD@host``) becomes
``***``. The password reaches the database from the environment or libpq's ``~/.pgpass`` instead, and an
MLflow server's from ``MLFLOW_TRACKING_PASSWORD`` (docs/tracking.md), so a config never needs one.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
# scheme://user:password@ : the password is what lies between the first ':' after the user and the '@'
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s/:@]*:)(?P<password>[^\s@/]+)@")


def redact(text: str) -> str:
    """``text`` with the password of every URI in it replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)


def redact_values(value: Any) -> Any:
    """A nested dict/list with every string redacted (configs before they are stored or logged)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_values(v) for v in value)
    return value
