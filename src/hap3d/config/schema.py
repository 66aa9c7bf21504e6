"""The configuration's sections as dataclasses: every key, its type, default and meaning, and the checks that tie
values together. Loading (YAML, overrides, the reference's keys) lives in :mod:`hap3d.config.loading`."""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import typing
from dataclasses import dataclass
from typing import Literal

from hap3d.utils import Hap3dError


class ConfigError(Hap3dError):
    """A configuration value or key is invalid; ``key`` is its dotted path when one key is to blame."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


def _require(ok: bool, key: str, rule: str, value: object) -> None:
    """One range check: ``'key' must be <rule>, got <value>`` naming the key, before any work uses it."""
    if not ok:
        raise ConfigError(f"'{key}' must be {rule}, got {value!r}", key)


def _at_least(section: object, prefix: str, minimum: int, *names: str) -> None:
    for name in names:
        value = getattr(section, name)
        _require(value >= minimum, f"{prefix}.{name}", f"an integer >= {minimum}", value)


def _positive(section: object, prefix: str, *names: str, allow_zero: bool = False, allow_none: bool = False) -> None:
    """Finite numbers > 0 (>= 0 with allow_zero); None passes with allow_none."""
    for name in names:
        value = getattr(section, name)
        if value is None and allow_none:
            continue
        ok = value is not None and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
        _require(ok, f"{prefix}.{name}", "a finite number >= 0" if allow_zero else "a finite number > 0", value)


MAX_MODEL_PARAMS = 5e9  # far above any ViT here (ViT-B 86 M); a typo such as embed_dim=76800 fails before allocation
DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


# The names of the backbone registry (hap3d/model/backbones.py maps each to its builder and checkpoint mapping; a
# test keeps the two lists equal). The config cannot import the model package, which sits above it.
BACKBONE_NAMES = ("vit_b", "resnet50")
REFERENCE_BACKBONE_NAMES = {"vit": "vit_b", "resnet": "resnet50"}  # the reference's backbone_type values


@dataclass
class ModelConfig:
    """Network architecture. ``None`` switches take the reference value under ``reference_compat``.

    Reference-vs-fixed switches (docs/reference-differences.md R1-R5):
      heatmap_downsample  'nearest' (reference: every 4th pixel) | 'area' (average over each 4x4 cell)    R3
      feature_downsample  'nearest' (reference: every 2nd token) | 'area' (2x2 average)                    R4
      vit_conv_trainable  False (reference: vit_conv_layer, the 768->2048 1x1 conv after the ViT, stays at its
                          random init) | True                                                               R1
      vposer_dropout      True (reference: VPoser decoder dropout active in training) | False              R2
      input_norm          'none' (reference: [0,1] pixels) | 'imagenet' (mean/std of the 2D pre-training)  R5
    """

    backbone: str = "vit_b"  # a BACKBONE_NAMES entry, or the reference's 'vit' / 'resnet'
    reference_compat: bool = True
    img_size: int = 256
    # ViT
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.3
    patch_padding: int = 2
    early_blocks: int = 1
    vit_conv_dim: int = 2048  # output channels of vit_conv_layer, the 1x1 conv between the ViT and the heads
    # ResNet
    resnet_depth: int = 50
    # heads
    num_input_joints: int = 30
    heatmap_size: int = 64
    heatmap_sigma: float = 2.5
    gcn_hidden: int = 128
    gcn_res_blocks: int = 4
    # camera and depth. The reference sets both sizes in its command-line set-up and then applies its YAML, so a value
    # in the YAML wins there too: both keys are honoured.
    focal: float = 5000.0
    camera_3d_size: float = 2.5  # metres; sets the depth scale of the camera translation (camera_depth_scale)
    bbox_3d_size: float = 2.0  # metres: the root-relative depth range [-size/2, size/2] of the 64-space targets
    # reference-vs-fixed switches
    heatmap_downsample: Literal["nearest", "area"] | None = None
    feature_downsample: Literal["nearest", "area"] | None = None
    vit_conv_trainable: bool | None = None
    vposer_dropout: bool | None = None
    input_norm: Literal["none", "imagenet"] | None = None

    # Other spellings of a key: the reference's YAML keys, and the earlier names of vit_conv_layer's settings (a run's
    # config.yaml written with lift_dim / lift_trainable still loads).
    ALIASES: typing.ClassVar[dict[str, str]] = {
        "backbone_type": "backbone", "resnet_type": "resnet_depth", "sigma": "heatmap_sigma",
        "lift_dim": "vit_conv_dim", "lift_trainable": "vit_conv_trainable",
    }
    # Keys that only change what training does with the same weights (no parameter, buffer, optimizer group or target
    # depends on them): a resumed run may change them. vit_conv_trainable is not one: it changes the optimizer's groups.
    TRAINING_ONLY: typing.ClassVar[frozenset[str]] = frozenset({"drop_path_rate", "vposer_dropout"})

    def __post_init__(self) -> None:
        self.backbone = REFERENCE_BACKBONE_NAMES.get(self.backbone, self.backbone)
        if self.backbone not in BACKBONE_NAMES:
            raise ConfigError(
                f"'backbone' must be one of the registered backbones {list(BACKBONE_NAMES)} (or the reference's "
                f"{list(REFERENCE_BACKBONE_NAMES)}), got {self.backbone!r}", "model.backbone"
            )
        compat = self.reference_compat
        defaults = {
            "heatmap_downsample": ("nearest", "area"),
            "feature_downsample": ("nearest", "area"),
            "vit_conv_trainable": (False, True),
            "vposer_dropout": (True, False),
            "input_norm": ("none", "imagenet"),
        }
        for name, (ref, fixed) in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, ref if compat else fixed)
        _at_least(self, "model", 1, "patch_size", "embed_dim", "depth", "num_heads", "vit_conv_dim", "resnet_depth",
                  "num_input_joints", "gcn_hidden", "heatmap_size")
        _at_least(self, "model", 0, "patch_padding", "gcn_res_blocks")
        _require(16 <= self.img_size <= 4096, "model.img_size", "in [16, 4096] pixels", self.img_size)
        _positive(self, "model", "mlp_ratio", "heatmap_sigma", "focal")
        _require(0 <= self.drop_path_rate < 1, "model.drop_path_rate", "in [0, 1)", self.drop_path_rate)
        params = self.depth * self.embed_dim**2 * (4 + 2 * self.mlp_ratio)
        _require(params <= MAX_MODEL_PARAMS, "model.embed_dim", f"a network under {MAX_MODEL_PARAMS:.0e} "
                 "parameters", f"depth {self.depth}, embed_dim {self.embed_dim}: ~{params:.1e}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(f"model.embed_dim ({self.embed_dim}) must be divisible by num_heads ({self.num_heads})")
        if not 0 < self.early_blocks < self.depth:
            raise ConfigError(f"model.early_blocks must be in [1, depth-1], got {self.early_blocks}")
        if self.backbone == "resnet50" and self.resnet_depth not in (50, 101, 152):
            raise ConfigError(f"model.resnet_depth must be 50, 101 or 152, got {self.resnet_depth}")
        if self.heatmap_size % 8:
            raise ConfigError("model.heatmap_size must be a multiple of 8 (the 3D grid is heatmap_size/8)")
        for name in ("camera_3d_size", "bbox_3d_size"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"model.{name} must be > 0 (metres), got {getattr(self, name)}")

    @property
    def lift_dim(self) -> int:
        """Read-only old name of ``vit_conv_dim`` (see ALIASES)."""
        return self.vit_conv_dim

    @property
    def lift_trainable(self) -> bool | None:
        """Read-only old name of ``vit_conv_trainable`` (see ALIASES)."""
        return self.vit_conv_trainable

    @property
    def camera_depth_scale(self) -> float:
        """k in t_z = k * sigmoid(c): sqrt(fx * fy * camera_3d_size^2 / (H * W)) = 48.828125 for the defaults."""
        return (self.focal * self.focal * self.camera_3d_size**2 / (self.img_size * self.img_size)) ** 0.5


@dataclass
class DataConfig:
    """Where the data live and how they are mixed. Dataset names as the reference spells them."""

    # Human36M/, MuCo/, MSCOCO/ or coco/, MPII/data/ or mpii/data/, PW3D/data/, CrowdPose/ (docs/data.md)
    root: str = "data"
    body_model_dir: str = "body_models"  # smpl/, J_regressor_*.npy, vposer/
    trainset_3d: list[str] = dataclasses.field(default_factory=lambda: ["Human36M", "MuCo"])
    trainset_2d: list[str] = dataclasses.field(default_factory=lambda: ["MSCOCO", "MPII"])
    testset: str = "PW3D"
    crowd: bool = False  # evaluate on 3DPW-Crowd (validation split, HigherHRNet input)
    # The model-selection set training evaluates instead of the test set (PW3D: the whole 3DPW validation split,
    # OpenPose input); the test set is then scored once, after the last epoch. None: training evaluates the test set.
    valset: str | None = None
    group_weights: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5])  # 3D vs 2D share
    num_workers: int = 4
    strict: bool = False  # fail on an unreadable sample instead of replacing it

    ALIASES: typing.ClassVar[dict[str, str]] = {"num_thread": "num_workers"}

    def __post_init__(self) -> None:
        _at_least(self, "data", 0, "num_workers")
        for name in ("root", "body_model_dir"):
            _require(bool(getattr(self, name)), f"data.{name}", "a folder", getattr(self, name))
        weights = self.group_weights
        _require(all(math.isfinite(w) and w >= 0 for w in weights) and sum(weights) > 0, "data.group_weights",
                 "finite numbers >= 0 with a positive sum", weights)


# The training loss terms (hap3d/model/losses.py computes them; a test keeps the two lists equal), named by
# train.loss_weights. The config cannot import the model package, which sits above it.
LOSS_NAMES = (
    "body_joint_img", "smpl_joint_img", "smpl_pose", "smpl_shape", "body_joint_proj", "body_joint_cam",
    "smpl_joint_cam",
)


@dataclass
class TrainConfig:
    """Optimisation recipe. Reference keys (lr, lr_dec_epoch, end_epoch, train_batch_size, ...) keep their meaning."""

    lr: float = 1e-3
    lr_backbone: float | None = None  # None: same as lr (the reference's effective behaviour)
    lr_dec_epoch: list[int] = dataclasses.field(default_factory=lambda: [10])
    lr_dec_factor: float = 10.0
    schedule: Literal["step", "cosine"] = "step"
    warmup_steps: int = 0
    end_epoch: int = 11
    train_batch_size: int = 192  # per process (the reference's per-GPU batch)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.0
    weight_decay: float | None = None  # None: 0 for sgd/adam, 0.1 for adamw (the reference's choices)
    amp: Literal["none", "bf16", "fp16"] = "none"
    loss_scale: Literal["dynamic", "fixed"] = "dynamic"  # 'fixed': the reference's scale reset to 1024 each step
    init_scale: float = 1024.0
    loss_reduction: Literal["mean", "valid_mean"] = "mean"
    # Weight of each loss term in the total, by LOSS_NAMES name; a term left out weighs 1 (the reference's sum), a
    # weight of 0 drops it from the total (it is still logged).
    loss_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    grad_clip: float | None = None
    freeze_bn: bool = False  # BatchNorm uses running statistics during training (small per-process batches)
    pretrained: str | None = None  # backbone checkpoint (ViTPose latest.pth, HAP pre-training, torchvision)
    # A full 3D checkpoint (hap3d .safetensors, a run's last.pt, a reference snapshot_N.pth.tar) whose weights start
    # the whole network; the optimizer and epoch start fresh (unlike --resume). Excludes pretrained.
    init_from: str | None = None
    seed: int = 0
    ckpt_every_steps: int = 0  # also checkpoint every N steps (0: only at epoch ends)
    eval_every_epoch: bool = False
    log_every: int = 20
    max_bad_steps: int = 20  # stop after this many consecutive non-finite losses
    max_steps_per_epoch: int = 0  # 0: the whole epoch (tests and quick runs cap it)
    # How long DDP processes wait for each other in a collective. Rank 0 evaluates alone while the others wait
    # at a barrier, so this must exceed the longest evaluation (torch's default is 10 min for NCCL).
    dist_timeout_minutes: float = 120.0

    ALIASES: typing.ClassVar[dict[str, str]] = {}

    def __post_init__(self) -> None:
        if self.loss_scale == "fixed" and self.amp != "fp16":
            raise ConfigError(
                f"train.loss_scale=fixed sets the fp16 loss scale, but train.amp is '{self.amp}' (no loss scaling); "
                "set train.amp=fp16, or drop train.loss_scale"
            )
        if self.init_from and self.pretrained:
            raise ConfigError(
                "train.init_from and train.pretrained are both set: init_from loads the whole network, backbone "
                "included, so the backbone checkpoint would be overwritten; drop one of them (train.pretrained=null)",
                "train.init_from")
        _at_least(self, "train", 1, "end_epoch", "log_every", "max_bad_steps")
        # The heads' BatchNorm layers normalise over the batch in training: one sample has no variance.
        _require(self.train_batch_size >= (1 if self.freeze_bn else 2), "train.train_batch_size",
                 "at least 2 per process, as the heads' BatchNorm layers need two samples to train (or set "
                 "train.freeze_bn=true)", self.train_batch_size)
        _at_least(self, "train", 0, "warmup_steps", "ckpt_every_steps", "max_steps_per_epoch")
        _positive(self, "train", "lr", "lr_dec_factor", "init_scale", "dist_timeout_minutes")
        _positive(self, "train", "lr_backbone", "weight_decay", allow_zero=True, allow_none=True)
        _positive(self, "train", "grad_clip", allow_none=True)
        _require(math.isfinite(self.momentum) and 0 <= self.momentum < 1, "train.momentum", "in [0, 1)",
                 self.momentum)
        _require(0 <= self.seed < 2**32, "train.seed", "in [0, 2^32)", self.seed)
        _require(all(e >= 0 for e in self.lr_dec_epoch), "train.lr_dec_epoch", "epochs >= 0", self.lr_dec_epoch)
        if sorted(self.lr_dec_epoch) != list(self.lr_dec_epoch):
            raise ConfigError(f"train.lr_dec_epoch must be increasing, got {self.lr_dec_epoch}")
        for name, weight in self.loss_weights.items():
            where = f"train.loss_weights.{name}"
            if name not in LOSS_NAMES:
                near = difflib.get_close_matches(str(name), LOSS_NAMES, n=1)
                hint = f" Did you mean '{near[0]}'?" if near else ""
                raise ConfigError(f"unknown loss term '{where}'.{hint} The terms are {', '.join(LOSS_NAMES)}", where)
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight < float("inf"):
                raise ConfigError(f"'{where}' must be a number >= 0 (0 drops the term), got {weight!r}", where)
            self.loss_weights[name] = float(weight)


@dataclass
class EvalConfig:
    test_batch_size: int = 64
    device: str = "auto"
    # 'none' by default, so that a score does not depend on the CPU it was computed on; 'auto' = bf16 where native
    # (what the demo does), 'none' elsewhere.
    amp: Literal["auto", "none", "bf16", "fp16"] = "none"
    # How the network runs for evaluation (hap3d/model/runtime.py): 'auto' = 'fast' on CPU (oneDNN packed Linear,
    # Winograd 3x3 conv; equal to 'eager' within 1e-4 m) and 'eager' elsewhere, or $HAP3D_RUNTIME when set;
    # 'int8' (dynamic quantisation, at an accuracy cost) only when asked for.
    runtime: Literal["auto", "eager", "fast", "int8"] = "auto"

    def __post_init__(self) -> None:
        _at_least(self, "eval", 1, "test_batch_size")
        _require(bool(DEVICE_PATTERN.fullmatch(self.device)), "eval.device", "auto, cpu, cuda, cuda:N or mps",
                 self.device)


@dataclass
class Config:
    """A whole run: model, data, training and evaluation settings plus the output folder.

    ``model.reference_compat`` also selects the data quirks; :func:`load_config` reads a top-level
    ``reference_compat`` as its shorthand."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    output_dir: str = "runs/default"

    ALIASES: typing.ClassVar[dict[str, str]] = {}


def with_absolute_paths(cfg: Config) -> Config:
    """A copy with ``data.root``, ``data.body_model_dir``, ``train.pretrained`` and ``train.init_from`` absolute
    (resolved against the current directory), so a run's written config.yaml means the same files from any
    directory."""

    def absolute(path: str) -> str:
        return os.path.abspath(os.path.expanduser(path))

    data = dataclasses.replace(cfg.data, root=absolute(cfg.data.root), body_model_dir=absolute(cfg.data.body_model_dir))
    train = dataclasses.replace(cfg.train, **{k: absolute(v) for k in ("pretrained", "init_from")
                                              if (v := getattr(cfg.train, k))})
    return dataclasses.replace(cfg, data=data, train=train)
