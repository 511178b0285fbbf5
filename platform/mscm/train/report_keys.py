"""Names in a training run's per-epoch reports and checkpoint folders, shared by the worker loop,
the driver and the search's MLflow logging. Free of Ray and torch imports, so the command line can
name them before anything heavy is loaded."""

from __future__ import annotations

from typing import Any

SCORE_KEY = "selection_score"
FAILURE_KEY = "failure"
EVAL_FILE = "eval.json"
CMC_FILE = "cmc.png"
RANKED_FILE = "ranked-lists.png"  # the evaluated protocol's ranked lists (eval.ranked_lists), rows in .json
RETRIES_KEY = "trial/retries"  # times the run was started again after losing workers (fit_retrying)
RETRY_REASON_KEY = "trial/retry_reason"  # why, the last time


def retry_report(attempt: int, reason: str) -> dict[str, Any]:
    """What a restarted run's reports carry about its retries (:func:`mscm.train.failures.fit_retrying`)."""
    return {RETRIES_KEY: attempt, RETRY_REASON_KEY: reason} if attempt else {}


def new_retry(seen: dict[str, int], trial_id: str, result: dict[str, Any]) -> tuple[int, str] | None:
    """(retries, reason) when ``result`` is the first report of a trial's newest retry, else None; ``seen``
    (trial id -> retries already announced) is updated, so each retry is announced once."""
    retries = int(result.get(RETRIES_KEY) or 0)
    if retries <= seen.get(trial_id, 0):
        return None
    seen[trial_id] = retries
    return retries, str(result.get(RETRY_REASON_KEY, ""))
