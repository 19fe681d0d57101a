"""Checking the tables of a study file: kinds of values, known keys, lines in messages.

What :mod:`mottscape.config` builds a :class:`~mottscape.config.Study` from: the schema of every
fixed section (:data:`SCHEMA`: each key's kind of value), the check of a value against its kind
(:func:`check_kind`: TOML types, finite numbers, lists normalised to tuples), unknown keys with
a close match suggested (:func:`unknown_key`), allowed names (:func:`choice`), required keys
(:func:`require`), and :class:`Context`, which finds the line of a key in the file's text so that
every :class:`StudyError` names the file, the line, the section and the key.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import InputError
from .options import Options

__all__ = ["SCHEMA", "Context", "StudyError", "check_kind", "checked", "choice", "param_kind",
           "require", "type_name", "unknown_key"]

# Keys of each section and their kinds (the potential's model parameters are added per model).
SCHEMA: dict[str, dict[str, str]] = {
    "potential": {"model": "str", "shape": "shape", "seed": "int", "file": "str",
                  "variable": "str"},
    "grid": {"spacing": "real_or_list", "boundary": "str", "mass": "real_or_str",
             "units": "str"},
    "conductivity": {"fermi_energy": "real", "omega_min": "real", "omega_max": "real",
                     "n_omega": "int", "omega": "real_list", "mott_scale": "str",
                     "exact": "bool", "exact_method": "str", "exact_padding": "int",
                     "exact_core": "int"},
    "ensemble": {"realizations": "int"},
    "cluster": {"scheduler": "str", "workers": "int"},
    "options": {name: "any" for name in Options.names()},
    "output": {"dir": "str", "figures": "bool"},
}

_KIND_TEXT = {
    "str": "a string",
    "int": "an integer",
    "real": "a number",
    "bool": "a boolean (true or false)",
    "shape": "an array of 1 to 3 positive integers, e.g. [192, 192]",
    "real_or_list": "a number or an array of numbers (one per axis)",
    "real_or_str": "a number or a file name (string)",
    "real_list": "a non-empty array of numbers",
    "int_or_list": "an integer or an array of integers (one per axis)",
}


class StudyError(InputError):
    """An error in a study file; ``path``, ``line``, ``section`` and ``key`` locate it."""

    def __init__(self, message: str, *, path: str = "<dict>", line: int | None = None,
                 section: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.line = line
        self.section = section
        self.key = key


class Context:
    """Error reporting for one study: path and line lookup in the file text."""

    def __init__(self, source: str, text: str | None) -> None:
        self.source = source
        self.lines = text.splitlines() if text is not None else None

    def line_of(self, section: str | None, key: str | None = None) -> int | None:
        """1-based line of ``key`` in ``[section]`` (or of the header), by scanning the text."""
        if self.lines is None:
            return None
        header = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]")
        keyre = (re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None)
        dotted = (re.compile(rf"^\s*{re.escape(section)}\s*\.\s*{re.escape(key)}\s*=")
                  if key and section else None)
        current = None
        for i, line in enumerate(self.lines, start=1):
            m = header.match(line)
            if m:
                current = m.group(1).strip().strip("\"'")
                if key is None and current == section:
                    return i
                continue
            if key is None:
                continue
            if keyre is not None and current == section and keyre.match(line):
                return i
            if keyre is not None and current is None and section is None \
                    and keyre.match(line):
                return i
            if current is None and dotted is not None and dotted.match(line):
                return i
        return None

    def error(self, message: str, section: str | None = None, key: str | None = None,
              line: int | None = None) -> StudyError:
        """A StudyError prefixed with the file and the line of ``key`` (or of its section)."""
        if line is None:
            line = self.line_of(section, key)
            if line is None and key is not None:
                line = self.line_of(section)
        where = f"{self.source}, line {line}" if line is not None else self.source
        return StudyError(f"{where}: {message}", path=self.source, line=line, section=section,
                          key=key)


def type_name(v: object) -> str:
    """A value as a message shows it, with its TOML type (``string 'high'``)."""
    if isinstance(v, bool):
        return f"boolean {str(v).lower()}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"float {v!r}"
    if isinstance(v, str):
        return f"string {v!r}"
    if isinstance(v, list | tuple):
        return f"array {list(v)!r}"
    if isinstance(v, Mapping):
        return "table"
    return f"{type(v).__name__} {v!r}"


def _is_int(v: object) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: object) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


_NONE = object()


def _list_of(value: Any, item_ok: Callable[[Any], bool], cast: Callable[[Any], Any]) -> Any:
    """``value`` as a tuple of ``cast`` items if it is a non-empty list of valid items."""
    if isinstance(value, list | tuple) and len(value) > 0 and all(item_ok(x) for x in value):
        return tuple(cast(x) for x in value)
    return _NONE


def _scalar_or_list(value: object, item_ok: Callable[[Any], bool],
                    cast: Callable[[Any], Any]) -> Any:
    return cast(value) if item_ok(value) else _list_of(value, item_ok, cast)


def _shape(value: Any) -> Any:
    ok = (isinstance(value, list | tuple) and 1 <= len(value) <= 3
          and all(_is_int(n) and n >= 1 for n in value))
    return tuple(int(n) for n in value) if ok else _NONE


#: Per kind of study value: normalise it (lists -> tuples, reals -> float) or return _NONE.
_KIND_CHECKS = {
    "str": lambda v: v if isinstance(v, str) else _NONE,
    "int": lambda v: v if _is_int(v) else _NONE,
    "real": lambda v: float(v) if _is_real(v) else _NONE,
    "bool": lambda v: v if isinstance(v, bool) else _NONE,
    "shape": _shape,
    "real_or_list": lambda v: _scalar_or_list(v, _is_real, float),
    "int_or_list": lambda v: _scalar_or_list(v, _is_int, int),
    "real_or_str": lambda v: float(v) if _is_real(v) else (v if isinstance(v, str) else _NONE),
    "real_list": lambda v: _list_of(v, _is_real, float),
}


def check_kind(ctx: Context, section: str, key: str, value: object, kind: str) -> Any:
    """Check ``value`` against ``kind`` and return it normalised (lists -> tuples)."""
    out = _KIND_CHECKS[kind](value)
    if out is _NONE:
        raise ctx.error(
            f"[{section}] {key} must be {_KIND_TEXT[kind]}, got {type_name(value)}", section, key)
    vals = out if isinstance(out, tuple) else (out,)
    if any(isinstance(x, float) and not math.isfinite(x) for x in vals):
        raise ctx.error(f"[{section}] {key} must be finite, got {type_name(value)}", section, key)
    return out


def param_kind(p: inspect.Parameter) -> str | None:
    """Kind of a generator parameter, from its annotation (a string under PEP 563)."""
    ann = p.annotation if isinstance(p.annotation, str) else str(p.annotation)
    ann = ann.replace(" ", "")
    if ann == "bool":
        return "bool"
    if ann == "float":
        return "real"
    if ann == "int":
        return "int"
    if ann.startswith("int|Sequence[int]"):
        return "int_or_list"
    if ann.startswith("float|Sequence[float]"):
        return "real_or_list"
    return None


def unknown_key(ctx: Context, section: str, key: str, valid: Iterable[str],
                extra: str = "") -> StudyError:
    """The error for a key that ``[section]`` does not have, with the closest valid one."""
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ctx.error(
        f"unknown key {key!r} in [{section}]{hint}{extra} Valid keys in [{section}]: "
        f"{', '.join(sorted(valid))}", section, key)


def checked(ctx: Context, name: str, user: dict, default: dict) -> dict:
    """Check the user's keys of a fixed-schema section and merge them over the defaults."""
    schema = SCHEMA[name]
    for key in user:
        if key not in schema:
            raise unknown_key(ctx, name, key, schema)
    out = {}
    for key, kind in schema.items():
        if key in user:
            out[key] = check_kind(ctx, name, key, user[key], kind)
        elif key in default:
            out[key] = check_kind(ctx, name, key, default[key], kind)
    return out


def choice(ctx: Context, section: str, key: str, value: str, allowed: Iterable[str]) -> str:
    """``value`` if it is one of ``allowed``, else a StudyError suggesting the closest."""
    allowed = tuple(allowed)
    if value not in allowed:
        close = difflib.get_close_matches(str(value), list(allowed), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ctx.error(
            f"[{section}] {key} = {value!r} is not known{hint}; use one of "
            f"{', '.join(repr(a) for a in allowed)}", section, key)
    return value


def require(ctx: Context, section: str, key: str, values: dict) -> Any:
    """``values[key]``, or a StudyError saying that ``[section]`` needs ``key``."""
    if key not in values:
        raise ctx.error(f"[{section}] {key} is required but missing; add '{key} = ...' under "
                        f"[{section}]", section)
    return values[key]
