"""Names in a training run's per-epoch reports and checkpoint folders, shared by the worker loop,
the driver and the search's MLflow logging. Free of Ray and torch imports, so the command line can
name them before anything heavy is loaded."""

SCORE_KEY = "selection_score"
FAILURE_KEY = "failure"
EVAL_FILE = "eval.json"
CMC_FILE = "cmc.png"
RETRIES_KEY = "trial/retries"  # times the run was started again after losing workers (fit_retrying)
RETRY_REASON_KEY = "trial/retry_reason"  # why, the last time
