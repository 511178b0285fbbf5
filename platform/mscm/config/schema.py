"""The typed configuration of one run: model, loss, augmentations, data, optimiser, schedule,
evaluation, Ray resources and tracking.

Defaults are the authors' SYSU-MM01 recipe as read off their code
(docs/model.md, "The training recipe"); every fixed number of that recipe is a field here.
Cross-field rules live in ``__post_init__`` and raise :class:`ConfigError` with the dotted key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..datasets import DATASETS, PROTOCOL_SPECS, get_dataset
from .loader import ConfigError, spec

Backbone = Literal["resnet50", "resnet18"]
# Derived from the dataset registry (mscm.datasets): each dataset declares its name and protocols once.
DatasetName = Literal[tuple(DATASETS)]  # type: ignore[valid-type]
Protocol = Literal[tuple(PROTOCOL_SPECS)]  # type: ignore[valid-type]
Feature = Literal["bn", "pool", "pool+bn"]
Metric = Literal["mAP", "mINP", "rank1", "rank5", "rank10", "rank20"]

# Spatial stride of layer3, where the MIMB works (docs/model.md, "MIMB and ALB": 384x192 -> 24x12).
MIMB_STRIDE = 16


@dataclass(frozen=True)
class ModelConfig:
    backbone: Backbone = "resnet50"
    pretrained: str | None = spec(
        None, doc="path to a torchvision ResNet state_dict file for the stems and trunk; null = random init"
    )
    streams: Literal[2, 4] = spec(4, doc="4 = the paper's QFE; 2 = one stem per modality (ablation)")
    last_stride: Literal[1, 2] = spec(1, doc="stride of layer4 (AGW: 1)")
    non_local: bool = True
    non_local_layer2: tuple[int, ...] | None = spec(
        None, doc="block indices in layer2 followed by a non-local block; null = backbone default"
    )
    non_local_layer3: tuple[int, ...] | None = spec(None, doc="as non_local_layer2, for layer3")
    mimb_scales: int = spec(4, ge=0, le=4, doc="0 = no MIMB, 1 = self ALB, 2 = +layer2, 3 = +layer1, 4 = +stem")
    alb_heads: int = spec(32, ge=1, doc="attention heads of each ALB; must divide (H/16)*(W/16)")
    alb_reduction: int = spec(4, ge=1, doc="ALB token count = layer3 channels / alb_reduction (1024/4 = 256)")
    alb_mlp_ratio: float = spec(4.0, gt=0)
    alb_value_injection: float = spec(0.1, ge=0, doc="v = v + factor * q before attention")
    gem_p: float = spec(3.0, ge=1)


@dataclass(frozen=True)
class LossConfig:
    qct_margin: float = spec(0.7, ge=0, doc="rho of the negative-centre hinge")
    qct_alpha: float = spec(0.0, ge=0, le=1, doc="weight of the per-stream centre term (0 in the released code)")
    qct_weight: float = spec(1.0, ge=0)
    ce_weight: float = spec(1.0, ge=0)
    label_smoothing: float = spec(0.0, ge=0, lt=1)

    def __post_init__(self) -> None:
        if self.qct_weight == 0 and self.ce_weight == 0:
            raise ConfigError("", "ce_weight", "qct_weight and ce_weight are both 0: nothing to train")


@dataclass(frozen=True)
class AugmentConfig:
    """The quadruple-stream training augmentations (docs/model.md, "The four streams' augmentations");
    all act per sample."""

    flip_p: float = spec(0.5, ge=0, le=1)
    pad: int = spec(10, ge=0, doc="zero padding before a same-size random crop")
    grayscale_p: float = spec(0.5, ge=0, le=1, doc="V1: RandomGrayscale")
    erasing_p: float = spec(0.5, ge=0, le=1, doc="all streams: ChannelRandomErasing")
    erasing_area: tuple[float, float] = spec((0.02, 0.4), gt=0, le=1)
    erasing_aspect: float = spec(0.3, gt=0, le=1, doc="aspect ratio range [r, 1/r]")
    erasing_fill: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
    channel_exchange_p: float = spec(1.0, ge=0, le=1, doc="V2: copy one random channel to all (1.0 in the code)")
    adaptive_gray_p: float = spec(0.5, ge=0, le=1, doc="I1: ChannelAdapGray")
    channel_scale_p: float = spec(0.5, ge=0, le=1, doc="I2: ChannelT per-channel intensity scaling")
    channel_scale_range: tuple[float, float] = spec((0.01, 0.5), gt=0, doc="factor = 2*U(lo, hi)")
    brightness: float = spec(0.5, ge=0, le=1, doc="I2: ColorJitter brightness")

    def __post_init__(self) -> None:
        lo, hi = self.erasing_area
        if lo > hi:
            raise ConfigError("", "erasing_area", f"low {lo} is above high {hi}")
        lo, hi = self.channel_scale_range
        if lo > hi:
            raise ConfigError("", "channel_scale_range", f"low {lo} is above high {hi}")


@dataclass(frozen=True)
class SyntheticConfig:
    """The built-in synthetic dataset, generated in the real layout when ``data.root`` is null."""

    identities: int = spec(64, ge=4)
    seed: int = 0
    height: int = spec(128, ge=16)
    width: int = spec(64, ge=8)
    # difficulty (mscm.data.synth.Style): the defaults are the realistic generator
    ir_coupling: float = spec(0.3, ge=0, le=1, doc="share of infrared intensity that follows visible luminance")
    clutter: float = spec(1.0, ge=0, doc="scales the mean number of background objects per image")
    variation: float = spec(1.0, ge=0, le=1, doc="scales per-image pose, scale and position jitter")


@dataclass(frozen=True)
class DataConfig:
    dataset: DatasetName = "sysu"
    root: str | None = spec(None, doc="dataset folder in its original layout; null = synthetic data")
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    regdb_trial: int = spec(1, ge=1, doc="the split of a dataset with several (RegDB: 1..10, one model per split)")
    height: int = spec(384, ge=16)
    width: int = spec(192, ge=16)
    identities_per_batch: int = spec(6, ge=2, doc="P")
    instances_per_identity: int = spec(4, ge=1, doc="K per modality")
    iterations_per_epoch: int | None = spec(None, ge=1, doc="null = int(max(#vis, #ir) / (P*K)) + 1")
    val_identities: int = spec(0, ge=0, doc="training ids held out for model selection; 0 = select on test")
    cache_dir: str | None = spec(None, doc="decoded-image cache; null = <project>/data/cache")
    skip_corrupt: bool = spec(False, doc="skip unreadable images (and report them) instead of failing")
    missing_modality: Literal["error", "warn"] = spec(
        "error", doc="a training id with images in one modality only: stop (error) or drop it and warn"
    )
    loader_workers: int = spec(2, ge=0)


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["sgd", "adamw"] = "sgd"
    lr: float = spec(0.1, gt=0, doc="learning rate of the BN-neck and classifier")
    backbone_lr_scale: float = spec(0.1, gt=0, doc="everything else trains at lr * this (0.01 in the paper)")
    momentum: float = spec(0.9, ge=0, lt=1)
    nesterov: bool = True
    weight_decay: float = spec(5e-4, ge=0)
    betas: tuple[float, float] = spec((0.9, 0.999), ge=0, lt=1)


@dataclass(frozen=True)
class ScheduleConfig:
    epochs: int = spec(150, ge=1)
    warmup_epochs: int = spec(10, ge=0)
    warmup_start_factor: float = spec(0.1, gt=0, le=1)
    milestones: tuple[int, ...] = spec((25, 90, 120), ge=0)
    gamma: float = spec(0.1, gt=0, le=1)

    def __post_init__(self) -> None:
        if list(self.milestones) != sorted(self.milestones):
            raise ConfigError("", "milestones", f"must be increasing, got {list(self.milestones)}")


@dataclass(frozen=True)
class EvalConfig:
    protocol: Protocol = "sysu-all"
    gallery_mode: Literal["single", "multi"] = "single"
    trials: int = spec(10, ge=1, doc="random gallery draws (SYSU, LLCM) in the final evaluation")
    trials_during_training: int = spec(1, ge=1)
    every_n_epochs: int = spec(1, ge=1)
    feature: Feature = spec("bn", doc="bn = the paper's FC feature; pool+bn = LLCM fusion")
    flip: bool | None = spec(
        None, doc="flip TTA: null = each protocol as the authors' scripts (LLCM VIS->IR only); true/false = all"
    )
    flip_normalize: bool = spec(False, doc="re-normalise image + mirror features (false: the authors' plain sum)")
    precision: Literal["fp32", "bf16", "fp16"] = spec("fp32", doc="feature autocast on GPUs (the authors: fp32)")
    batch_size: int = spec(64, ge=1)
    selection_metric: Metric = spec("mAP", doc="metric that picks the best checkpoint")
    latency_runs: int = spec(10, ge=0, doc="batch-1 inference runs timed once per run (latency_ms); 0 = off")
    # k-reciprocal re-ranking (Zhong et al., CVPR 2017; mscm.eval.rerank): extra results named rerank/<protocol>
    # beside the plain ones, never instead of them. The paper's settings: k1 20, k2 6, lambda 0.3.
    ranked_lists: int = spec(
        10, ge=0, doc="top-K of the ranked-list grid drawn with each evaluation a run keeps (0 = none)"
    )
    rerank: bool = spec(False, doc="also rank with k-reciprocal re-ranking (results rerank/<protocol>)")
    rerank_k1: int = spec(20, ge=1)
    rerank_k2: int = spec(6, ge=1)
    rerank_lambda: float = spec(0.3, ge=0.0, le=1.0)


@dataclass(frozen=True)
class TrainConfig:
    """Ray Train resources and the run's mechanics."""

    num_workers: int = spec(1, ge=1, doc="DDP workers")
    use_gpu: bool = False
    cpus_per_worker: float = spec(1.0, gt=0)
    gpus_per_worker: float = spec(1.0, gt=0)
    precision: Literal["fp32", "bf16", "fp16"] = spec("bf16", doc="autocast dtype on GPUs; CPUs run fp32")
    channels_last: bool = spec(True, doc="on GPUs")
    grad_clip: float | None = spec(None, gt=0)
    finite_check_every: int = spec(
        50, ge=1, doc="steps between host reads of the finiteness flag (bad steps are skipped at once)"
    )
    seed: int = 0
    deterministic: bool = spec(
        False, doc="deterministic kernels where torch has them (docs/benchmarks.md, 'What still varies')"
    )
    cpu_threads: int | None = spec(None, ge=1, doc="torch intra-op threads per worker; null = Ray's/torch's choice")
    max_failures: int = spec(3, ge=-1, doc="worker-group restarts from the latest checkpoint (-1 = unlimited)")
    trial_retries: int = spec(
        5,
        ge=0,
        doc="after max_failures is spent on lost workers or nodes, start the run again from its latest "
        "checkpoint this many times more (spot nodes; docs/cluster.md). Errors in code or data are never retried",
    )
    checkpoints_to_keep: int = spec(
        1, ge=1, doc="the best this many by the selection metric, plus the latest (what a restart resumes from)"
    )
    storage_path: str | None = spec(None, doc="Ray results; must be shared (NFS/S3) across nodes")


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str | None = spec(None, doc="null = sqlite store under the project (mlruns/mlflow.db)")
    artifact_location: str | None = spec(
        None,
        doc="where new experiments keep artifacts (a shared folder or s3://...); needed by a database URI "
        "used without a server; null = beside a SQLite store, or the server's own",
    )
    experiment: str = "mscm"
    system_metrics: bool = spec(
        True,
        doc="per epoch, each worker node's CPU, memory and GPU use in the run (system/<node>/...; "
        "mscm train also logs its driver's node through MLflow's monitor)",
    )
    system_metrics_interval_s: float = spec(5.0, gt=0, doc="how often each worker samples its node")


