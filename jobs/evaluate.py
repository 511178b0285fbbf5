#!/usr/bin/env python
"""Evaluate a checkpoint on the full test protocol of a dataset. Thin wrapper over `mscm evaluate`.

python jobs/evaluate.py --checkpoint ray_results/run/checkpoint_000010 --dataset /data/SYSU-MM01
python jobs/evaluate.py --checkpoint ckpt --dataset /data/LLCM --layout llcm --flip --json llcm.json
python jobs/evaluate.py --checkpoint split1 --checkpoint split2 ... --dataset /data/RegDB   # RegDB: one per split
"""

import sys

from mscm.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
