"""The checkpoint format refuses what is not an mscm checkpoint, with errors that name the file."""

from __future__ import annotations

import pickle

import pytest
import torch

from mscm.checkpoint import FORMAT, MODEL_FILE, CheckpointError, load_model_payload, load_state_strict


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model_payload(tmp_path / "nope")


def test_foreign_state_dict_is_refused(tmp_path):
    # e.g. a torchvision ResNet state dict passed where a training checkpoint is expected
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match=r"resnet.pth: not an mscm MSCMNet checkpoint"):
        load_model_payload(path)


def test_other_version_is_refused(tmp_path):
    (tmp_path / MODEL_FILE).write_bytes(b"")
    torch.save({"format": FORMAT, "version": 99}, tmp_path / MODEL_FILE)
    with pytest.raises(CheckpointError, match="version 99"):
        load_model_payload(tmp_path)


def test_truncated_file_is_refused(tmp_path):
    path = tmp_path / MODEL_FILE
    torch.save({"format": FORMAT, "version": 1, "state_dict": {"w": torch.zeros(100)}}, path)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_model_payload(path)


class Evil:
    def __reduce__(self):
        return (print, ("executed code from a checkpoint",))


def test_pickled_code_is_not_executed(tmp_path, capsys):
    path = tmp_path / MODEL_FILE
    with open(path, "wb") as f:
        torch.save({"format": FORMAT, "version": 1, "x": Evil()}, f, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="not a loadable checkpoint"):
        load_model_payload(path)
    assert "executed code" not in capsys.readouterr().out


def test_state_mismatch_names_the_key():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    state = {"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(2), "extra": torch.zeros(1)}
    with pytest.raises(CheckpointError, match=r"0\.weight: \(4, 3\) vs \(2, 3\)") as err:
        load_state_strict(model, state, "ckpt")
    assert "unexpected keys (first: extra)" in str(err.value)
