"""Strict schemas for what users write: one way to declare options and one way to refuse them.

Why: an option nobody reads is worse than an error. ``clip:modle=...`` used to run the default
model and record the typo in the settings, so the number looked as if it honoured it. Every
mapping a user writes (metric options, render options, profile YAML, generation matrices) is a
pydantic model with ``extra="forbid"``, and a refusal is one :class:`InputError` line naming
where it happened, the key, the accepted keys and the closest accepted key (difflib), so the CLI
exits 2 with the fix in view. The same schemas describe themselves (``gencritic metrics --json``).
"""

from __future__ import annotations

import difflib
import math
import types
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticUndefined

from gencritic.errors import InputError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every user-facing schema: unknown keys are errors, validated values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def closest(key: str, accepted: Sequence[str]) -> str | None:
    """The accepted key a typo most likely meant (None when nothing is close)."""
    lowered = {a.lower(): a for a in accepted}
    if key.lower() in lowered:  # a case slip: 'Model' for 'model'
        return lowered[key.lower()]
    match = difflib.get_close_matches(key, list(accepted), n=1, cutoff=0.6)
    return match[0] if match else None


def validate_strict(schema: type[M], data: Mapping[str, Any], where: str | None, noun: str = "option") -> M:
    """``schema`` validated from ``data``, or an InputError of one line (see :func:`refusal`)."""
    try:
        return schema.model_validate(dict(data))
    except ValidationError as exc:
        raise InputError(refusal(exc, schema, where, noun)) from None


def refusal(exc: ValidationError, schema: type[BaseModel], where: str | None, noun: str = "option") -> str:
    """One line for a failed validation: unknown keys first (with their closest matches), else
    the first wrongly typed or out-of-range value. ``where`` prefixes it ("metric 'clip'")."""
    errors = exc.errors()
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    prefix = f"{where}: " if where else ""
    if extra:
        parent = tuple(extra[0]["loc"][:-1])
        keys = [str(e["loc"][-1]) for e in extra if tuple(e["loc"][:-1]) == parent]
        accepted = accepted_keys(schema, parent)
        named = []
        for key in keys:
            hint = closest(key, accepted)
            named.append(f"'{key}'" + (f" (did you mean '{hint}'?)" if hint else ""))
        inside = f" in {_dotted(parent)}:" if parent else ""
        plural = "s" if len(keys) > 1 else ""
        return (f"{prefix}unknown {noun}{plural}{inside} {', '.join(named)}; "
                f"accepted: {', '.join(accepted) if accepted else f'none (it takes no {noun}s)'}")
    first = errors[0]
    loc = tuple(first["loc"])
    msg = str(first["msg"])
    if first["type"] == "value_error":  # our own validators' messages name the key and the fix
        return prefix + msg.removeprefix("Value error, ")
    if first["type"] == "missing":
        accepted = accepted_keys(schema, loc[:-1])
        return f"{prefix}{noun} '{_dotted(loc)}' is required; accepted: {', '.join(accepted)}"
    if loc and _model_at(schema, loc) is not None:  # a scalar or list where a mapping belongs
        return f"{prefix}{_dotted(loc)} must be a mapping with keys among: {', '.join(accepted_keys(schema, loc))}"
    accepted = accepted_keys(schema, _parent_model_loc(schema, loc))
    return (f"{prefix}{noun} {_dotted(loc)}={first.get('input')!r} is not valid: {msg}; "
            f"accepted: {', '.join(accepted)}")


def _dotted(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(tp: Any) -> Any:
    """Annotated[X, ...] -> X; X | None -> X."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _step(tp: Any, part: Any) -> Any:
    """The annotation found one location step below ``tp`` (None when it cannot be followed)."""
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        field = tp.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin = get_origin(tp)
    args = get_args(tp)
    if origin in (dict, Mapping) and len(args) == 2:
        return args[1]
    if origin in (list, Sequence) and args:
        return args[0]
    if origin is tuple and args:
        return args[int(part)] if isinstance(part, int) and part < len(args) else args[0]
    return None


def _model_at(schema: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    tp: Any = schema
    for part in loc:
        tp = _step(tp, part)
        if tp is None:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _parent_model_loc(schema: type[BaseModel], loc: Sequence[Any]) -> tuple[Any, ...]:
    """The longest prefix of ``loc`` that ends on a model (whose keys are the ones to list)."""
    for cut in range(len(loc) - 1, -1, -1):
        if _model_at(schema, loc[:cut]) is not None:
            return tuple(loc[:cut])
    return ()


def accepted_keys(schema: type[BaseModel], loc: Sequence[Any] = ()) -> list[str]:
    """The keys the model at ``loc`` (a pydantic error location) accepts, sorted."""
    model = _model_at(schema, loc)
    return sorted(model.model_fields) if model is not None else []


def _type_name(tp: Any) -> tuple[str, list[Any] | None]:
    """A JSON-ish type name and, for a fixed set of values, the choices."""
    tp = _unwrap(tp)
    if get_origin(tp) is Literal:
        choices = list(get_args(tp))
        return _type_name(type(choices[0]))[0], choices
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if tp in names:
        return names[tp], None
    origin = get_origin(tp)
    if origin in (list, tuple, Sequence):
        return "list", None
    if origin in (dict, Mapping):
        return "mapping", None
    return getattr(tp, "__name__", str(tp)), None


def _json_default(value: Any) -> Any:
    if value is PydanticUndefined:
        return None
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None  # strict JSON has no NaN/Infinity
    return value if isinstance(value, str | int | float | bool | list | dict) or value is None else str(value)


def describe_schema(schema: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """Each key of ``schema``: type (and choices), default, whether required, description."""
    out: dict[str, dict[str, Any]] = {}
    for name, field in schema.model_fields.items():
        kind, choices = _type_name(field.annotation)
        entry: dict[str, Any] = {"type": kind, "default": _json_default(field.default),
                                 "required": field.is_required(), "description": field.description or ""}
        if choices is not None:
            entry["choices"] = choices
        out[name] = entry
    return out
