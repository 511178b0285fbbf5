"""The candidate of a promotion as files: the checkpoint inside the trial's logged model.

Which trial is the candidate is :func:`mscm.tracking.trials.select_trial` (the same rule as the
search's own summary). Its weights are read from the one copy MLflow keeps, the logged model, so a
promotion works on any machine that reaches the store, whether or not it sees Ray's checkpoints.
"""

from __future__ import annotations

from pathlib import Path

from ..checkpoint import CheckpointError
from ..tracking.contract import MODEL_ERROR_TAG, MODEL_URI_TAG
from ..tracking.trials import SelectionError, TrialChoice


def checkpoint_dir(client, choice: TrialChoice, scratch: str | Path) -> Path:
    """The trial's best checkpoint, read in ``scratch`` from its logged model."""
    from ..tracking.model_logging import checkpoint_from_model

    if not choice.model_uri:
        raise SelectionError(
            f"trial {choice.trial_id} (run {choice.run_id}) has no logged model to promote "
            f"(tag {MODEL_URI_TAG}); its run may carry a {MODEL_ERROR_TAG} tag"
        )
    try:
        return checkpoint_from_model(choice.model_uri, client.tracking_uri, scratch)
    except CheckpointError as e:
        raise SelectionError(f"trial {choice.trial_id}: its logged model cannot be used: {e}") from None
    except Exception as e:  # MlflowException, OSError: deleted artifacts, a store that moved
        raise SelectionError(
            f"trial {choice.trial_id}: its logged model {choice.model_uri} cannot be read ({type(e).__name__}: {e})"
        ) from None
