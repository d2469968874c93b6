"""Strict JSON: the one way gencritic writes or serves JSON.

JSON has no NaN or Infinity. Python's :mod:`json` writes them anyway, as bare ``NaN`` and
``Infinity`` tokens, and JavaScript's ``JSON.parse``, ``jq`` and typed readers then reject the
whole document. So every JSON file, line, response and tool result goes through
:func:`to_jsonable` (or :func:`dumps_strict`, which calls it): a missing value (NaN) and an
unbounded one (±inf: a metric's open range, the PSNR of identical images) become ``null``;
numpy scalars and arrays become numbers and lists; and ``allow_nan=False`` turns anything
missed into an error rather than an invalid file.

The journal (``.gencritic/journal.jsonl``) must give back exactly what was scored, so a
resumed run's ``results.csv`` is byte-identical to an uninterrupted one's: there
:func:`journal_line` writes NaN as ``null`` and ±inf as the strings ``"Infinity"`` /
``"-Infinity"``, and :func:`parse_journal_line` restores them in the records' value maps.

File names that are not UTF-8 reach JSON as strings with lone surrogates (PEP 383), which
UTF-8 cannot encode: with ``ensure_ascii=False`` they are written as ``\\udcXX`` escapes
(:func:`gencritic.io.fsnames.escape_surrogates`), so the text is valid UTF-8 and ``json.loads``
gives back the same name (``ensure_ascii=True`` escapes them already).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gencritic.atomic import OUTPUT_MODE, atomic_write_text
from gencritic.io.fsnames import escape_surrogates

NonFinite = Literal["null", "raise"]


class NonFiniteError(ValueError):
    """A non-finite number where the caller asked that none be written (a config that must round-trip)."""


def _reject_constant(token: str) -> Any:
    raise ValueError(f"not strict JSON: the token {token} (NaN/Infinity are not JSON; gencritic writes null)")


def to_jsonable(obj: Any, default: Callable[[Any], Any] | None = None, nonfinite: NonFinite = "null",
                _encode_float: Callable[[float], Any] | None = None) -> Any:
    """A copy of ``obj`` that strict JSON can hold: non-finite floats -> None (or an error with
    ``nonfinite="raise"``), numpy -> Python, tuples -> lists. Objects of other types go through
    ``default`` (as ``json.dumps``'s), or raise TypeError."""

    def walk(value: Any) -> Any:
        if value is None or isinstance(value, (str, bool)):
            return value
        if isinstance(value, float):  # np.float64 too (a float subclass)
            f = float(value)
            if math.isfinite(f):
                return f
            if _encode_float is not None:
                return _encode_float(f)
            if nonfinite == "raise":
                raise NonFiniteError(f"{f} cannot be written as JSON")
            return None
        if isinstance(value, int):
            return int(value)
        if isinstance(value, Mapping):
            return {_key(k): walk(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [walk(v) for v in value]
        if isinstance(value, np.ndarray):
            return walk(value.tolist())
        if isinstance(value, np.generic):
            return walk(value.item())
        if default is not None:
            return walk(default(value))
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    return walk(obj)


def _key(key: Any) -> Any:
    return key.item() if isinstance(key, np.generic) else key


def dumps_strict(obj: Any, *, indent: int | None = None, sort_keys: bool = False, ensure_ascii: bool = True,
                 separators: tuple[str, str] | None = None, default: Callable[[Any], Any] | None = None,
                 nonfinite: NonFinite = "null") -> str:
    """``json.dumps`` that always writes strict JSON (see the module docstring)."""
    text = json.dumps(to_jsonable(obj, default, nonfinite), indent=indent, sort_keys=sort_keys,
                      ensure_ascii=ensure_ascii, separators=separators, allow_nan=False)
    return text if ensure_ascii else escape_surrogates(text)


def loads_strict(text: str | bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity tokens (what JavaScript's JSON.parse does)."""
    return json.loads(text, parse_constant=_reject_constant)


def write_json(path: Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False, ensure_ascii: bool = True,
               default: Callable[[Any], Any] | None = None, mode: int = OUTPUT_MODE) -> None:
    """Write ``obj`` as strict JSON (plus a final newline) to ``path``, atomically; permissions follow the umask."""
    text = dumps_strict(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=ensure_ascii, default=default)
    atomic_write_text(Path(path), text + "\n", mode=mode)


# -- the journal: lossless for the scores ------------------------------------------------------

_INF_TOKENS = {"Infinity": math.inf, "-Infinity": -math.inf}


def _journal_float(f: float) -> Any:
    if math.isnan(f):
        return None
    return "Infinity" if f > 0 else "-Infinity"


def journal_line(record: Mapping[str, Any]) -> str:
    """One journal line (no newline): strict JSON; NaN -> null, ±inf -> "Infinity"/"-Infinity"."""
    return escape_surrogates(json.dumps(to_jsonable(record, default=str, _encode_float=_journal_float),
                                        ensure_ascii=False, allow_nan=False))


def _restore_values(values: Any) -> Any:
    if not isinstance(values, dict):
        return values
    out: dict[str, Any] = {}
    for k, v in values.items():
        if v is None:
            out[k] = math.nan
        elif isinstance(v, str) and v in _INF_TOKENS:
            out[k] = _INF_TOKENS[v]
        else:
            out[k] = v
    return out


def parse_journal_line(line: str) -> dict[str, Any]:
    """A journal record back, with NaN/±inf restored in its ``values`` and every view's ``values``.

    Lines written before journals were strict (bare NaN/Infinity tokens) still read the same."""
    record: dict[str, Any] = json.loads(line)
    if "values" in record:
        record["values"] = _restore_values(record["values"])
    for view in record.get("views") or []:
        if isinstance(view, dict) and "values" in view:
            view["values"] = _restore_values(view["values"])
    return record
