"""Which worker failures Ray Train retries, and how a worker's MscmError reaches the driver.

Ray Train restarts the worker group ``train.max_failures`` times on any worker error. That is right
for a lost worker or node, and wrong for an :class:`~mscm.errors.MscmError` (an unreadable image,
wrong weights): the same input fails again on every attempt. :class:`MscmTorchTrainer` runs its
controller with :class:`DeterministicErrorPolicy`, which raises those at once, and :func:`fit`
re-raises the worker's own error on the driver instead of Ray's ``WorkerGroupError`` wrapper.
:func:`fit_retrying` goes on past those restarts when workers were lost, not when code or data failed
(a spot fleet pre-empts a long trial's nodes more often than any fixed ``max_failures``, issue 24).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ray.exceptions import NodeDiedError, RayActorError
from ray.train.torch import TorchTrainer
from ray.train.v2._internal.exceptions import (
    WorkerGroupStartupFailedError,
    WorkerGroupStartupTimeoutError,
    WorkerHealthCheckFailedError,
    WorkerHealthCheckTimeoutError,
)
from ray.train.v2._internal.execution.failure_handling import DefaultFailurePolicy, FailureDecision
from ray.train.v2.api.exceptions import ControllerError, PreemptionError, TrainingFailedError, WorkerGroupError

from ..errors import find_mscm_error, one_line, qualified_names

log = logging.getLogger(__name__)

# Ray Train's worker logs every training-function error with its traceback through this logger.
_RAY_WORKER_ERROR_LOGGER = "ray.train.v2._internal.util"


class DeterministicErrorPolicy(DefaultFailurePolicy):
    """Ray's default policy, except that a worker group failing on an MscmError is not retried."""

    def _is_retryable_error(self, training_failed_error: TrainingFailedError) -> bool:
        if find_mscm_error(training_failed_error) is not None:
            return False
        return super()._is_retryable_error(training_failed_error)

    def _log_decision(self, decision: FailureDecision, training_failed_error, error_count, retry_limit) -> None:
        err = find_mscm_error(training_failed_error)
        if err is None:
            super()._log_decision(decision, training_failed_error, error_count, retry_limit)
        else:  # one line: the driver prints the error itself
            log.warning("not retried (it fails the same way every time): %s", one_line(str(err)))


class MscmTorchTrainer(TorchTrainer):
    """A TorchTrainer whose controller uses :class:`DeterministicErrorPolicy`.

    Ray 2.60 has no public switch for the failure policy; the trainer passes it to the controller
    in ``_initialize_and_run_controller``'s keyword arguments, which is where it is replaced.
    """

    def _initialize_and_run_controller(self, **controller_init_kwargs):
        controller_init_kwargs["failure_policy"] = DeterministicErrorPolicy(self.run_config.failure_config)
        return super()._initialize_and_run_controller(**controller_init_kwargs)


def fit(trainer: TorchTrainer):
    """``trainer.fit()``, re-raising a worker's MscmError with its own class and message."""
    try:
        return trainer.fit()
    except TrainingFailedError as e:
        err = find_mscm_error(e)
        if err is None:
            raise
        raise err from None


def _died(error: BaseException | None) -> bool:
    """A worker that is gone (its process or its node), not one whose code raised."""
    if isinstance(error, WorkerHealthCheckFailedError):
        error = error.health_check_failure
    return isinstance(error, (RayActorError, NodeDiedError, WorkerHealthCheckTimeoutError))


def lost_workers(error: BaseException) -> str | None:
    """Why a Train run failed, when it failed because workers or their nodes went away: a retry from the
    latest checkpoint can finish it. None for anything else (an error in the code or the data fails the
    same way again).

    As Ray Train's own preemption test does, one dead worker is enough: when a rank dies, the others
    fail with collateral errors (a collective aborted, a connection reset)."""
    if isinstance(error, PreemptionError):
        return "its node was pre-empted"
    if isinstance(error, WorkerGroupError):
        dead = [rank for rank, failure in sorted(error.worker_failures.items()) if _died(failure)]
        if dead:
            return f"worker rank {', '.join(map(str, dead))} lost (its process or node is gone)"
    if isinstance(error, ControllerError) and isinstance(
        error.controller_failure, (WorkerGroupStartupFailedError, WorkerGroupStartupTimeoutError)
    ):
        return "its workers could not be started (a node lost while they were placed)"
    return None


def fit_retrying(
    make_trainer: Callable[[int, str], TorchTrainer], retries: int, on_retry: Callable[[int, str], None] = print
):
    """:func:`fit` again, up to ``retries`` more times, while it fails on :func:`lost_workers` (after Ray
    Train's own ``train.max_failures`` restarts were spent). ``make_trainer(attempt, reason)`` must build
    a trainer with the same run name and storage, so each attempt continues the same Train run from its
    latest checkpoint. Deterministic errors (an MscmError, anything not a lost worker) are raised at once."""
    attempt, reason = 0, ""
    while True:
        try:
            return fit(make_trainer(attempt, reason))
        except TrainingFailedError as e:
            why = lost_workers(e)
            if why is None or attempt >= retries:
                raise
            attempt, reason = attempt + 1, why
            on_retry(attempt, reason)


class _ExpectedErrorFilter(logging.Filter):
    """Drops Ray's traceback record of a training-function error that is an MscmError."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Error in training function"):
            return True
        last = message.rstrip().splitlines()[-1]
        return last.split(":", 1)[0] not in qualified_names()


def quiet_expected_errors() -> None:
    """In a Train worker: an MscmError reaches the user once, as one line on the driver, not as a
    traceback from every rank. Other errors keep their tracebacks."""
    logger = logging.getLogger(_RAY_WORKER_ERROR_LOGGER)
    if not any(isinstance(f, _ExpectedErrorFilter) for f in logger.filters):
        logger.addFilter(_ExpectedErrorFilter())
