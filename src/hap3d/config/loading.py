"""Reading a config: YAML files (ours or the reference's flat keys), KEY=VALUE overrides, shipped configs by name."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from hap3d import files
from hap3d.config.coerce import from_dict
from hap3d.config.schema import Config, ConfigError

MAX_CONFIG_BYTES = 2**20  # configs are a few kB; a larger "config" is the wrong file
MAX_CONFIG_NODES = 100_000  # values after YAML aliases are expanded (an alias bomb stays small on disk)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader, naming the file on error. Bounded: a regular file of at most
    MAX_CONFIG_BYTES, nesting within Python's recursion limit, at most MAX_CONFIG_NODES values."""
    try:
        text = files.read_text(path, MAX_CONFIG_BYTES, "config file")
    except files.FileProblem as err:
        raise ConfigError(str(err)) from None
    data = _parse_yaml(text, files.display(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{files.display(path)}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def _parse_yaml(text: str, where: str) -> Any:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: invalid YAML: {err}") from None
    except RecursionError:
        raise ConfigError(f"{where}: YAML nested too deeply to read") from None
    _count_nodes(data, where)
    return data


def _count_nodes(data: Any, where: str) -> None:
    """Refuse more than MAX_CONFIG_NODES values, counting every use of an aliased value (iteratively)."""
    stack, seen = [data], 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > MAX_CONFIG_NODES:
            raise ConfigError(f"{where}: more than {MAX_CONFIG_NODES} values (YAML aliases included): not a config")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'a.b=value' -> (['a', 'b'], YAML-parsed value), for command-line overrides."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key=value (e.g. model.depth=2)")
    key, raw = text.split("=", 1)
    path = key.strip().split(".")
    if not all(path):
        raise ConfigError(f"override '{text}': '{key}' is not a key (e.g. train.lr)")
    return path, _parse_yaml(raw, f"override '{text}'")


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
    "use_gt_info": "3DPW samples are cropped around their input 2D pose; the ground-truth box only filters out "
                   "invalid annotations, which is all use_gt_info=True did there",
    "vis": "a display switch (use hap3d demo for renders)", "render": "a display switch (use hap3d demo for renders)",
    "gpu_ids": "devices come from CUDA_VISIBLE_DEVICES and the process count from torchrun",
    "num_gpus": "devices come from CUDA_VISIBLE_DEVICES and the process count from torchrun",
    "continue_train": "pass --resume to hap3d train (or train.init_from=SNAPSHOT for a new run from its weights)",
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


SHIPPED_CONFIGS = Path(__file__).parents[1] / "configs"  # installed with the package


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


def _reference_amp(raw: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """The reference's ``--amp`` flag as a flat key of its YAML: ``amp: true`` trains as the reference did with the
    flag (fp16 autocast, loss scale reset to 1024 every step: ``train.amp: fp16``, ``train.loss_scale: fixed``);
    ``amp: false`` in fp32. The flag was not a config key there, so a reference YAML otherwise trains in fp32."""
    if "amp" not in raw:
        return raw
    raw = dict(raw)
    value = raw.pop("amp")
    if not isinstance(value, bool):
        raise ConfigError(f"{path}: amp: {value!r}: the reference's --amp flag as a flat key takes true (fp16 as the "
                          "reference ran it) or false; for bf16 set train.amp: bf16", "train.amp")
    section = raw.get("train") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'train' must be a section (a mapping of keys), got {section!r}", "train")
    train = dict(section)
    for key, want in ({"amp": "fp16", "loss_scale": "fixed"} if value else {"amp": "none"}).items():
        if train.get(key, want) != want:
            raise ConfigError(f"{path}: amp: {value} contradicts train.{key}: {train[key]!r} in the same file; set "
                              "one of them", f"train.{key}")
        train[key] = want
    raw["train"] = train
    return raw


def _file_data(path: str | Path) -> dict[str, Any]:
    """The YAML file's mapping with its flat keys moved into their sections. A flat key and its sectioned
    spelling with different values (``lr: 1e-3`` and ``train: {lr: 3e-4}``) contradict each other: an error."""
    raw = _reference_amp(load_yaml(path), path)
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
