"""Bad input through the real commands: one clear line, exit 2, no traceback, nothing written.

Every case runs ``python -m mscm ...`` (or ``jobs/*.py``) in a fresh process, in a scratch working
directory, with ``MSCM_HOME`` and every store pointed into the test's own folder. The preflight
finds each problem before Ray starts, so none of these starts a Ray cluster.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from data_fixtures import copy_dataset, synthetic

REPO = Path(__file__).resolve().parent.parent
SIZE = ["--set", "data.height=64", "--set", "data.width=32", "--set", "model.alb_heads=2"]


class Stores:
    """A scratch home, working directory and store locations; ``untouched()`` says nothing was written."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.home, self.cwd = tmp / "home", tmp / "cwd"
        self.home.mkdir()
        self.cwd.mkdir()
        self.mlflow = tmp / "stores" / "mlflow.db"
        self.ray = tmp / "stores" / "ray_results"
        self.optuna = tmp / "stores" / "optuna.db"

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        full_env = {**os.environ, "MSCM_HOME": str(self.home), "PYTHONPATH": str(REPO / "platform")}
        full_env.pop("MLFLOW_TRACKING_URI", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, *args], cwd=self.cwd, env=full_env, capture_output=True, text=True, timeout=120
        )

    def train(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(
            "-m",
            "mscm",
            "train",
            "-c",
            "smoke",
            *SIZE,
            "--tracking-uri",
            f"sqlite:///{self.mlflow}",
            "--set",
            f"train.storage_path={self.ray}",
            *args,
        )

    def tune(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(
            str(REPO / "jobs" / "tune_mimb.py"),
            "--tracking-uri",
            f"sqlite:///{self.mlflow}",
            "--storage-path",
            str(self.ray),
            *args,
        )

    def untouched(self) -> bool:
        return not any(self.home.iterdir()) and not any(self.cwd.iterdir()) and not (self.tmp / "stores").exists()


def assert_bad_input(proc: subprocess.CompletedProcess, command: str, *names: str) -> str:
    """Exit 2, ``mscm <command>: error: ...`` naming every one of ``names``, no traceback."""
    output = proc.stdout + proc.stderr
    assert proc.returncode == 2, output
    assert "Traceback" not in output, output
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith(f"mscm {command}: error: ")]
    assert len(errors) == 1, output
    for name in names:
        assert name in errors[0], errors[0]
    return errors[0]


@pytest.fixture
def stores(tmp_path) -> Stores:
    return Stores(tmp_path)


@pytest.fixture(scope="module")
def sysu(tmp_path_factory) -> Path:
    return synthetic(tmp_path_factory, "sysu", identities=24)


@pytest.fixture(scope="module")
def regdb(tmp_path_factory) -> Path:
    return synthetic(tmp_path_factory, "regdb", identities=12)


def _damaged(src: Path, tmp: Path) -> Path:
    return copy_dataset(src, tmp / "data" / src.name)


def _first_image(root: Path, cam: str = "cam1") -> Path:
    return sorted((root / cam).glob("*/*.jpg"))[0]


# -- the dataset -------------------------------------------------------------------------------


@pytest.mark.portable
def test_missing_dataset_root(stores, tmp_path):
    missing = tmp_path / "no-such-dataset"
    proc = stores.train("--set", f"data.root={missing}")
    assert_bad_input(proc, "train", str(missing), "SYSU-MM01 root")
    assert "hint: --set data.root=" in proc.stderr
    assert stores.untouched()


def test_missing_dataset_root_in_a_search(stores, tmp_path):
    missing = tmp_path / "no-such-dataset"
    proc = stores.tune("--dataset-root", str(missing), "--optuna-url", f"sqlite:///{stores.optuna}")
    assert_bad_input(proc, "tune", str(missing))
    assert stores.untouched()


@pytest.mark.parametrize("removed", ["exp", "exp/test_id.txt"])
def test_missing_split_folder_or_file(stores, sysu, tmp_path, removed):
    root = _damaged(sysu, tmp_path)
    target = root / removed
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    proc = stores.train("--set", f"data.root={root}")
    assert_bad_input(proc, "train", str(target))
    assert stores.untouched()


def test_truncated_jpeg(stores, sysu, tmp_path):
    root = _damaged(sysu, tmp_path)
    image = _first_image(root)
    image.write_bytes(image.read_bytes()[: image.stat().st_size // 2])
    proc = stores.train("--set", f"data.root={root}")
    assert_bad_input(proc, "train", str(image))
    assert "hint: --set data.skip_corrupt=true" in proc.stderr
    assert stores.untouched()


def test_non_image_file_with_an_image_suffix(stores, sysu, tmp_path):
    root = _damaged(sysu, tmp_path)
    image = _first_image(root, "cam3")
    image.write_text("these are not the pixels you are looking for\n")
    proc = stores.train("--set", f"data.root={root}")
    assert_bad_input(proc, "train", str(image), "not an image")
    assert stores.untouched()


def test_empty_camera_folder(stores, sysu, tmp_path):
    root = _damaged(sysu, tmp_path)
    shutil.rmtree(root / "cam2")
    (root / "cam2").mkdir()
    proc = stores.train("--set", f"data.root={root}")
    assert_bad_input(proc, "train", "cam2", str(root))
    assert stores.untouched()


def _drop_infrared(root: Path) -> int:
    """Remove every infrared image of one training identity; returns its pid."""
    train = sorted(int(t) for t in (root / "exp" / "train_id.txt").read_text().strip().split(","))
    pid = next(p for p in train if (root / "cam3" / f"{p:04d}").is_dir() or (root / "cam6" / f"{p:04d}").is_dir())
    for cam in ("cam3", "cam6"):
        shutil.rmtree(root / cam / f"{pid:04d}", ignore_errors=True)
    return pid


def test_identity_without_one_modality_is_an_error_by_default(stores, sysu, tmp_path):
    root = _damaged(sysu, tmp_path)
    pid = _drop_infrared(root)
    proc = stores.train("--set", f"data.root={root}")
    line = assert_bad_input(proc, "train", "one modality only", str(pid))
    assert str(root) in line
    assert "hint: --set data.missing_modality=warn" in proc.stderr
    assert stores.untouched()


def test_identity_without_one_modality_is_a_reported_warning_by_configuration(sysu, tmp_path):
    from mscm.config import load_run_config
    from mscm.preflight import check_dataset

    root = _damaged(sysu, tmp_path)
    pid = _drop_infrared(root)
    cfg = load_run_config("smoke", {"data.root": str(root), "data.missing_modality": "warn"})
    check = check_dataset(cfg.data, progress=False)
    assert pid in check.dataset.incomplete_ids
    assert pid not in {r.pid for r in check.dataset.train_visible}
    assert any("one modality only" in w and str(pid) in w for w in check.warnings)


def test_regdb_index_line_without_a_label(stores, regdb, tmp_path):
    root = _damaged(regdb, tmp_path)
    index = root / "idx" / "train_visible_1.txt"
    lines = index.read_text().splitlines()
    lines[2] = lines[2].split()[0]
    index.write_text("\n".join(lines) + "\n")
    proc = stores.train("--set", "data.dataset=regdb", "--set", "eval.protocol=regdb-v2t", "--set", f"data.root={root}")
    assert_bad_input(proc, "train", f"{index}:3", "<label>")
    assert stores.untouched()


def test_unreadable_images_are_skipped_and_counted_when_configured(sysu, tmp_path):
    from mscm.config import load_run_config
    from mscm.preflight import check_dataset

    root = _damaged(sysu, tmp_path)
    bad = [_first_image(root, "cam1"), _first_image(root, "cam3")]
    for image in bad:
        image.write_bytes(b"\xff\xd8\xff garbage")
    cfg = load_run_config("smoke", {"data.root": str(root), "data.skip_corrupt": True})
    check = check_dataset(cfg.data, progress=False)
    assert sorted(p for p, _ in check.unreadable) == sorted(map(str, bad))
    assert any(w.startswith(f"2 of {check.images} images are unreadable") for w in check.warnings)


# -- weights and checkpoints -------------------------------------------------------------------


def _resnet_state(backbone: str) -> dict:
    from mscm.model.backbone import build_resnet

    return build_resnet(backbone).state_dict()


def test_pretrained_weights_of_another_backbone(stores, sysu, tmp_path):
    import torch

    weights = tmp_path / "resnet18.pth"
    torch.save(_resnet_state("resnet18"), weights)
    proc = stores.train(
        "--set", f"data.root={sysu}", "--set", f"model.pretrained={weights}", "--set", "model.backbone=resnet50"
    )
    assert_bad_input(proc, "train", "model.pretrained", str(weights), "resnet50")
    assert stores.untouched()


def test_pretrained_weights_with_missing_keys(stores, sysu, tmp_path):
    import torch

    weights = tmp_path / "partial.pth"
    torch.save({k: v for k, v in _resnet_state("resnet18").items() if not k.startswith("layer4.")}, weights)
    proc = stores.train("--set", f"data.root={sysu}", "--set", f"model.pretrained={weights}")
    assert_bad_input(proc, "train", str(weights), "missing keys", "layer4.")
    assert stores.untouched()


class _RunsCode:
    """Unpickling this would run a shell command that leaves a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _code_pickle(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"conv1.weight": _RunsCode(marker)}, path)
    with open(path.with_suffix(".raw"), "wb") as fh:  # a plain pickle as well as torch's zip format
        pickle.dump({"conv1.weight": _RunsCode(marker)}, fh)
    return path


@pytest.mark.parametrize("form", ["torch", "raw"])
def test_a_pickle_that_would_run_code_as_weights_is_refused_unrun(stores, sysu, tmp_path, form):
    marker = tmp_path / "code-ran"
    weights = _code_pickle(tmp_path / "evil.pth", marker)
    weights = weights if form == "torch" else weights.with_suffix(".raw")
    proc = stores.train("--set", f"data.root={sysu}", "--set", f"model.pretrained={weights}")
    line = assert_bad_input(proc, "train", "model.pretrained", str(weights))
    assert "refused" in line or "not a readable torch file" in line
    assert not marker.exists()
    assert stores.untouched()


def test_a_pickle_that_would_run_code_as_a_checkpoint_is_refused_unrun(stores, tmp_path):
    marker = tmp_path / "code-ran"
    checkpoint = tmp_path / "checkpoint_000001"
    checkpoint.mkdir()
    _code_pickle(checkpoint / "model.pt", marker)
    proc = stores.run("-m", "mscm", "evaluate", "--checkpoint", str(checkpoint), "--quiet")
    line = assert_bad_input(proc, "evaluate", str(checkpoint / "model.pt"), "refused")
    assert "GLOBAL" in line
    assert not marker.exists()
    assert stores.untouched()


def test_a_folder_that_is_no_checkpoint(stores, tmp_path):
    proc = stores.run("-m", "mscm", "evaluate", "--checkpoint", str(tmp_path), "--quiet")
    assert_bad_input(proc, "evaluate", str(tmp_path / "model.pt"), "not found")
    assert stores.untouched()


# -- the stores --------------------------------------------------------------------------------


def test_storage_path_under_a_regular_file(stores, sysu, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    proc = stores.run(
        "-m",
        "mscm",
        "train",
        "-c",
        "smoke",
        *SIZE,
        "--set",
        f"data.root={sysu}",
        "--tracking-uri",
        f"sqlite:///{stores.mlflow}",
        "--set",
        f"train.storage_path={blocker}/ray",
    )
    assert_bad_input(proc, "train", "train.storage_path", str(blocker))
    assert stores.untouched()


@pytest.mark.parametrize(
    "uri, named",
    [
        ("sqlite:////proc/mscm-cannot-write-here/mlflow.db", "/proc"),  # unwritable, also for root
        ("foo://somewhere", "unsupported scheme 'foo'"),
        ("sqlite://", "names a file"),
        ("http://", "no host"),
        ("http://127.0.0.1:9", "no MLflow server answers"),  # port 9 (discard): nothing listens
    ],
)
def test_unwritable_or_malformed_tracking_uri(stores, sysu, uri, named):
    proc = stores.run(
        "-m",
        "mscm",
        "train",
        "-c",
        "smoke",
        *SIZE,
        "--set",
        f"data.root={sysu}",
        "--tracking-uri",
        uri,
        "--set",
        f"train.storage_path={stores.ray}",
    )
    assert_bad_input(proc, "train", repr(uri), named)
    assert stores.untouched()


def test_a_regular_file_as_tracking_uri(stores, sysu, tmp_path):
    plain = tmp_path / "notes.txt"
    plain.write_text("not a store")
    proc = stores.run(
        "-m",
        "mscm",
        "train",
        "-c",
        "smoke",
        *SIZE,
        "--set",
        f"data.root={sysu}",
        "--tracking-uri",
        str(plain),
        "--set",
        f"train.storage_path={stores.ray}",
    )
    assert_bad_input(proc, "train", str(plain), "is a file")
    assert stores.untouched()


def test_a_folder_store_without_mlflows_opt_out(stores, sysu, tmp_path):
    folder = tmp_path / "file-store"
    proc = stores.run(
        "-m",
        "mscm",
        "train",
        "-c",
        "smoke",
        *SIZE,
        "--set",
        f"data.root={sysu}",
        "--tracking-uri",
        str(folder),
        "--set",
        f"train.storage_path={stores.ray}",
        env={"MLFLOW_ALLOW_FILE_STORE": ""},
    )
    assert_bad_input(proc, "train", str(folder), "MLFLOW_ALLOW_FILE_STORE")
    assert not folder.exists()
    assert stores.untouched()


@pytest.mark.parametrize("url", ["not a url", "nosuchdialect://x/y"])
def test_malformed_optuna_url(stores, sysu, url):
    proc = stores.tune("--dataset-root", str(sysu), "--optuna-url", url)
    assert_bad_input(proc, "tune", "Optuna storage URL", repr(url))
    assert stores.untouched()


def test_promote_from_a_store_that_does_not_exist_creates_none(stores, tmp_path):
    missing = tmp_path / "nowhere" / "mlflow.db"
    proc = stores.run("-m", "mscm", "promote", "--search", "s", "--tracking-uri", f"sqlite:///{missing}")
    assert_bad_input(proc, "promote", str(missing), "no MLflow store")
    assert not missing.parent.exists()
    assert stores.untouched()


@pytest.mark.parametrize(
    "args, named",
    [
        (["--top", "2", "--seeds", "1"], "--seeds >= 2"),
        (["--top", "0"], "--top must be >= 1"),
    ],
)
def test_confirm_with_bad_counts_or_no_store_writes_nothing(stores, tmp_path, args, named):
    missing = tmp_path / "nowhere" / "mlflow.db"
    proc = stores.run("-m", "mscm", "confirm", "--search", "s", "--tracking-uri", f"sqlite:///{missing}", *args)
    assert_bad_input(proc, "confirm", named)
    proc = stores.run("-m", "mscm", "confirm", "--search", "s", "--tracking-uri", f"sqlite:///{missing}")
    assert_bad_input(proc, "confirm", str(missing), "no MLflow store")
    assert not missing.parent.exists()
    assert stores.untouched()


# -- search spaces (found by the space loader; kept working) -------------------------------------


@pytest.mark.parametrize(
    "change, named",
    [
        ({"budget": {"trials": 2, "epochs": 1, "typo": 1}}, "typo"),
        ({"parameters": {"loss.qct_margin": {"type": "float", "low": 0.9, "high": 0.3}}}, "loss.qct_margin"),
        (
            {
                "parameters": {
                    "optim.lr": {
                        "type": "log-float",
                        "low": 1e-4,
                        "high": 1e-2,
                        "condition": {"param": "optim.nosuch", "equals": "adamw"},
                    }
                }
            },
            "optim.nosuch",
        ),
    ],
)
def test_bad_search_space(stores, sysu, tmp_path, change, named):
    space = yaml.safe_load((REPO / "search_spaces" / "smoke.yaml").read_text())
    for key, value in change.items():
        space[key] = {**space.get(key, {}), **value} if key == "budget" else value
    path = tmp_path / "bad_space.yaml"
    path.write_text(yaml.safe_dump(space))
    proc = stores.tune("--space", str(path), "--dataset-root", str(sysu), "--optuna-url", f"sqlite:///{stores.optuna}")
    assert_bad_input(proc, "tune", str(path), named)
    assert stores.untouched()


def test_debug_shows_the_traceback(stores, tmp_path):
    missing = tmp_path / "no-such-dataset"
    proc = stores.train("--set", f"data.root={missing}", "--debug")
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "DatasetError" in proc.stderr
    env_proc = stores.run(
        "-m", "mscm", "train", "-c", "smoke", "--set", f"data.root={missing}", env={"MSCM_DEBUG": "1"}
    )
    assert "Traceback" in env_proc.stderr
