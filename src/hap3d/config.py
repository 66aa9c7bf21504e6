"""Validated configuration: dataclasses filled from YAML / dicts, unknown keys rejected with a clear message.

The reference's YAML keys are accepted as aliases (``backbone_type``, ``resnet_type``, ...), so its configs load
unchanged. ``reference_compat`` selects the reference numerics for every switch left unset.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

import yaml

from hap3d.utils import Hap3dError

T = TypeVar("T")


class ConfigError(Hap3dError):
    """A configuration value or key is invalid; ``key`` is its dotted path when one key is to blame."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


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


def from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, checking keys and value types; nested dataclasses recurse."""
    data = dict(data or {})
    aliases: dict[str, str] = getattr(cls, "ALIASES", {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        name = aliases.get(key, key)
        if name not in fields:
            near = difflib.get_close_matches(name, list(fields) + list(aliases), n=1)
            hint = f" Did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"unknown config key '{where}{key}'.{hint} Known keys: {', '.join(sorted(fields))}",
                              f"{where}{key}")
        kwargs[name] = _coerce(hints[name], value, f"{where}{key}")
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{where}' must be a mapping, got {value!r}", where)
        return from_dict(tp, value, where + ".")
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(a, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"'{where}': {value!r} matches none of {args}", where)
    if origin is Literal:
        if isinstance(value, str) and value not in args:  # case-insensitive: the reference spells 'adamW'
            value = {a.lower(): a for a in args if isinstance(a, str)}.get(value.lower(), value)
        if value not in args:
            raise ConfigError(f"'{where}' must be one of {list(args)}, got {value!r}", where)
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            value = [value]
        inner = args[0] if args else Any
        return [_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{where}' must be a mapping, got {value!r}", where)
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"'{where}' must be true or false, got {value!r}", where)
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 3e-4 (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"'{where}' must be a number, got {value!r}", where)
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{where}' must be an integer, got {value!r}", where)
        return value
    if tp is str:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"'{where}' must be a string, got {value!r}", where)
        return str(value)
    return value


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (for checkpoints and YAML dumps)."""
    return dataclasses.asdict(cfg)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader, naming the file on error."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise ConfigError(f"config file not found: {path}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], YAML-parsed value), for command-line overrides."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (e.g. model.depth=2)")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply 'a.b=value' overrides to a nested dict in place and return it."""
    for text in overrides:
        path, value = parse_override(text)
        _set_path(data, path, value, f"override '{text}'")
    return data


def _set_path(data: dict[str, Any], path: list[str], value: Any, what: str) -> None:
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{what}: '{part}' is not a section")
    node[path[-1]] = value


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
    group_weights: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.5])  # 3D vs 2D share
    num_workers: int = 4
    strict: bool = False  # fail on an unreadable sample instead of replacing it

    ALIASES: typing.ClassVar[dict[str, str]] = {"num_thread": "num_workers"}


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
        if self.end_epoch < 1:
            raise ConfigError("train.end_epoch must be >= 1")
        if self.train_batch_size < 1:
            raise ConfigError("train.train_batch_size must be >= 1")
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
    amp: Literal["none", "bf16", "fp16"] = "none"


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
    """A copy with ``data.root``, ``data.body_model_dir`` and ``train.pretrained`` absolute (resolved against the
    current directory), so a run's written config.yaml means the same files from any directory."""

    def absolute(path: str) -> str:
        return os.path.abspath(os.path.expanduser(path))

    data = dataclasses.replace(cfg.data, root=absolute(cfg.data.root), body_model_dir=absolute(cfg.data.body_model_dir))
    pretrained = absolute(cfg.train.pretrained) if cfg.train.pretrained else cfg.train.pretrained
    return dataclasses.replace(cfg, data=data, train=dataclasses.replace(cfg.train, pretrained=pretrained))


# The reference's flat config.py / YAML keys and the section they belong to here.
REFERENCE_KEYS = {
    "trainset_3d": "data", "trainset_2d": "data", "testset": "data", "crowd": "data", "num_thread": "data",
    "lr": "train", "lr_backbone": "train", "lr_dec_epoch": "train", "lr_dec_factor": "train",
    "end_epoch": "train", "train_batch_size": "train", "optimizer": "train",
    "test_batch_size": "eval",
    "backbone_type": "model", "resnet_type": "model", "camera_3d_size": "model", "bbox_3d_size": "model",
    "sigma": "model",
}
# The reference's other config attributes: legal there, no effect here. Accepted with a note.
REFERENCE_IGNORED = {
    "input_img_shape": "the input is model.img_size square", "output_hm_shape": "see model.heatmap_size",
    "focal": "see model.focal", "princpt": "the principal point is the crop centre",
    "use_gt_info": "3DPW is always cropped from its ground-truth boxes (use_gt_info=True)",
    "vis": "a display switch (use hap3d demo for renders)", "render": "a display switch (use hap3d demo for renders)",
    "gpu_ids": "devices come from CUDA_VISIBLE_DEVICES and the process count from torchrun",
    "num_gpus": "devices come from CUDA_VISIBLE_DEVICES and the process count from torchrun",
    "continue_train": "pass --resume to hap3d train",
    **dict.fromkeys(("model_dir", "vis_dir", "log_dir", "result_dir"), "every output goes under output_dir"),
    **dict.fromkeys(("smpl_path", "human_model_path"), "the body model is read from data.body_model_dir"),
}
COMMAND_LINE = "command line"

