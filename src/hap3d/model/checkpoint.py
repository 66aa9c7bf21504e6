"""Reading every checkpoint format the field publishes, and the project's own format.

Formats (detected from the file's content, never its name):

* ``hap3d``              our own: safetensors tensors + JSON metadata (model config, provenance).
* ``hap3d-train-state``  our training state (``<run>/checkpoints/last.pt``): model, optimizer, config, ... - the
                          model weights and the model config are read from it.
* ``reference_snapshot`` 3DCrowdNet / HAP 3D training snapshots (``snapshot_N.pth.tar``, the demo
                          checkpoint): ``{'network': {'module.<key>': tensor}, 'epoch', 'optimizer'}``.
* ``mmcv``               ViTPose / HAP 2D-pose checkpoints (``latest.pth``): ``{'state_dict': {'backbone.*',
                          'keypoint_head.*'}, 'meta'}`` - backbone only.
* ``hap_pretrain``       HAP / MAE-style pre-trained ViT: ``{'model': {...}}`` with encoder and decoder keys -
                          backbone only.
* ``torchvision``        an ImageNet ResNet state dict (``conv1.*``, ``layer1.*``, ``fc.*``) - backbone only.
* ``simplebaseline``     SimpleBaseline 2D-pose ResNet (``deconv_layers.*``, ``final_layer.*``) - backbone only.

This module identifies the format and reads the full-model ones. How a backbone-only format's keys map onto a
backbone, and how a snapshot's keys reveal its architecture, lives beside each architecture (``vit.py``,
``resnet.py``); the registry in ``backbones.py`` says which does what, and the functions here dispatch to it.

Every file is opened with ``torch.load(weights_only=True)`` (or safetensors), so loading never executes code,
and every mapping reports loaded, missing, unexpected and deliberately ignored keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file

from hap3d.config import ConfigError, ModelConfig, from_dict, to_dict
from hap3d.model.backbones import BACKBONES, spec_for_checkpoint_format, spec_of_module
from hap3d.model.hap import HapModel
from hap3d.utils import Hap3dError, atomic_write

try:  # numpy >= 2
    from numpy._core import multiarray as _np_multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _np_multiarray

# mmcv checkpoints keep numpy scalars in 'meta' (e.g. the best validation score); these are plain data.
NUMPY_SAFE_GLOBALS = [_np_multiarray.scalar, _np_multiarray._reconstruct, np.ndarray, np.dtype] + [
    type(np.dtype(c)) for c in ("f8", "f4", "f2", "i8", "i4", "i2", "i1", "u8", "u4", "u2", "u1", "b1")
]

FORMAT_NAME = "hap3d"
TRAIN_STATE_FORMAT = "hap3d-train-state"  # hap3d.engine.state.TrainState; read here for its model only
FORMAT_VERSION = "1"


class CheckpointError(Hap3dError):
    """A checkpoint cannot be read or does not fit the model."""


@dataclass
class LoadReport:
    """What a load did: keys loaded, model keys left missing, checkpoint keys unused (and why)."""

    source: str
    format: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    ignored: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for r in self.ignored.values():
            reasons[r] = reasons.get(r, 0) + 1
        lines = [f"{self.source} ({self.format}): {len(self.loaded)} tensors loaded"]
        lines += [f"  ignored {n}: {r}" for r, n in reasons.items()]
        if self.missing:
            lines.append(f"  MISSING in checkpoint ({len(self.missing)}): {_preview(self.missing)}")
        if self.unexpected:
            lines.append(f"  UNEXPECTED in checkpoint ({len(self.unexpected)}): {_preview(self.unexpected)}")
        return "\n".join(lines)


def _preview(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f", ... (+{len(keys) - n})" if len(keys) > n else "")


# ---------------------------------------------------------------------------------------------- reading


@dataclass
class RawCheckpoint:
    path: Path
    format: str
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


def read_checkpoint(path: str | Path) -> RawCheckpoint:
    """Open any supported checkpoint safely and identify its format."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if _looks_like_safetensors(head):
        return _read_safetensors(path)
    try:
        with torch.serialization.safe_globals(NUMPY_SAFE_GLOBALS):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError for code-carrying files, RuntimeError for corrupt archives
        raise CheckpointError(
            f"{path}: not a checkpoint hap3d can read ({type(err).__name__}: {load_problem(err)}): neither a "
            "safetensors file nor a PyTorch file holding only tensors and plain values. hap3d never unpickles other "
            "Python objects, because that could run code."
        ) from err
    return _identify(path, obj)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def load_problem(err: Exception) -> str:
    """What torch.load(weights_only=True) objected to, without its advice to retry with weights_only=False (which
    would unpickle arbitrary code)."""
    text = str(err)
    if not text.startswith("Weights only load failed"):
        return _first_line(err)
    text = text.split("Check the documentation", 1)[0]
    text = text.split("WeightsUnpickler error:", 1)[1] if "WeightsUnpickler error:" in text else text.split("\n", 1)[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else "unsupported content"


def _looks_like_safetensors(head: bytes) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n < (1 << 30) and head[8:9] == b"{"


def _read_safetensors(path: Path) -> RawCheckpoint:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as err:
        raise CheckpointError(f"{path}: corrupt safetensors file ({_first_line(err)})") from err
    fmt = FORMAT_NAME if meta.get("format") == FORMAT_NAME else "safetensors"
    parsed = {k: (_json_object(path, k, v) if k in ("model_config", "info") else v) for k, v in meta.items()}
    if fmt == FORMAT_NAME and "model_config" not in parsed:
        raise CheckpointError(f"{path}: hap3d checkpoint without 'model_config' in its metadata")
    return RawCheckpoint(path, fmt, tensors, parsed)


def _json_object(path: Path, key: str, text: str) -> dict[str, Any]:
    """A metadata entry that holds a JSON object, or a CheckpointError naming the file and the key."""
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: metadata '{key}' is not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: metadata '{key}' must be a JSON object, found {type(value).__name__}")
    return value


def _tensor_dict(obj: Any, path: Path, where: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: '{where}' should be a dict of tensors, found {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: '{where}' holds non-tensor entries: {_preview([str(b) for b in bad])}")
    return dict(obj)


def _identify(path: Path, obj: Any) -> RawCheckpoint:
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict at the top level, found {type(obj).__name__}")
    meta = _plain_meta(obj)
    if obj.get("format") == TRAIN_STATE_FORMAT:
        # Its 'epoch' is the next epoch to run, i.e. the count of completed ones: named so beside epoch_N files.
        meta = {("epochs_completed" if k == "epoch" else k): v for k, v in meta.items()}
        meta["model_config"] = dict(train_state_model_config(path, obj))
        return RawCheckpoint(path, TRAIN_STATE_FORMAT, _tensor_dict(obj.get("model"), path, "model"), meta)
    if "network" in obj:
        network = _strip_module(_tensor_dict(obj["network"], path, "network"))
        return RawCheckpoint(path, "reference_snapshot", network, meta)
    if "state_dict" in obj:
        sd = _strip_module(_tensor_dict(obj["state_dict"], path, "state_dict"))
        if any(k.startswith("backbone.") for k in sd):
            meta.update(_plain_meta(obj.get("meta") or {}))
            return RawCheckpoint(path, "mmcv", sd, meta)
        raise CheckpointError(f"{path}: 'state_dict' has no 'backbone.*' keys - not a ViTPose/mmpose checkpoint")
    if "model" in obj and isinstance(obj["model"], Mapping):
        return RawCheckpoint(path, "hap_pretrain", _strip_module(_tensor_dict(obj["model"], path, "model")), meta)
    if not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"{path}: unrecognised checkpoint layout (top-level keys: {_preview(sorted(map(str, obj)))}). "
            "Supported: hap3d .safetensors, 3DCrowdNet/HAP snapshot_N.pth.tar, mmcv/ViTPose latest.pth, HAP "
            "pre-trained ViT, torchvision/SimpleBaseline ResNet."
        )
    sd = _strip_module(dict(obj))
    if "conv1.weight" in sd and any(k.startswith(("deconv_layers.", "final_layer.")) for k in sd):
        return RawCheckpoint(path, "simplebaseline", sd, {})
    if "conv1.weight" in sd and "layer1.0.conv1.weight" in sd:
        return RawCheckpoint(path, "torchvision", sd, {})
    if "patch_embed.proj.weight" in sd:
        return RawCheckpoint(path, "hap_pretrain", sd, {})
    raise CheckpointError(f"{path}: a plain state dict, but neither a ViT nor a ResNet one")


def train_state_model_config(path: Path, obj: Mapping[str, Any]) -> Mapping[str, Any]:
    """``config["model"]`` of a training state, or a CheckpointError naming the file and the missing key."""
    config = obj.get("config")
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{path}: training state whose 'config' is {_found(config)}, not a dict")
    if not isinstance(config.get("model"), Mapping):
        raise CheckpointError(f"{path}: training state whose 'config.model' is {_found(config.get('model'))}, "
                              "not a dict")
    return config["model"]


def _found(value: Any) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def _plain_meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The scalar entries of a checkpoint dict (epoch, versions, ...), as JSON-friendly Python values."""
    out = {}
    for k, v in obj.items():
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, (bool, int, float, str)):
            out[str(k)] = v
    return out


def _strip_module(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix that (Distributed)DataParallel adds."""
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


# ---------------------------------------------------------------------------------------------- full model


def infer_model_config(raw: RawCheckpoint, **overrides: Any) -> ModelConfig:
    """The model config a full checkpoint was trained with (stored, or deduced from its keys), with
    ``overrides``, checked against the tensors the checkpoint holds before any model is allocated: a config
    that claims another architecture (a crafted file, a wrong ``--set``) fails here, in bounded memory."""
    if raw.format in (FORMAT_NAME, TRAIN_STATE_FORMAT):
        data = dict(raw.meta["model_config"])
    elif raw.format == "reference_snapshot":
        data = _snapshot_config(raw)
    else:
        raise CheckpointError(f"{raw.path}: a {raw.format} checkpoint holds a backbone only, not a full model")
    data.update(overrides)
    try:
        cfg = from_dict(ModelConfig, data, "model.")
    except ConfigError as err:
        raise CheckpointError(f"{raw.path}: invalid model config: {err}") from err
    check_config_fits(raw, cfg)
    return cfg


def _snapshot_config(raw: RawCheckpoint) -> dict[str, Any]:
    """ModelConfig values read off a reference snapshot's keys and shapes."""
    for name, spec in BACKBONES.items():
        try:
            found = spec.config_from_snapshot(raw.tensors)
        except (ValueError, IndexError, TypeError) as err:  # keys or shapes no real snapshot has
            raise CheckpointError(f"{raw.path}: malformed {name} snapshot ({err})") from err
        if found is not None:
            return {"backbone": name, **found, "reference_compat": True}
    raise CheckpointError(f"{raw.path}: snapshot has the backbone keys of none of: {', '.join(BACKBONES)}")


def check_config_fits(raw: RawCheckpoint, cfg: ModelConfig) -> None:
    """Compare the tensor shapes a model of ``cfg`` would have (built on the meta device: nothing allocated) with
    the checkpoint's; raise a CheckpointError naming the file on any difference."""
    tensors, _ = map_full_model_keys(raw)
    for name in ("depth", "gcn_res_blocks"):  # each block holds tensors: more blocks than tensors cannot fit
        if getattr(cfg, name) > len(tensors):
            raise CheckpointError(f"{raw.path}: model config '{name}' = {getattr(cfg, name)} cannot fit a checkpoint "
                                  f"of {len(tensors)} tensors")
    try:
        with torch.device("meta"):
            model = HapModel(cfg, nn.Module(), np.zeros((30, 1), np.float32))
    except (ValueError, RuntimeError, ZeroDivisionError, TypeError) as err:
        raise CheckpointError(f"{raw.path}: its model config cannot be built ({_first_line(err)})") from err
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    compare_state(own, tensors, LoadReport(str(raw.path), raw.format))


def map_full_model_keys(raw: RawCheckpoint) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Translate a full-model checkpoint to this project's key names; returns (mapped, ignored-with-reason)."""
    if raw.format in (FORMAT_NAME, TRAIN_STATE_FORMAT):
        return dict(raw.tensors), {}
    if raw.format != "reference_snapshot":
        raise CheckpointError(f"{raw.path}: a {raw.format} checkpoint holds a backbone only, not a full model")
    mapped: dict[str, torch.Tensor] = {}
    ignored: dict[str, str] = {}
    for key, value in raw.tensors.items():
        if key.startswith("human_model_layer."):
            ignored[key] = "SMPL buffers (the body model is read from the body-model files)"
        elif key.startswith("vposer.vposer.bodyprior_enc_"):
            ignored[key] = "VPoser encoder (unused at inference and training)"
        elif key.startswith("vposer.vposer."):
            mapped["vposer." + key[len("vposer.vposer.") :]] = value
        else:
            mapped[key] = value
    return mapped, ignored


def load_state_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], report: LoadReport, allow_missing: tuple[str, ...] = ()
) -> LoadReport:
    """Copy ``state`` into ``model`` checking names, shapes and finiteness; raise on anything missing, mismatched
    or non-finite (NaN weights would give NaN meshes reported as results)."""
    compare_state({k: tuple(v.shape) for k, v in model.state_dict().items()}, state, report, allow_missing)
    bad = [k for k in report.loaded if state[k].is_floating_point() and not bool(torch.isfinite(state[k]).all())]
    if bad:
        raise CheckpointError(f"{report.source}: {len(bad)} tensors hold NaN or Inf values ({_preview(bad)}); "
                              "the weights are unusable (a diverged training run?)")
    model.load_state_dict({k: state[k] for k in report.loaded}, strict=False)
    return report


