"""The typed parameter layer: every parameter dataclass (notebooks, studies, the pipeline's ``--set``) is checked
here against its declared field types, ranges and choices, before anything is written.

Values arrive from Python, from papermill (``-p overwrite false`` gives the *string* ``"false"``) and from the
command line, so a value is coerced only where that is unambiguous: ``"true"``/``"false"`` to a bool, ``"8"`` to
an int, ``"1e-4"`` to a float, ``"a,b"`` to a list, ``"none"``/``"null"`` to None where the field is not a string.
Anything else of the wrong type or range raises :class:`ParamError` naming the owner, field and value.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

_INT = re.compile(r"[+-]?\d+")
_NONE_WORDS = ("none", "null")
_BOOL_WORDS = {"true": True, "false": False}


class ParamError(ValueError):
    """A parameter of the wrong type, out of range or not one of its choices; nothing was written."""


@dataclass(frozen=True)
class Rule:
    """Range and choice constraints of one field (applied to each element of a list field)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple | None = None
    nonempty: bool = False  # a string or list that must not be empty

    def describe(self) -> str:
        parts = []
        if self.choices is not None:
            return f"one of {list(self.choices)}"
        for word, bound in (("> ", self.gt), (">= ", self.ge), ("< ", self.lt), ("<= ", self.le)):
            if bound is not None:
                parts.append(f"{word}{bound:g}")
        return "a value " + " and ".join(parts) if parts else "a non-empty value"

    def accepts(self, value: Any) -> bool:
        if self.choices is not None:
            return value in self.choices
        if isinstance(value, int | float) and not isinstance(value, bool):
            return not (
                (self.ge is not None and value < self.ge)
                or (self.gt is not None and value <= self.gt)
                or (self.le is not None and value > self.le)
                or (self.lt is not None and value >= self.lt)
            )
        return True


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)


def _describe(annotation: Any) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "None"}
    out = []
    for m in _members(annotation):
        origin = typing.get_origin(m)
        if m in words:
            out.append(words[m])
        elif origin in (list, tuple):
            (inner,) = typing.get_args(m)[:1] or (Any,)
            out.append(f"a list of {_describe(inner).removeprefix('a ').removeprefix('an ')}s")
        elif origin is dict or m is dict:
            out.append("a mapping")
        elif m is os.PathLike:
            out.append("a path")
        else:
            out.append(getattr(m, "__name__", str(m)))
    return " or ".join(dict.fromkeys(out))


class _NoMatch(Exception):
    pass


def _coerce_one(value: Any, kind: Any, *, exact: bool) -> Any:
    """``value`` as ``kind`` (one member of a union); ``exact``: only accept it as it is, without conversion."""
    origin = typing.get_origin(kind)
    if kind is Any:
        return value
    if kind is type(None):
        if value is None:
            return None
        raise _NoMatch
    if kind is bool:
        if isinstance(value, bool):
            return value
        if not exact and isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]
        raise _NoMatch
    if kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if not exact and isinstance(value, str) and _INT.fullmatch(value.strip()):
            return int(value.strip())
        if not exact and isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        raise _NoMatch
    if kind is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise _NoMatch
            return value
        if not exact and isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                raise _NoMatch from None
            if not math.isfinite(number):
                raise _NoMatch
            return number
        raise _NoMatch
    if kind is str:
        if isinstance(value, str):
            return value
        raise _NoMatch
    if kind is os.PathLike:
        if isinstance(value, os.PathLike):
            return value
        raise _NoMatch
    if origin in (list, tuple) or kind in (list, tuple):
        inner = (typing.get_args(kind) or (Any,))[0]
        if isinstance(value, list | tuple):
            items = list(value)
        elif not exact and isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]  # "a,b" -> a list, never its letters
        else:
            raise _NoMatch
        return [_coerce(v, inner) for v in items]
    if origin is dict or kind is dict:
        if isinstance(value, dict):
            return value
        raise _NoMatch
    raise _NoMatch


def _coerce(value: Any, annotation: Any) -> Any:
    members = _members(annotation)
    if (
        isinstance(value, str)
        and type(None) in members
        and str not in members
        and value.strip().lower() in _NONE_WORDS
    ):
        return None
    for exact in (True, False):
        for kind in members:
            try:
                return _coerce_one(value, kind, exact=exact)
            except _NoMatch:
                continue
    raise _NoMatch


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce_field(
    cls: type, name: str, value: Any, rule: Rule | None = None, *, owner: str | None = None
) -> Any:
    """``value`` for field ``name`` of dataclass ``cls``, coerced to its declared type and checked against
    ``rule``; raises :class:`ParamError` naming ``owner.name``."""
    owner = owner or cls.__name__
    annotation = _hints(cls)[name]
    try:
        out = _coerce(value, annotation)
    except (_NoMatch, ParamError):
        raise ParamError(f"{owner}.{name} = {value!r}: expected {_describe(annotation)}") from None
    if rule is not None and out is not None:
        items = out if isinstance(out, list) else [out]
        if rule.nonempty and (not out if isinstance(out, list | str) else False):
            raise ParamError(f"{owner}.{name} = {value!r}: must not be empty")
        bad = [
            v
            for v in items
            if not rule.accepts(v) or (rule.nonempty and isinstance(v, str) and not v.strip())
        ]
        if bad:
            raise ParamError(f"{owner}.{name} = {value!r} is out of range: expected {rule.describe()}")
    return out


def check_params(obj: Any, rules: dict[str, Rule] | None = None, *, owner: str | None = None) -> Any:
    """Coerce every field of the dataclass instance ``obj`` to its declared type (in place, frozen ones too) and
    check ``rules``; raises :class:`ParamError` at the first bad field. Returns ``obj``."""
    rules = rules or {}
    for f in dataclasses.fields(obj):
        value = coerce_field(type(obj), f.name, getattr(obj, f.name), rules.get(f.name), owner=owner)
        object.__setattr__(obj, f.name, value)
    return obj


def coerce_mapping(cls: type, values: dict[str, Any], rules: dict[str, Rule] | None = None) -> dict[str, Any]:
    """``values`` with every key that is a field of ``cls`` coerced and checked (the others as they are): how a
    pipeline's ``--set`` values are checked before any notebook runs."""
    names = {f.name for f in dataclasses.fields(cls)}
    rules = rules or {}
    return {k: coerce_field(cls, k, v, rules.get(k)) if k in names else v for k, v in values.items()}


class FromMapping:
    """``Params.from_mapping(globals())``: a parameters dataclass built from a notebook's namespace (or any
    mapping), taking the keys that are its fields and ignoring the rest (imports, helpers). The one idiom every
    notebook uses to turn its ``parameters`` cell into the library's parameters."""

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def as_bool(value: Any, *, param: str) -> bool:
    """``value`` as a bool: True/False or the strings "true"/"false" (any case); else :class:`ParamError`."""
    try:
        return _coerce_one(value, bool, exact=False)
    except _NoMatch:
        raise ParamError(f"{param} = {value!r}: expected true or false") from None


__all__ = ["ParamError", "Rule", "as_bool", "check_params", "coerce_field", "coerce_mapping"]
