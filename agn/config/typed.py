"""Typed construction of configuration dataclasses from plain data (YAML, JSON, CLI values).

Every field is checked against its annotation before the dataclass is built, and every error
names the field by its dotted path (``train.float_stage.epochs``), the bad value and what was
expected.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "Typed", "build", "check", "join"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or file that cannot be used.

    Attributes:
        field: dotted path of the bad field ("" for the whole configuration).
        problem: what is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}" if field else problem)

    def under(self, prefix: str) -> ConfigError:
        """The same error with its field path prefixed by ``prefix``."""
        return ConfigError(join(prefix, self.field), self.problem)


def join(prefix: str, name: str) -> str:
    """``prefix.name`` (or ``name`` alone)."""
    return f"{prefix}.{name}" if prefix and name else prefix or name


def check(ok: bool, field: str, value: Any, expected: str) -> None:
    """Raise ConfigError ``field: expected EXPECTED, got VALUE`` unless ``ok``."""
    if not ok:
        raise ConfigError(field, f"expected {expected}, got {value!r}")


class Typed:
    """Mixin of the configuration dataclasses: ``__post_init__`` checks (and normalises) every
    field against its annotation, then runs the class's ``validate`` (ranges, choices)."""

    def __post_init__(self) -> None:
        for name, tp in _hints(type(self)).items():
            object.__setattr__(self, name, convert(tp, getattr(self, name), name))
        self.validate()

    def validate(self) -> None:
        """Range and choice checks of the fields (ConfigError naming the field)."""


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """{field: resolved annotation} of a dataclass's init fields (cached per class)."""
    if cls not in _HINTS:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        _HINTS[cls] = {f.name: hints[f.name] for f in fields if f.init}
    return _HINTS[cls]


def build(cls: type[T], data: Any, where: str = "") -> T:
    """A ``cls`` (a dataclass) from a mapping of its fields, every value type-checked.

    Unknown fields, values of the wrong type and values the dataclass refuses all raise
    ConfigError naming the field's dotted path under ``where``.
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ConfigError(where, f"expected a mapping of {cls.__name__} fields, got "
                          f"{_show(data)}")
    fields = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(join(where, str(unknown[0])),
                          f"unknown field; expected one of {', '.join(fields)}")
    hints = _hints(cls)
    kw = {name: convert(hints[name], value, join(where, name)) for name, value in data.items()}
    try:
        return cls(**kw)
    except ConfigError as exc:
        raise exc.under(where) from None


def convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` checked (and normalised: lists to tuples, ints to floats) against type ``tp``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        for a in sorted(options, key=lambda a: a is float):  # int before float: keep ints
            try:
                return convert(a, value, where)
            except ConfigError:
                continue
        raise ConfigError(where, f"expected {_describe(tp)}, got {_show(value)}")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(where, f"expected {_describe(tp)}, got {_show(value)}")
        item = args[0]
        return tuple(convert(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(where, f"expected a mapping with string keys, got {_show(value)}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(where, f"expected true or false, got {_show(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(where, f"expected an integer, got {_show(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(where, f"expected a number, got {_show(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(where, f"expected a string, got {_show(value)}")
        return value
    raise TypeError(f"convert: unsupported annotation {tp!r} of {where}")  # a schema bug


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             type(None): "null"}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        plural = {int: "integers", float: "numbers", str: "strings"}
        return f"a list of {plural.get(item, _describe(item))}"
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _show(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
