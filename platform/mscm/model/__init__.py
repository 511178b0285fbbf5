"""MSCMNet: stems, shared ResNet trunk with AGW non-local blocks, MIMB, GeM + BN-neck head."""

from .mscmnet import ModelOutput, MSCMNet, build_model
from .pretrained import PretrainedWeightsError

__all__ = ["MSCMNet", "ModelOutput", "PretrainedWeightsError", "build_model"]
