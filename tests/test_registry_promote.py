"""Promotion end to end on synthetic data: a search's MLflow record (tests/registry_fixtures.py), dry
runs, promotion, idempotency, a worse candidate refused, a damaged champion reported with the registry
untouched, loading by alias, TorchScript export and gallery retrieval.

The fixture's models are barely trained (CPU seconds), so which trial is better is measured, not
assumed: the dry runs evaluate each trial on the full protocol and the test orders them by that.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from registry_fixtures import HEIGHT, WIDTH, build_search_store

from mscm.cli import main as cli_main
from mscm.config import RunConfig, from_dict
from mscm.registry.describe import TAG_CHECKPOINT_URI
from mscm.registry.promote import PromotionError, promote
from mscm.registry.settings import PromotionSettings
from mscm.registry.source import checkpoint_sha256

NAME = "mscm-sysu"  # the default registered model of a sysu search


@pytest.fixture(scope="module", autouse=True)
def decoy_global_store(tmp_path_factory):
    """Point MLflow's process-wide tracking and registry URIs at another, empty store, as an earlier
    caller in the same process may have: promotion must read and write only the store it is given."""
    import mlflow

    before = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    decoy = f"sqlite:///{tmp_path_factory.mktemp('decoy')}/decoy.db"
    mlflow.set_tracking_uri(decoy)
    mlflow.set_registry_uri(decoy)
    yield decoy
    mlflow.set_tracking_uri(before[0])
    mlflow.set_registry_uri(before[1])


@pytest.fixture(scope="module")
def store(tmp_path_factory, decoy_global_store):
    return build_search_store(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def client(store):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=store.tracking_uri, registry_uri=store.tracking_uri)


def snapshot(client, store) -> tuple:
    """Everything a promotion could write: registered models, versions with their tags and aliases, runs."""
    models = []
    for rm in client.search_registered_models():
        versions = sorted(
            (v.version, tuple(sorted(v.tags.items())), v.description)
            for v in client.search_model_versions(f"name = '{rm.name}'")
        )
        models.append((rm.name, tuple(sorted(rm.aliases.items())), tuple(versions)))
    exp = client.get_experiment_by_name(store.experiment)
    runs = client.search_runs([exp.experiment_id], max_results=10000)
    return tuple(sorted(models)), len(runs)


@pytest.fixture(scope="module")
def dry_runs(store, client):
    before = snapshot(client, store)
    outcomes = {
        t: promote(store.search, tracking_uri=store.tracking_uri, trial_id=t, dry_run=True, progress=False)
        for t in store.trial_runs
    }
    return outcomes, before, snapshot(client, store)


@pytest.fixture(scope="module")
def ranked(dry_runs):
    """(better, worse) trial ids by the full-protocol decision value the dry runs measured."""
    outcomes = dry_runs[0]
    values = {t: o.candidate_value for t, o in outcomes.items()}
    assert len(set(values.values())) == len(values), f"the fixture's trials tie: {values}"
    better, worse = sorted(values, key=values.get, reverse=True)
    return better, worse


@pytest.fixture(scope="module")
def champion(store, ranked):
    return promote(store.search, tracking_uri=store.tracking_uri, trial_id=ranked[0], progress=False)


def test_dry_run_prints_the_decision_and_changes_nothing(dry_runs, store):
    outcomes, before, after = dry_runs
    assert before == after
    for o in outcomes.values():
        assert o.dry_run and o.action == "champion" and o.version is None and "no champion yet" in o.reason
        assert set(o.candidate_results) == {"sysu-all", "sysu-indoor"}  # both search modes
        assert all(len(r.trials) == 10 for r in o.candidate_results.values())  # all trials of the protocol
        assert "dry run: would register" in o.message() and "nothing was changed" in o.message()


def test_first_promotion_registers_the_champion_with_a_readable_record(
    champion, client, store, ranked, dry_runs, decoy_global_store
):
    from mlflow import MlflowClient

    from mscm.data import read_dataset
    from mscm.data.fingerprint import data_fingerprint

    decoy = MlflowClient(tracking_uri=decoy_global_store, registry_uri=decoy_global_store)
    assert decoy.search_registered_models() == [], "promotion wrote to the process-global registry"

    better = ranked[0]
    assert champion.action == "champion" and champion.version == "1"
    assert champion.candidate_value == dry_runs[0][better].candidate_value  # same protocol, same data
    mv = client.get_model_version_by_alias(NAME, "champion")
    assert str(mv.version) == "1"
    tags = mv.tags
    assert tags["mscm.search"] == store.search and tags["mscm.trial_id"] == better
    assert tags["mscm.source_run_id"] == store.trial_runs[better]
    assert tags["mscm.checkpoint_sha256"] == checkpoint_sha256(store.checkpoints[better])
    assert tags["mscm.dataset"] == "sysu" and tags["mscm.protocols"] == "sysu-all,sysu-indoor"
    ds = read_dataset("sysu", store.data_root)
    assert tags["mscm.data_fingerprint"] == data_fingerprint([r.path for r in ds.test_visible + ds.test_infrared])
    assert tags["mscm.code_version"].startswith("mscm ")
    cfg = from_dict(RunConfig, yaml.safe_load(tags["mscm.config"]))
    assert (cfg.data.height, cfg.data.width, cfg.model.backbone) == (HEIGHT, WIDTH, "resnet18")
    for protocol, result in champion.candidate_results.items():
        assert float(tags[f"mscm.metric.{protocol}.mAP"]) == pytest.approx(result.mean["mAP"], abs=1e-6)
    text = mv.description
    for needle in (
        store.search,
        better,
        "sysu-all (IR->VIS)",
        "sysu-indoor",
        "| R1 |",
        tags["mscm.data_fingerprint"],
        tags["mscm.code_version"],
        "Decision: champion",
        "model.backbone=resnet18",
    ):
        assert needle in text, needle
    # the promotion run keeps the checkpoint, the evaluation and the decision, under the search's run
    run = client.get_run(tags["mscm.promotion_run_id"])
    assert run.data.tags["mlflow.parentRunId"] == store.parent_run_id and run.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"checkpoint", "evaluation", "config", "decision.json", "promotion.md"} <= names


def test_promoting_the_same_trial_again_registers_nothing(champion, client, store, ranked):
    before = snapshot(client, store)
    again = promote(store.search, tracking_uri=store.tracking_uri, trial_id=ranked[0], progress=False)
    assert again.action == "noop" and again.version == "1" and "already version 1" in again.reason
    assert snapshot(client, store) == before


def test_a_worse_candidate_is_refused_and_becomes_challenger(champion, client, store, ranked, dry_runs):
    better, worse = ranked
    out = promote(store.search, tracking_uri=store.tracking_uri, trial_id=worse, progress=False)
    assert out.action == "challenger" and out.version == "2" and out.champion_version == "1"
    assert "not better than the champion" in out.reason and "challenger" in out.message()
    assert out.candidate_value == dry_runs[0][worse].candidate_value
    assert out.champion_value == dry_runs[0][better].candidate_value  # the champion, re-evaluated on the same data
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "1"
    assert str(client.get_model_version_by_alias(NAME, "challenger").version) == "2"
    before = snapshot(client, store)
    assert promote(store.search, tracking_uri=store.tracking_uri, trial_id=worse, progress=False).action == "noop"
    assert snapshot(client, store) == before


def test_cli_dry_run_picks_the_best_checkpoint_and_reports_errors(champion, client, store, capsys):
    before = snapshot(client, store)
    assert (
        cli_main(["promote", "--search", store.search, "--tracking-uri", store.tracking_uri, "--dry-run", "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    best = max(store.notes, key=lambda t: store.notes[t]["mAP"])  # by the best checkpoints' metrics
    assert f"candidate: search '{store.search}', trial {best} " in out
    assert "nothing to do" in out or "dry run" in out
    assert cli_main(["promote", "--search", "nope", "--tracking-uri", store.tracking_uri]) == 2
    assert "no search named 'nope'" in capsys.readouterr().err
    assert cli_main(["promote", "--search", store.search, "--tracking-uri", store.tracking_uri, "--margin", "-1"]) == 2
    assert "margin: must be >= 0" in capsys.readouterr().err
    assert snapshot(client, store) == before


def _artifact_path(client, run_id: str, path: str) -> Path:
    return Path(urlparse(client.get_run(run_id).info.artifact_uri).path) / path


def _clone_champion(client, store, name: str, scratch: Path) -> tuple[str, Path]:
    """A registered model ``name`` whose champion is a copy of mscm-sysu's (own checkpoint and model
    files, so breaking them leaves the real champion intact); returns (run id, artifact folder)."""
    from mscm.registry.source import download

    src = client.get_model_version_by_alias(NAME, "champion")
    exp = client.get_experiment_by_name(store.experiment)
    run = client.create_run(exp.experiment_id, run_name=f"copy-for-{name}")
    tmp = scratch / f"copy-{name}"
    client.log_artifacts(
        run.info.run_id,
        str(download(src.tags[TAG_CHECKPOINT_URI], tmp / "c", store.tracking_uri, "champion checkpoint")),
        "checkpoint",
    )
    client.log_artifacts(
        run.info.run_id, str(download(src.source, tmp / "m", store.tracking_uri, "champion model")), "model"
    )
    client.set_terminated(run.info.run_id)
    tags = dict(src.tags, **{TAG_CHECKPOINT_URI: f"runs:/{run.info.run_id}/checkpoint"})
    client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id, tags=tags)
    client.set_registered_model_alias(name, "champion", mv.version)
    return run.info.run_id, _artifact_path(client, run.info.run_id, "")


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, message",
    [
        ("checkpoint-corrupted", r"checkpoint runs:/\w+/checkpoint is corrupted"),
        ("checkpoint-missing", r"its checkpoint is missing"),
        ("model-corrupted", r"model files at runs:/\w+/model is corrupted"),
        ("no-alias", r"has 1 version\(s\) but no 'champion' alias"),
    ],
)
def test_a_damaged_or_missing_champion_is_reported_and_nothing_changes(
    champion, client, store, ranked, damage, message, tmp_path
):
    name = f"broken-{damage}"
    _, artifacts = _clone_champion(client, store, name, tmp_path)
    if damage == "checkpoint-corrupted":
        _flip_bytes(artifacts / "checkpoint" / "model.pt")
    elif damage == "checkpoint-missing":
        shutil.rmtree(artifacts / "checkpoint")
    elif damage == "model-corrupted":
        _flip_bytes(max((p for p in (artifacts / "model").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size))
    else:
        client.delete_registered_model_alias(name, "champion")
    before = snapshot(client, store)
    with pytest.raises(PromotionError, match=message) as err:
        promote(
            store.search,
            PromotionSettings(registered_model=name),
            tracking_uri=store.tracking_uri,
            trial_id=ranked[1],
            progress=False,
        )
    assert "Nothing was changed" in str(err.value)
    assert snapshot(client, store) == before


@pytest.fixture(scope="module")
def champion_embedder(champion, store):
    """``models:/mscm-sysu@champion`` loaded as ``mscm retrieve`` loads it, once."""
    from mscm.registry.source import load_embedder

    return load_embedder(f"models:/{NAME}@champion", store.tracking_uri)


def test_the_champion_loads_by_alias_and_embeds_with_its_signature(champion_embedder, store, ranked):
    import mlflow

    from mscm.tracking.model_logging import embedding_model_from_checkpoint

    mlflow.set_tracking_uri(store.tracking_uri)
    mlflow.set_registry_uri(store.tracking_uri)
    info = mlflow.models.get_model_info(f"models:/{NAME}@champion")
    assert info.signature.inputs.input_names() == ["image", "modality"]  # rows: docs/promotion.md
    assert (info.metadata["height"], info.metadata["width"]) == (HEIGHT, WIDTH)
    assert info.signature.outputs.inputs[0].shape == (
        -1,
        champion_embedder.module(
            torch.zeros(1, HEIGHT, WIDTH, 3, dtype=torch.uint8), torch.zeros(1, dtype=torch.int64)
        ).shape[1],
    )
    assert (champion_embedder.height, champion_embedder.width) == (HEIGHT, WIDTH)
    reference, _, _ = embedding_model_from_checkpoint(store.checkpoints[ranked[0]])
    x = torch.randint(0, 256, (5, HEIGHT, WIDTH, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    m = torch.tensor([1, 0, 1, 1, 0])
    with torch.inference_mode():
        got, want = champion_embedder.module(x, m), reference(x, m)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.allclose(got.norm(dim=1), torch.ones(5), atol=1e-4)
    assert (got - want).abs().max() < 1e-4


def test_export_torchscript_gives_the_pytorch_embeddings(champion, store, ranked, tmp_path, capsys):
    from mscm.tracking.model_logging import embedding_model_from_checkpoint

    out = tmp_path / "champion.ts"
    assert (
        cli_main(
            ["export", "--model", f"models:/{NAME}@champion", "--out", str(out), "--tracking-uri", store.tracking_uri]
        )
        == 0
    )
    assert "max |difference| to the PyTorch model" in capsys.readouterr().out
    scripted = torch.jit.load(str(out))
    reference, _, _ = embedding_model_from_checkpoint(store.checkpoints[ranked[0]])
    x = torch.randint(0, 256, (4, HEIGHT, WIDTH, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    m = torch.tensor([0, 1, 1, 0])
    with torch.inference_mode():
        assert (scripted(x, m) - reference(x, m)).abs().max() < 1e-4
    assert (
        cli_main(
            [
                "export",
                "--model",
                "models:/nope@champion",
                "--out",
                str(tmp_path / "x.ts"),
                "--tracking-uri",
                store.tracking_uri,
            ]
        )
        == 2
    )
    assert "models:/nope@champion: not in the registry" in capsys.readouterr().err


def test_retrieval_ranks_near_duplicates_first(champion_embedder, store, ranked, tmp_path, capsys):
    """Ranking correctness with a barely trained model: the gallery holds, for each query, a
    near-duplicate (the same infrared image with +-3 grey levels of noise) among every other infrared
    test image, embedded with the same (infrared) branch, so each near-duplicate must rank first.
    Chance level for top-1 is 1 / gallery size."""
    from mscm.data import read_dataset
    from mscm.registry.retrieve import rank_queries

    ds = read_dataset("sysu", store.data_root)
    first = {}
    for r in ds.test_infrared:
        first.setdefault(r.pid, r.path)
    queries = list(first.values())
    gallery = tmp_path / "gallery"
    gallery.mkdir()
    for j, r in enumerate(ds.test_infrared):
        if r.path not in queries:
            shutil.copy(r.path, gallery / f"{j:03d}{Path(r.path).suffix}")
    rng = np.random.default_rng(0)
    for i, q in enumerate(queries):
        img = np.asarray(Image.open(q).convert("RGB")).astype(np.int16)
        Image.fromarray(np.clip(img + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)).save(
            gallery / f"dup-{i}.png"
        )

    rankings = rank_queries(
        champion_embedder, queries, gallery, "infrared", gallery_modality="infrared", top=3, progress=False
    )
    hits = sum(Path(r.matches[0].path).name == f"dup-{i}.png" for i, r in enumerate(rankings))
    size = rankings[0].gallery_size
    accuracy = hits / len(queries)
    assert size == len(ds.test_infrared) and accuracy >= 0.75 and accuracy > 10 / size, (accuracy, size)

    # the command line (with the checkpoint folder as model) writes the ranked list and the grid
    out = tmp_path / "out"
    assert (
        cli_main(
            [
                "retrieve",
                "--model",
                str(store.checkpoints[ranked[0]]),
                "--query",
                queries[0],
                "--modality",
                "infrared",
                "--gallery",
                str(gallery),
                "--gallery-modality",
                "infrared",
                "--top",
                "5",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    lines = (out / "ranked.csv").read_text().splitlines()
    assert lines[0] == "rank,score,path" and len(lines) == 6 and lines[1].endswith("dup-0.png")
    scores = [float(line.split(",")[1]) for line in lines[1:]]
    assert scores == sorted(scores, reverse=True)
    assert json.loads((out / "ranked.json").read_text())["gallery_size"] == size
    with Image.open(out / "grid.png") as grid:
        assert grid.width > 6 * 64 and grid.height > 160  # 6 tiles of at least 96 px
    assert "dup-0.png" in capsys.readouterr().out


def test_the_candidate_is_rebuilt_from_its_logged_model_with_the_same_weights(store, client, tmp_path):
    import dataclasses

    from mscm.checkpoint import load_model_payload
    from mscm.registry.select import checkpoint_dir
    from mscm.tracking.trials import SelectionError, find_search, select_trial

    choice = select_trial(client, find_search(client, store.search), "mAP")
    # The Ray checkpoint may be on another node: promotion never reads it, only the logged model.
    moved = dataclasses.replace(choice, checkpoint_path=str(tmp_path / "on-another-node"))
    local = checkpoint_dir(client, moved, tmp_path / "scratch")
    assert checkpoint_sha256(local) == checkpoint_sha256(store.checkpoints[choice.trial_id])
    rebuilt, original = load_model_payload(local), load_model_payload(store.checkpoints[choice.trial_id])
    assert rebuilt["config"] == original["config"] and rebuilt["num_classes"] == original["num_classes"]
    assert rebuilt["epoch"] == original["epoch"]
    with pytest.raises(SelectionError, match="has no logged model"):
        checkpoint_dir(client, dataclasses.replace(moved, model_uri=None), tmp_path / "scratch2")
    with pytest.raises(SelectionError, match="cannot be read"):
        checkpoint_dir(client, dataclasses.replace(moved, model_uri="models:/m-0000"), tmp_path / "scratch3")


def test_a_trial_stores_its_weights_once(store, client):
    """The trial's MLflow artifacts: the logged model (weights once) plus small evaluation files."""
    from mscm.checkpoint import load_model_payload

    run_id = store.trial_runs[next(iter(store.trial_runs))]
    run = client.get_run(run_id)
    root = Path(urlparse(run.info.artifact_uri).path)
    model = client.get_logged_model(run.data.tags["model_uri"].split("/", 1)[1])
    model_root = Path(urlparse(model.artifact_location).path)
    files = [p for p in (*root.rglob("*"), *model_root.rglob("*")) if p.is_file()]
    state = load_model_payload(next(iter(store.checkpoints.values())))["state_dict"]
    weights = sum(t.numel() * t.element_size() for t in state.values())
    # the weights once: the model's checkpoint/model.pt, never the optimiser state
    assert [p.relative_to(model_root).as_posix() for p in files if p.name == "model.pt"] == ["checkpoint/model.pt"]
    assert not any(p.name == "train_state.pt" for p in files), files
    assert sum(p.stat().st_size for p in files) <= 1.3 * weights
