"""Names in a training run's per-epoch reports and checkpoint folders, shared by the worker loop,
the driver and the search's MLflow logging. Free of Ray and torch imports, so the command line can
name them before anything heavy is loaded."""

SCORE_KEY = "selection_score"
FAILURE_KEY = "failure"
EVAL_FILE = "eval.json"
CMC_FILE = "cmc.png"
