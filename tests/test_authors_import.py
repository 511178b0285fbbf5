"""`mscm import-authors`: a state dict in the layout of the authors' `embed_net` (built here from its key
names and shapes, facts of their model.py written down below; none of their code) converts to an mscm
checkpoint with the same weights and the same embeddings, drops and lists the unused keys, refuses a key
or shape that does not fit without writing anything, and registers as a champion that promotion reads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mscm.cli import main as cli_main

pytestmark = pytest.mark.slow
CLASSES = 395  # SYSU-MM01's training identities
EDIM = 288  # the ALBs' embedding: 24 x 12 positions at 384 x 192

# The authors' embed_net, as facts: each stem module wraps a whole ResNet-50 under this attribute; the
# non-local blocks NL_2.j / NL_3.j follow blocks 2+j of layer2 / 3+j of layer3; layerATT0..3 are the ALBs of
# the stem, layer1, layer2 and self scales, with projections ATT_narrow1 (6x6, stride 4) and ATT_narrow2 (4x4,
# stride 2) from `channel_layer` channels (64, 256, 512, 1024) to 256.
STEM_MODULES = [("visible_module", "visible"), ("visible_moduleA", "visible")]
STEM_MODULES += [("thermal_module", "thermal"), ("thermal_moduleA", "thermal")]
ALB_INPUT_CHANNELS = (64, 256, 512, 1024)
ALB_SCALES = ("stem", "layer1", "layer2", "self")
ALB_PROJECTION_USED = {0: "ATT_narrow1", 1: "ATT_narrow1", 2: "ATT_narrow2", 3: None}
ALB_NAMES = {"narrow": "ATT_narrow", "broad": "ATT_broad"}


def _resnet50_shapes() -> dict[str, tuple[int, ...]]:
    from torchvision.models import resnet50

    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in resnet50().state_dict().items()}


def _blank(shape) -> torch.Tensor:
    return torch.full(shape, 0.5) if shape else torch.tensor(7)


def authors_state(mscm: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """The authors' state dict holding mscm's weights where their network uses them, filler elsewhere;
    and how many of its keys are filler (unused)."""
    net, unused = {}, 0
    resnet = _resnet50_shapes()
    for i, (module, inner) in enumerate(STEM_MODULES):
        for k, shape in resnet.items():
            used = k.startswith(("conv1.", "bn1."))
            net[f"{module}.{inner}.{k}"] = mscm[f"stems.{i}.{k}"] if used else _blank(shape)
            unused += not used
    for k, shape in resnet.items():
        used = k.startswith("layer")
        net[f"base_resnet.base.{k}"] = mscm[k] if used else _blank(shape)
        unused += not used
    for k, v in mscm.items():
        if k.startswith("non_local.layer2."):
            block, rest = k.split(".", 3)[2:]
            net[f"NL_2.{int(block) - 2}.{rest}"] = v
        elif k.startswith("non_local.layer3."):
            block, rest = k.split(".", 3)[2:]
            net[f"NL_3.{int(block) - 3}.{rest}"] = v
        elif k.startswith("mimb.albs."):
            scale, part, rest = k.split(".", 4)[2:]
            n = ALB_SCALES.index(scale)
            name = ALB_PROJECTION_USED[n] if part == "project" else ALB_NAMES.get(part, part)
            net[f"layerATT{n}.{name}.{rest}"] = v
        elif k.startswith(("bottleneck.", "classifier.")):
            net[k] = v
    for n, channels in enumerate(ALB_INPUT_CHANNELS):
        for name, kernel in (("ATT_narrow1", 6), ("ATT_narrow2", 4)):
            if ALB_PROJECTION_USED[n] != name:
                net[f"layerATT{n}.{name}.weight"] = _blank((256, channels, kernel, kernel))
                net[f"layerATT{n}.{name}.bias"] = _blank((256,))
                unused += 2
    net["layerATT3.ln_1o.weight"], net["layerATT3.ln_1o.bias"] = _blank((EDIM,)), _blank((EDIM,))
    net["local_conv.weight"] = _blank((128, 64, 1, 1))
    for k in ("weight", "bias", "running_mean", "running_var"):
        net[f"feat_bn2d.{k}"] = _blank((128,))
    net["feat_bn2d.num_batches_tracked"] = _blank(())
    return net, unused + 2 + 1 + 5


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """An mscm network of the sysu recipe with trained-looking BN statistics, saved as the authors'
    train.py saves: {'net', 'cmc', 'mAP', 'mINP', 'epoch'} (numpy metrics)."""
    from mscm.config import load_run_config
    from mscm.model import build_model

    tmp = tmp_path_factory.mktemp("authors")
    cfg = load_run_config("sysu", {"model.pretrained": None})
    torch.manual_seed(11)
    model = build_model(cfg.model, CLASSES, cfg.data.height, cfg.data.width)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    mscm = {k: v.clone() for k, v in model.state_dict().items()}
    net, unused = authors_state(mscm)
    cmc = np.linspace(0.7853, 0.99, 50)
    path = tmp / "sysu_mscm_best.t"
    torch.save({"net": net, "cmc": cmc, "mAP": np.float64(0.7420), "mINP": np.float64(0.6129), "epoch": 95}, path)
    return path, mscm, unused, cfg, tmp


def test_the_import_gives_back_every_weight_and_lists_the_dropped_keys(released, capsys):
    from mscm.checkpoint import load_model

    path, mscm, unused, _, tmp = released
    out = tmp / "imported"
    assert cli_main(["import-authors", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"dropped {unused} keys" in printed
    assert "visible_module.visible.layer1: " in printed and "local_conv: 1 key" in printed
    assert "layerATT3.ln_1o: 2 keys" in printed and "authors' own figures: mAP 0.7420" in printed
    model, cfg, payload = load_model(out, "cpu")
    got = model.state_dict()
    assert set(got) == set(mscm)
    assert all(torch.equal(got[k], mscm[k]) for k in mscm)
    assert payload["epoch"] == 95 and payload["metrics"]["authors/R1"] == pytest.approx(0.7853)


def test_the_imported_model_embeds_as_the_network_the_weights_came_from(released):
    from mscm.model import build_model
    from mscm.model.inference import EmbeddingModel
    from mscm.registry.export import example_inputs
    from mscm.tracking.model_logging import embedding_model_from_checkpoint

    _, mscm, _, cfg, tmp = released
    imported, _, _ = embedding_model_from_checkpoint(tmp / "imported")
    original = build_model(cfg.model, CLASSES, cfg.data.height, cfg.data.width)
    original.load_state_dict(mscm)
    original = EmbeddingModel(original, cfg.eval.feature).eval()
    images, modality = example_inputs(2, cfg.data.height, cfg.data.width)
    with torch.inference_mode():
        assert torch.equal(imported(images, modality), original(images, modality))


def _edited(released, tmp_path, edit) -> tuple[int, str]:
    path, _, _, _, _ = released
    payload = torch.load(path, weights_only=False)  # this test's own file
    edit(payload["net"])
    bad = tmp_path / "edited.t"
    torch.save(payload, bad)
    return bad


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda net: net.__setitem__("attention_pool.weight", torch.zeros(3)),
            "key 'attention_pool.weight' is no part",
        ),
        (lambda net: net.__setitem__("NL_2.2.g.weight", torch.zeros(3)), "key 'NL_2.2.g.weight' is no part"),
        (
            lambda net: net.__setitem__("layerATT1.ATT_narrow1.weight", torch.zeros(256, 256, 5, 5)),
            "layerATT1.ATT_narrow1.weight has shape (256, 256, 5, 5)",
        ),
        (lambda net: net.pop("layerATT2.ln_2.bias"), "1 missing keys (first: mimb.albs.layer2.ln_2.bias)"),
    ],
)
def test_a_key_or_shape_that_does_not_fit_is_one_error_naming_it_and_nothing_is_written(
    released, tmp_path, capsys, edit, message
):
    bad = _edited(released, tmp_path, edit)
    out = tmp_path / "out"
    assert cli_main(["import-authors", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_a_file_with_code_in_its_pickle_is_refused_unrun(tmp_path, capsys):
    import argparse

    bad = tmp_path / "code.t"  # a class instance the weights-only unpickler will not build
    torch.save({"net": {}, "extra": argparse.Namespace(a=1)}, bad)
    assert cli_main(["import-authors", str(bad), "--out", str(tmp_path / "out")]) == 2
    assert "refused" in capsys.readouterr().err


def test_registered_as_champion_promotion_reads_it_with_its_provenance(released, tmp_path, capsys):
    import mlflow

    from mscm.registry.promote import load_champion
    from mscm.registry.source import file_sha256

    path, mscm, _, _, _ = released
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "imported"
    args = ["import-authors", str(path), "--out", str(out), "--register", "mscm-sysu", "--champion"]
    assert cli_main([*args, "--tracking-uri", uri]) == 0
    assert "registered as version 1 (champion)" in capsys.readouterr().out
    client = mlflow.MlflowClient(uri, registry_uri=uri)
    mv = client.get_model_version_by_alias("mscm-sysu", "champion")
    assert mv.tags["mscm.source_sha256"] == file_sha256(path) and "Hua-XC/MSCMNet" in mv.tags["mscm.origin"]
    assert mv.tags["mscm.authors.mAP"] == "0.742000"
    champion = load_champion(client, "mscm-sysu", "sysu", tmp_path / "scratch")
    assert champion is not None and champion.version == "1"
    assert all(torch.equal(champion.model.state_dict()[k], mscm[k]) for k in mscm)
