"""Dataclass configs from plain mappings: keys checked (with a did-you-mean), values coerced to the declared types."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar

from hap3d.config.schema import ConfigError

T = TypeVar("T")


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