def compare_state(
    own: Mapping[str, tuple[int, ...]], state: Mapping[str, torch.Tensor], report: LoadReport,
    allow_missing: tuple[str, ...] = (),
) -> LoadReport:
    """Check ``state`` against a model's key -> shape table, filling ``report``; raise on any difference."""
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {own[k]}"
        for k, v in state.items()
        if k in own and tuple(v.shape) != own[k]
    ]
    if mismatched:
        raise CheckpointError(
            f"{report.source}: shape mismatch for {len(mismatched)} tensors: " + "; ".join(mismatched[:5])
        )
    report.missing = [k for k in own if k not in state and not k.startswith(allow_missing)]
    report.unexpected = [k for k in state if k not in own]
    report.loaded = [k for k in state if k in own]
    if report.missing or report.unexpected:
        raise CheckpointError(
            report.summary() + "\nThe checkpoint does not match the model configuration; check backbone/depth "
            "settings, or pass a checkpoint of the same architecture."
        )
    return report


def load_model_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Load a full-model checkpoint (ours or a reference snapshot) into ``model``, strictly."""
    raw = read_checkpoint(path)
    mapped, ignored = map_full_model_keys(raw)
    report = LoadReport(str(raw.path), raw.format, ignored=ignored)
    return load_state_strict(model, mapped, report)


def save_model_checkpoint(
    path: str | Path, model: nn.Module, cfg: ModelConfig, info: Mapping[str, Any] | None = None
) -> Path:
    """Write the project's own format: a safetensors file with the model config in its metadata."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "model_config": json.dumps(to_dict(cfg)),
        "info": json.dumps(dict(info or {}), default=str),
    }
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


