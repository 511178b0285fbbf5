#!/usr/bin/env python
"""The platform's main job: search MSCMNet's hyperparameters (Ray Tune + Optuna + ASHA, MLflow).

    python jobs/tune_mimb.py                      # small search on embedded defaults (local Ray,
                                                  # SQLite stores under the project, synthetic data)
    ray submit cluster.yaml jobs/tune_mimb.py     # on the cluster: the nodes export MSCM_SEARCH_SPACE,
                                                  # MSCM_DATASET_ROOT, MLFLOW_TRACKING_URI, ... (cluster.yaml)
    python jobs/tune_mimb.py --space mimb --dataset-root /data/SYSU-MM01 --trials 40

`ray submit` copies this file alone to the head node, so it relies on the installed `mscm` package
only, never on paths relative to itself.
"""

import sys

from mscm.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
