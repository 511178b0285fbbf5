"""The error contract: every error mscm raises on purpose is an MscmError that survives pickling
(as Ray moves it between processes), and Ray Train neither retries it nor hides it in a wrapper."""

from __future__ import annotations

import importlib
import pickle
import pkgutil

import pytest

import mscm
from mscm.errors import MscmError, find_mscm_error, one_line

# Subclasses whose __init__ takes other arguments than the message.
SPECIAL = {
    "ConfigError": lambda cls: cls("run.yaml", "loss.qct_margin", "must be > 0, got -1"),
    "CorruptImageError": lambda cls: cls("/data/cam1/0001/0001.jpg", "truncated JPEG"),
}


def _import_all() -> None:
    for info in pkgutil.walk_packages(mscm.__path__, "mscm."):
        if info.name != "mscm.__main__":  # runs the command line on import
            importlib.import_module(info.name)


def all_error_classes() -> list[type]:
    _import_all()
    out, todo = [], [MscmError]
    while todo:
        cls = todo.pop()
        # Ray makes a RayTaskError(<class>) subclass of an error that crossed a task in this process; with
        # the tests on two processes (pytest-xdist) an earlier test may have made one: not mscm's own.
        if cls.__module__.split(".")[0] == "mscm":
            out.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(out), key=lambda c: f"{c.__module__}.{c.__qualname__}")


def make(cls: type) -> MscmError:
    build = SPECIAL.get(cls.__name__, lambda c: c(f"something about {c.__name__} is wrong", hint="try X"))
    err = build(cls)
    err.extra_detail = {"file": "f.yaml"}  # attributes travel too
    return err


def test_every_error_category_exists_and_derives_from_the_base():
    names = {c.__name__ for c in all_error_classes()}
    for name in (
        "ConfigError",
        "DatasetError",
        "CorruptImageError",
        "PretrainedWeightsError",
        "CheckpointError",
        "StorageError",
        "TrackingError",
        "UsageError",
        "RegistryError",
        "PromotionError",
        "SelectionError",
        "ModelSourceError",
        "ExportError",
        "RetrievalError",
        "NonFiniteLossError",
    ):
        assert name in names


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_each_error_survives_a_pickle_round_trip(cls):
    err = make(cls)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert str(back) == str(err)
    assert back.hint == err.hint
    assert back.extra_detail == {"file": "f.yaml"}
    if cls.__name__ == "CorruptImageError":
        assert (back.path, back.reason) == (err.path, err.reason)
    if cls.__name__ == "ConfigError":
        assert (back.source, back.key, back.problem) == ("run.yaml", "loss.qct_margin", "must be > 0, got -1")


def _raise(err):
    raise err


@pytest.mark.ray
def test_each_error_crosses_a_real_ray_task_with_its_class_and_message(local_ray):
    import sys

    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # tests/ is not on the workers' path
    remote = ray.remote(_raise)
    for cls in all_error_classes():
        err = make(cls)
        with pytest.raises(cls) as info:
            ray.get(remote.remote(err))
        found = find_mscm_error(info.value)
        assert type(found) is cls, cls
        assert str(found) == str(err)
        assert found.hint == err.hint


def test_the_failure_policy_does_not_retry_an_mscm_error_and_retries_the_rest():
    from ray.train import FailureConfig
    from ray.train.v2._internal.exceptions import UserExceptionWithTraceback
    from ray.train.v2._internal.execution.failure_handling import FailureDecision
    from ray.train.v2.api.exceptions import WorkerGroupError

    from mscm.datasets.errors import CorruptImageError
    from mscm.train.failures import DeterministicErrorPolicy

    def group_error(exc):
        return WorkerGroupError("boom", {0: UserExceptionWithTraceback(exc, "Traceback ...")})

    policy = DeterministicErrorPolicy(FailureConfig(max_failures=3))
    assert policy.make_decision(group_error(CorruptImageError("/x.jpg", "broken"))) is FailureDecision.RAISE
    assert policy.make_decision(group_error(RuntimeError("worker lost"))) is FailureDecision.RETRY
    # A worker group error survives pickling with the MscmError inside (the controller returns it).
    back = pickle.loads(pickle.dumps(group_error(CorruptImageError("/x.jpg", "broken"))))
    assert isinstance(find_mscm_error(back), CorruptImageError)


def test_messages_are_one_line_without_colour_codes():
    assert one_line("\x1b[36mfirst\x1b[0m\n  second  \n") == "first second"