@dataclass(frozen=True)
class RunConfig:
    name: str = "mscm"
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        h, w = self.data.height, self.data.width
        for key, v in (("data.height", h), ("data.width", w)):
            if v % MIMB_STRIDE:
                raise ConfigError("", key, f"must be divisible by {MIMB_STRIDE}, got {v}")
        tokens_dim = (h // MIMB_STRIDE) * (w // MIMB_STRIDE)
        if self.model.mimb_scales > 0 and tokens_dim % self.model.alb_heads:
            raise ConfigError(
                "",
                "model.alb_heads",
                f"{self.model.alb_heads} does not divide the ALB embedding (H/16)*(W/16) = {tokens_dim}",
            )
        dataset = get_dataset(self.data.dataset)
        if self.eval.protocol not in dataset.protocol_names:
            raise ConfigError(
                "",
                "eval.protocol",
                f"{self.eval.protocol!r} is not a protocol of {self.data.dataset} "
                f"(choose from {list(dataset.protocol_names)})",
            )
        if not dataset.drawn_gallery and self.eval.gallery_mode != "single":
            raise ConfigError("", "eval.gallery_mode", f"{dataset.title} uses its whole gallery; leave it 'single'")
        if dataset.per_split and self.data.regdb_trial not in dataset.splits:
            raise ConfigError(
                "", "data.regdb_trial", f"{dataset.title} has splits {dataset.splits[0]}..{dataset.splits[-1]}"
            )
