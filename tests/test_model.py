"""MSCMNet: the paper's parameter count, forward paths, gradients everywhere, inference embedding,
pretrained initialisation and its errors. Small models are resnet18 at 64x32 (ALB embedding 4*2 = 8)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torchvision.models import resnet18, resnet50

from mscm.config import ModelConfig
from mscm.datasets.records import Modality
from mscm.model import ModelOutput, MSCMNet, PretrainedWeightsError, build_model
from mscm.model.blocks import NonLocal, gem

H, W, B, C = 64, 32, 2, 5
SMALL = ModelConfig(backbone="resnet18", alb_heads=2)


def small(**changes) -> MSCMNet:
    torch.manual_seed(0)
    return build_model(dataclasses.replace(SMALL, **changes), C, H, W)


def views(streams: int, batch: int = B, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, H, W, generator=g) for _ in range(streams)]


@pytest.fixture(scope="module")
def paper_model() -> MSCMNet:
    return build_model(ModelConfig(), 395, 384, 192)  # construction only: a forward at 384x192 is too slow here


def test_paper_parameter_count(paper_model):
    parts = paper_model.parameter_breakdown()
    total = sum(p.numel() for p in paper_model.parameters())
    assert sum(parts.values()) == total
    # docs/model.md, "The network": 42.85 M used by the authors' model.
    assert abs(total - 42.85e6) / 42.85e6 < 0.005
    m = {k: v / 1e6 for k, v in parts.items()}
    assert m["stems"] == pytest.approx(4 * 0.0095, abs=0.002)
    assert m["layer1"] + m["layer2"] + m["layer3"] + m["layer4"] == pytest.approx(23.50, abs=0.01)
    assert m["non_local"] == pytest.approx(7.36, abs=0.01)
    for name, expected in (("alb.stem", 2.12), ("alb.layer1", 3.89), ("alb.layer2", 3.62), ("alb.self", 1.53)):
        assert m[name] == pytest.approx(expected, abs=0.01), name
    assert m["classifier"] == pytest.approx(0.81, abs=0.01)


def test_paper_model_layout(paper_model):
    nl = paper_model.non_local
    assert sorted(nl["layer2"].keys()) == ["2", "3"] and sorted(nl["layer3"].keys()) == ["3", "4", "5"]
    assert paper_model.feature_dim == 2048
    alb = paper_model.mimb.albs["self"]
    assert alb.attn.embed_dim == 24 * 12 and alb.attn.num_heads == 32 and alb.tokens == 256
    assert paper_model.mimb.albs["stem"].project.kernel_size == (6, 6)
    assert paper_model.mimb.albs["layer2"].project.kernel_size == (4, 4)
    assert paper_model.layer4[0].conv2.stride == (1, 1)  # last_stride = 1


@pytest.mark.parametrize("streams", [4, 2])
@pytest.mark.portable
def test_training_forward_shapes(streams):
    model = small(streams=streams).train()
    out = model(*views(streams))
    assert isinstance(out, ModelOutput)
    assert out.features.shape == (streams * B, 512) and out.features.dtype == torch.float32
    assert out.logits.shape == (streams * B, C)


@pytest.mark.parametrize("streams", [4, 2])
@pytest.mark.parametrize("scales", [0, 1, 2, 3, 4])
def test_every_trainable_parameter_gets_a_gradient(scales, streams):
    model = small(streams=streams, mimb_scales=scales).train()
    expected_albs = {
        0: None,
        1: ["self"],
        2: ["layer2", "self"],
        3: ["layer1", "layer2", "self"],
        4: ["stem", "layer1", "layer2", "self"],
    }[scales]
    assert (None if model.mimb is None else list(model.mimb.albs.keys())) == expected_albs
    out = model(*views(streams))
    (out.logits.logsumexp(1).mean() + out.features.pow(2).mean()).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # Every stem learns from its own stream.
    assert all(stem.conv1.weight.grad.abs().sum() > 0 for stem in model.stems)


def test_non_local_block_matches_the_quadratic_formula():
    torch.manual_seed(0)
    block = NonLocal(8).eval()
    x = torch.randn(2, 8, 5, 3)
    assert torch.allclose(block(x), x)  # W's BN starts at gamma = beta = 0: the identity
    torch.nn.init.normal_(block.W[1].weight)
    torch.nn.init.normal_(block.W[1].bias)
    theta, phi, g = (m(x).flatten(2) for m in (block.theta, block.phi, block.g))
    f = theta.transpose(1, 2) @ phi / 15  # N x N, no softmax
    y = (f @ g.transpose(1, 2)).transpose(1, 2).reshape(2, 4, 5, 3)
    assert torch.allclose(block(x), block.W(y) + x, atol=1e-5)


def test_gem_formula():
    x = torch.rand(2, 3, 4, 4)
    assert torch.allclose(gem(x, 3.0), (x.pow(3).mean((2, 3)) + 1e-12).pow(1 / 3))
    assert torch.allclose(gem(x, 1.0), x.mean((2, 3)), atol=1e-6)


def test_non_local_defaults_and_validation():
    model = small()
    assert {k: list(v.keys()) for k, v in model.non_local.items()} == {"layer2": ["1"], "layer3": ["1"]}
    assert len(small(non_local=False).non_local) == 0
    custom = small(non_local_layer2=(0,), non_local_layer3=())
    assert list(custom.non_local["layer2"].keys()) == ["0"] and len(custom.non_local["layer3"]) == 0
    with pytest.raises(ValueError, match=r"non_local_layer3.*\[2\].*2 blocks"):
        small(non_local_layer3=(2,))


def test_last_stride_sets_layer4_resolution():
    sizes = {}
    for stride in (1, 2):
        model = small(last_stride=stride).eval()
        model.layer4.register_forward_hook(lambda m, i, o, s=stride: sizes.__setitem__(s, tuple(o.shape[-2:])))
        with torch.no_grad():
            model.embed(views(1)[0], Modality.VISIBLE)
    assert sizes == {1: (H // 16, W // 16), 2: (H // 32, W // 32)}


def test_bad_inputs_are_clear_errors():
    model = small()
    with pytest.raises(ValueError, match="expected 4 views"):
        model(*views(2))
    with pytest.raises(ValueError, match="built for 64x32"):
        model(*[torch.randn(B, 3, 32, 32)] * 4)
    with pytest.raises(ValueError, match="alb_heads=3 does not divide .* 8"):
        small(alb_heads=3)
    with pytest.raises(ValueError, match="which must be"):
        model.embed(views(1)[0], Modality.VISIBLE, which="fc")


@pytest.mark.portable
def test_embed_outputs_are_unit_norm_and_leave_the_mode_alone():
    model = small().eval()
    x = views(1)[0]
    with torch.no_grad():
        bn = model.embed(x, Modality.VISIBLE)
        pool = model.embed(x, "infrared", which="pool")
        both = model.embed(x, Modality.INFRARED, which="both")
    assert bn.shape == pool.shape == (B, 512)
    for t in (bn, pool, *both):
        assert torch.allclose(t.norm(dim=1), torch.ones(B), atol=1e-5)
    assert torch.allclose(both[0], pool, atol=1e-6)
    assert not model.training
    model.train()
    with torch.no_grad():
        model.embed(x, Modality.VISIBLE)
    assert model.training


def test_four_stream_embed_averages_the_modality_stems():
    model = small().eval()
    x = views(1, seed=3)[0]
    with torch.no_grad():
        for modality, (a, b) in ((Modality.VISIBLE, (0, 1)), (Modality.INFRARED, (2, 3))):
            stem_mean = (model.stems[a](x) + model.stems[b](x)) / 2
            expected = F.normalize(model.bottleneck(model.features_from_stem(stem_mean)), dim=1)
            assert torch.allclose(model.embed(x, modality), expected, atol=1e-5)
        # The two modalities use different stems, so they embed the same image differently.
        assert not torch.allclose(model.embed(x, Modality.VISIBLE), model.embed(x, Modality.INFRARED), atol=1e-3)


@pytest.mark.parametrize("streams", [4, 2])
def test_embed_equals_the_training_path_when_the_modality_stems_agree(streams):
    model = small(streams=streams)
    half = streams // 2
    for first in (0, half):  # copy V1 -> V2 and I1 -> I2 (no-op with 2 streams)
        for k in range(first + 1, first + half):
            model.stems[k].load_state_dict(model.stems[first].state_dict())
    model.eval()
    x = views(1, seed=4)[0]
    with torch.no_grad():
        feats = model(*[x] * streams).features
        for modality, first in ((Modality.VISIBLE, 0), (Modality.INFRARED, half)):
            expected = F.normalize(model.bottleneck(feats[first * B : (first + 1) * B]), dim=1)
            assert torch.allclose(model.embed(x, modality), expected, atol=1e-5)


def test_parameter_groups_split_head_and_backbone():
    model = small()
    groups = model.parameter_groups()
    head_ids = {id(p) for p in groups["head"]}
    assert head_ids == {id(model.bottleneck.weight), id(model.classifier.weight)}
    assert not head_ids & {id(p) for p in groups["backbone"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert head_ids | {id(p) for p in groups["backbone"]} == trainable
    assert not model.bottleneck.bias.requires_grad and torch.all(model.bottleneck.bias == 0)


def test_head_initialisation():
    model = build_model(dataclasses.replace(SMALL, mimb_scales=0), 2000, H, W)
    assert model.classifier.bias is None
    assert model.classifier.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert model.bottleneck.weight.mean().item() == pytest.approx(1.0, abs=0.005)
    assert 0.005 < model.bottleneck.weight.std().item() < 0.02


@pytest.mark.parametrize("depth", ["resnet18", "resnet50"])
def test_the_own_resnet_is_torchvisions_to_the_weight_and_the_output(depth):
    """mscm.model.resnet replaces torchvision's ResNet (whose import costs 1.5 CPU-s per process): the same
    parameter names and shapes, the same weights from the same seed, the same output."""
    import torchvision.models

    from mscm.model.resnet import resnet

    torch.manual_seed(11)
    ours = resnet(depth).eval()
    torch.manual_seed(11)
    theirs = getattr(torchvision.models, depth)(weights=None).eval()
    a, b = ours.state_dict(), theirs.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_training_code_imports_no_torchvision():
    """The Ray Train worker's module and the CLI's model path stay clear of torchvision's import cost."""
    import subprocess
    import sys

    code = "import sys, mscm.train.worker, mscm.model, mscm.registry.embed; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stdout + out.stderr[-2000:]


