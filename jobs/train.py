#!/usr/bin/env python
"""Train one MSCMNet on Ray Train, logged to MLflow. Thin wrapper over `mscm train`.

python jobs/train.py --config smoke
python jobs/train.py --config sysu --set data.root=/data/SYSU-MM01 --set model.pretrained=/w/resnet50.pth
"""

import sys

from mscm.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
