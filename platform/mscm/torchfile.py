"""Opening ``.pt`` / ``.pth`` files safely: ``torch.load(weights_only=True)`` with a short reason on refusal.

A file that holds anything beyond tensors and plain containers (a pickle that could run code) is
refused by torch's weights-only unpickler before any of it executes; the reason says so in one line
instead of torch's paragraph.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

REFUSED = "refused: it holds objects other than tensors (a pickle that could run code; nothing in it was run)"


def load_tensors(file: str | Path) -> Any:
    """``torch.load(file, map_location="cpu", weights_only=True)``; raises ``ValueError(reason)``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Detected pickle protocol 4 ..." on foreign files
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = _unpickler_detail(str(e))
        if "GLOBAL" in detail:  # the pickle names a class or function to call: code, refused
            raise ValueError(f"{REFUSED}: {detail}") from None
        raise ValueError(f"not a readable torch file ({detail})") from None
    except Exception as e:  # noqa: BLE001 - truncated files, zip errors, wrong formats
        raise ValueError(f"not a readable torch file ({type(e).__name__}: {_unpickler_detail(str(e))})") from None


def _unpickler_detail(text: str) -> str:
    """The one informative line of torch's message: what the weights-only unpickler stopped at."""
    text = text.split("Check the documentation of torch.load", 1)[0]
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1]
    elif "trusted source." in text:  # torch's preamble, then the reason on its own paragraph
        text = text.split("trusted source.", 1)[1]
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0][:200] if lines else "unreadable"