# ---------------------------------------------------------------------------------------------- backbone


def map_backbone_keys(raw: RawCheckpoint) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Backbone tensors of a 2D-pose / pre-training / ImageNet checkpoint (or of a full 3D snapshot) under our
    backbone's names; returns (mapped, ignored-with-reason)."""
    if raw.format == "reference_snapshot":  # a HapModel's own keys: its backbone.* are the backbone's names
        mapped = {k[len("backbone.") :]: v for k, v in raw.tensors.items() if k.startswith("backbone.")}
        ignored = {k: "3D heads (only the backbone is taken)" for k in raw.tensors if not k.startswith("backbone.")}
        return mapped, ignored
    spec = spec_for_checkpoint_format(raw.format)
    if spec is None:
        raise CheckpointError(f"{raw.path}: cannot take a backbone from a {raw.format} checkpoint")
    return spec.map_checkpoint_keys(raw.format, raw.tensors)


def load_backbone_checkpoint(
    backbone: nn.Module, path: str | Path, source_grid: tuple[int, int] | None = None
) -> LoadReport:
    """Initialise a backbone from a 2D-pose, pre-training or ImageNet checkpoint.

    The backbone's registry entry adapts the tensors to its shapes first: for a ViT, the position embedding is
    resized bicubically from the checkpoint's patch grid (ViTPose's 16x12 unless ``source_grid`` says otherwise)
    to the model's, keeping the class slot.
    """
    raw = read_checkpoint(path)
    mapped, ignored = map_backbone_keys(raw)
    report = LoadReport(str(raw.path), raw.format, ignored=ignored)
    spec = spec_of_module(backbone)
    if spec is not None and spec.fit_checkpoint_state is not None:
        try:
            mapped = spec.fit_checkpoint_state(backbone, mapped, source_grid)
        except ValueError as err:
            raise CheckpointError(f"{raw.path}: {err}") from err
    return load_state_strict(backbone, mapped, report)