def test_pretrained_initialises_every_stem_and_the_trunk(tmp_path):
    torch.manual_seed(5)
    reference = resnet18(weights=None)
    state = reference.state_dict()
    # torchvision's published files have no num_batches_tracked buffers: they must load as well.
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    model = small(pretrained=str(path))
    for stem in model.stems:
        assert torch.equal(stem.conv1.weight, state["conv1.weight"])
        assert torch.equal(stem.bn1.running_var, state["bn1.running_var"])
    assert torch.equal(model.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])
    assert torch.equal(model.layer4[0].downsample[0].weight, state["layer4.0.downsample.0.weight"])
    # Without weights the stems start independently.
    fresh = small()
    assert not torch.equal(fresh.stems[0].conv1.weight, fresh.stems[1].conv1.weight)


def test_pretrained_errors_name_the_file_and_the_problem(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(PretrainedWeightsError, match=r"nope\.pth: file not found"):
        small(pretrained=str(missing))
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(PretrainedWeightsError, match=r"list\.pth: expected a state_dict.*list"):
        small(pretrained=str(listing))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(PretrainedWeightsError, match=r"junk\.pth: not a readable"):
        small(pretrained=str(junk))
    r18 = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), r18)
    with pytest.raises(PretrainedWeightsError, match=r"r18\.pth.*resnet50.*(missing keys|shape mismatch)"):
        build_model(ModelConfig(pretrained=str(r18), mimb_scales=0, non_local=False), 10, H, W)
    r50 = tmp_path / "r50.pth"
    torch.save(resnet50(weights=None).state_dict(), r50)
    with pytest.raises(
        PretrainedWeightsError, match=r"conv1\.weight: file \(64, 64, 1, 1\) vs resnet18 \(64, 64, 3, 3\)"
    ):
        small(pretrained=str(r50))
