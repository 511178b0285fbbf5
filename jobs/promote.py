#!/usr/bin/env python
"""Promote the best trial of a search to the MLflow Model Registry. Thin wrapper over `mscm promote`.

    python jobs/promote.py --search mimb-20261124-101500 --dry-run
    python jobs/promote.py --search mimb-20261124-101500 --margin 0.005

Relies on the installed `mscm` package only (like jobs/tune_mimb.py, it may run as a copied file).
"""

import sys

from mscm.cli import main

if __name__ == "__main__":
    sys.exit(main(["promote", *sys.argv[1:]]))
