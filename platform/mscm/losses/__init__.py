"""Training losses: the Quadruple Center Triplet loss and the combined MSCMNet objective."""

from .mscm_loss import MSCMLoss
from .qct import qct_loss

__all__ = ["MSCMLoss", "qct_loss"]
