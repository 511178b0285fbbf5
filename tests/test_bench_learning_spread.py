"""bench/learning_spread.py reads its seed lists as documented: ranges and commas, and an empty list for
`--repeat`'s default (an empty text once crashed the script before its first training)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from learning_spread import _seeds  # noqa: E402


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("0-9", list(range(10))), ("0,3,5", [0, 3, 5]), ("0-2,7", [0, 1, 2, 7]), ("4", [4]), ("", [])],
)
def test_seed_lists_read_as_documented(text, seeds):
    assert _seeds(text) == seeds