log = logging.getLogger(__name__)


def _reference_path(path: list[str], source: str) -> list[str] | None:
    """Where a key lives here: a flat reference key (or the ``reference_compat`` shorthand) moves into its section;
    an ignored one gives None (noted)."""
    if len(path) != 1:
        return path
    key = path[0]
    if key in REFERENCE_KEYS:
        return [REFERENCE_KEYS[key], key]
    if key == "reference_compat":
        return ["model", key]
    if key in REFERENCE_IGNORED:
        log.warning("%s: reference key '%s' ignored: %s", source, key, REFERENCE_IGNORED[key])
        return None
    return path


def _get_path(data: dict[str, Any], path: list[str]) -> Any:
    """The value at ``path``, or None when it is not set."""
    node: Any = data
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _same_value(a: Any, b: Any) -> bool:
    """Equal values, with PyYAML's string reading of exponent floats ('3e-4') taken as the number."""
    if a == b:
        return True
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


SHIPPED_CONFIGS = Path(__file__).with_name("configs")  # installed with the package


def shipped_configs() -> list[str]:
    """Names of the configs that come with the package (``--cfg NAME``)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def resolve_config_path(cfg: str | Path) -> Path:
    """A config file path, or the name of a shipped config (``hap_vit_b_3dpw`` or ``hap_vit_b_3dpw.yaml``).

    A file that exists wins over a shipped name, so a user's own ``hap_vit_b_3dpw.yaml`` in the working folder is
    the one read when given by that path."""
    path = Path(cfg)
    if path.exists() or len(path.parts) != 1:
        return path
    shipped = SHIPPED_CONFIGS / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if shipped.is_file():
        return shipped
    raise ConfigError(
        f"config {str(cfg)!r} not found: neither a file nor a shipped config ({', '.join(shipped_configs())})"
    )


def _file_data(path: str | Path) -> dict[str, Any]:
    """The YAML file's mapping with its flat keys moved into their sections. A flat key and its sectioned
    spelling with different values (``lr: 1e-3`` and ``train: {lr: 3e-4}``) contradict each other: an error."""
    raw = load_yaml(path)
    dests = {key: _reference_path([key], str(path)) for key in raw}
    data = {key: value for key, value in raw.items() if dests[key] == [key]}
    for key, value in raw.items():
        dest = dests[key]
        if dest is None or dest == [key] or (value is None and key == "reference_compat"):
            continue  # ignored (noted), already in place, or the shorthand left unset (an older run's config.yaml)
        existing = _get_path(data, dest)
        if existing is not None and not _same_value(existing, value):
            raise ConfigError(
                f"{path}: {key}: {value!r} contradicts {'.'.join(dest)}: {existing!r} in the same file; "
                "set one of them",
                ".".join(dest),
            )
        _set_path(data, dest, value, f"{path}: '{key}'")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (ours or the reference's flat keys), apply 'a.b=value' overrides, validate.

    Flat reference keys work in both places (``lr: 0.001`` in the file, ``lr=3e-4`` on the command line), and a
    top-level ``reference_compat`` is shorthand for ``model.reference_compat``. A command-line value beats the
    file's, whichever spelling either uses; two spellings of one key with different values in the same source
    are an error rather than one silently winning. An error names the override that caused it, else the file.
    """
    path = resolve_config_path(path) if path is not None else None
    data = _file_data(path) if path is not None else {}
    cli: dict[str, tuple[str, Any, str]] = {}  # dotted key -> (spelling, value, override text)
    for text in overrides or []:
        keys, value = parse_override(text)
        dest = _reference_path(keys, f"{COMMAND_LINE} '{text}'")
        if dest is None or (value is None and keys == ["reference_compat"]):
            continue
        dotted, spelling = ".".join(dest), ".".join(keys)
        before = cli.get(dotted)
        if before is not None and before[0] != spelling and not _same_value(before[1], value):
            raise ConfigError(
                f"{COMMAND_LINE}: override '{before[2]}' contradicts '{text}' (both set {dotted}); give one of them",
                dotted,
            )
        _set_path(data, dest, value, f"override '{text}'")
        cli[dotted] = (spelling, value, text)
    where = str(path) if path is not None else None

    def source(key: str) -> str | None:
        """The override that set ``key`` (or a section holding it), else the file."""
        for k, (_, _, text) in cli.items():
            if key == k or key.startswith((k + ".", k + "[")):
                return f"{COMMAND_LINE} override '{text}'"
        return where

    try:
        return from_dict(Config, data)
    except ConfigError as err:
        blame = source(err.key) if err.key is not None else " + ".join(
            filter(None, [where, "command-line overrides" if cli else None]))
        raise ConfigError(f"{blame}: {err}" if blame else str(err), err.key) from None
