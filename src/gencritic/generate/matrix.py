"""The generation matrix: the list of configurations every image is sent to.

A matrix is a user-editable YAML or TOML file (the default one ships as
``default_matrix.yaml``). It is validated once, before any work: a typo in a model name
would otherwise cost an hour of waiting for a job the API rejects, or worse, be accepted
as a different setting. Each configuration gets a fingerprint of everything that changes
its output, stored on its jobs so an edited configuration can never pass old meshes off
as new ones. The keys of a matrix and of each configuration are strict schemas
(:mod:`gencritic.schemas`): a misspelt key is refused with the accepted keys and the closest match.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from gencritic.errors import InputError
from gencritic.jsonio import dumps_strict
from gencritic.schemas import StrictModel, closest, validate_strict

DEFAULT_MATRIX = Path(__file__).with_name("default_matrix.yaml")

BACKENDS = ("csm", "command")
CSM_TYPES = ("image_to_3d", "image_to_kit", "chat_to_3d")
GEOMETRY_MODELS = ("base", "turbo")
TEXTURE_MODELS = ("none", "baked", "pbr")
# The settings gencritic knows; CSM accepts others, which pass through, unless one looks like a typo of these.
KNOWN_SETTINGS = ("geometry_model", "texture_model", "resolution")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigSpec(StrictModel):
    """The keys of one configuration (meanings checked in :func:`_build`, with their own messages)."""

    name: Any = Field(None, description="unique; letters, digits, '-', '_' or '.'")
    backend: Any = Field(None, description=f"{' or '.join(BACKENDS)} (default: defaults.backend, else csm)")
    type: Any = Field(None, description=f"csm only: {' | '.join(CSM_TYPES)}")
    settings: Any = Field(None, description="csm only: sent as input.settings; merged over defaults.settings")
    decomposition_model: Any = Field(None, description="image_to_kit only (e.g. pro)")
    prompt: Any = Field(None, description="chat_to_3d only: the re-prompt sent with the image")
    command: Any = Field(None, description="command only: argv list with {image} and {output}")
    timeout_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="command only: seconds before the local run is killed")


class DefaultsSpec(StrictModel):
    backend: Any = Field(None, description="backend of configurations that name none")
    settings: Any = Field(None, description="csm settings every csm configuration starts from")


class MatrixSpec(StrictModel):
    version: int | None = Field(None, description="format version (1)")
    defaults: DefaultsSpec | None = None
    # checked one by one in _build, so that messages name the configuration
    configurations: list[Any] = Field(description="the configurations, in matrix order")


KNOWN_KEYS = set(ConfigSpec.model_fields)


@dataclass(frozen=True)
class JobConfig:
    """One column of the matrix: a generator and its settings."""

    name: str
    backend: str
    type: str = "image_to_3d"
    settings: dict[str, Any] = field(default_factory=dict)
    decomposition_model: str | None = None
    prompt: str | None = None
    command: tuple[str, ...] = ()
    timeout_s: float = 3600.0

    @property
    def stages(self) -> tuple[str, ...]:
        """Remote steps of one job: chat-to-3D first makes an image, then a mesh from it."""
        return ("chat", "mesh") if self.backend == "csm" and self.type == "chat_to_3d" else ("mesh",)

    def fingerprint(self) -> str:
        """sha256 of everything that changes the output (not the name)."""
        payload = {"backend": self.backend, "type": self.type, "settings": self.settings,
                   "decomposition_model": self.decomposition_model, "prompt": self.prompt,
                   "command": list(self.command)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """Stored on each job so later commands need no matrix file to carry on."""
        data = {"name": self.name, "backend": self.backend, "type": self.type, "settings": self.settings,
                "decomposition_model": self.decomposition_model, "prompt": self.prompt,
                "command": list(self.command), "timeout_s": self.timeout_s}
        return dumps_strict(data, sort_keys=True, nonfinite="raise")  # must read back as it was

    @classmethod
    def from_json(cls, text: str) -> JobConfig:
        data = json.loads(text)
        data["command"] = tuple(data.get("command") or ())
        return cls(**data)

    def describe(self) -> str:
        """Short human summary for tables and the leaderboard."""
        if self.backend == "command":
            return " ".join(self.command)
        parts = [self.type] + [f"{k}={v}" for k, v in sorted(self.settings.items())]
        if self.decomposition_model:
            parts.append(f"decomposition_model={self.decomposition_model}")
        return " ".join(parts)


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"matrix file not found: {path} (pass an existing .yaml/.toml file to --matrix)")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"matrix {path} is not valid {path.suffix.lstrip('.') or 'yaml'}: {first}") from None
    if not isinstance(data, dict) or not isinstance(data.get("configurations"), list):
        raise InputError(f"matrix {path} needs a top-level 'configurations:' list (see the default matrix in "
                         f"`gencritic generate run --help`)")
    validate_strict(MatrixSpec, data, f"matrix {path}", noun="key")
    return data


def _fail(path: Path, name: str, what: str) -> InputError:
    return InputError(f"matrix {path}, configuration {name!r}: {what}")


def _build(entry: Any, defaults: dict[str, Any], path: Path, index: int) -> JobConfig:
    if not isinstance(entry, dict):
        raise InputError(f"matrix {path}: configuration #{index + 1} must be a mapping with at least 'name'")
    name = str(entry.get("name", "")).strip()
    if not NAME_RE.match(name):
        raise InputError(f"matrix {path}: configuration #{index + 1} needs a 'name' of letters, digits, '-', '_' "
                         f"or '.' (got {name!r})")
    validate_strict(ConfigSpec, entry, f"matrix {path}, configuration {name!r}", noun="key")
    backend = str(entry.get("backend", defaults.get("backend", "csm")))
    if backend not in BACKENDS:
        raise _fail(path, name, f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    settings = dict(defaults.get("settings") or {}) if backend == "csm" else {}
    own = entry.get("settings") or {}
    if not isinstance(own, dict):
        raise _fail(path, name, "'settings' must be a mapping such as {geometry_model: turbo}")
    settings.update(own)
    for key in settings:
        hint = closest(str(key), KNOWN_SETTINGS) if key not in KNOWN_SETTINGS else None
        if hint:  # sent as written, a typo would be ignored or rejected an hour later by the API
            raise _fail(path, name, f"settings key {key!r} looks like a typo of {hint!r}; the settings gencritic "
                                    f"checks are {', '.join(KNOWN_SETTINGS)} (others are passed to the API as written)")
    if backend == "command":
        command = entry.get("command")
        if isinstance(command, str) or not isinstance(command, list) or not command:
            raise _fail(path, name, "a command backend needs 'command' as a list, e.g. "
                                    "[\"python\", \"gen.py\", \"{image}\", \"{output}\"]")
        argv = tuple(str(a) for a in command)
        if not any("{output}" in a for a in argv) or not any("{image}" in a for a in argv):
            raise _fail(path, name, "'command' must contain the placeholders {image} and {output}")
        timeout = float(entry.get("timeout_s", 3600))  # the schema refused non-numbers and <= 0
        return JobConfig(name=name, backend=backend, type="command", command=argv, timeout_s=timeout)
    kind = str(entry.get("type", "image_to_3d"))
    if kind not in CSM_TYPES:
        raise _fail(path, name, f"type {kind!r} is not one of {', '.join(CSM_TYPES)}")
    geometry = settings.get("geometry_model")
    if geometry is not None and geometry not in GEOMETRY_MODELS:
        raise _fail(path, name, f"geometry_model {geometry!r} is not one of {', '.join(GEOMETRY_MODELS)}")
    texture = settings.get("texture_model")
    if texture is not None and texture not in TEXTURE_MODELS:
        raise _fail(path, name, f"texture_model {texture!r} is not one of {', '.join(TEXTURE_MODELS)}")
    resolution = settings.get("resolution")
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0):
        raise _fail(path, name, f"resolution must be a positive whole number of faces (got {resolution!r})")
    decomposition = entry.get("decomposition_model")
    if decomposition is not None and kind != "image_to_kit":
        raise _fail(path, name, "'decomposition_model' only applies to type image_to_kit")
    prompt = entry.get("prompt")
    if kind == "chat_to_3d":
        if not isinstance(prompt, str) or not prompt.strip():
            raise _fail(path, name, "type chat_to_3d needs a non-empty 'prompt' (the re-prompt sent with the image)")
        prompt = " ".join(prompt.split())
    elif prompt is not None:
        raise _fail(path, name, "'prompt' only applies to type chat_to_3d")
    return JobConfig(name=name, backend=backend, type=kind, settings=settings,
                     decomposition_model=str(decomposition) if decomposition is not None else None, prompt=prompt)


def load_matrix(path: Path | None = None, only: list[str] | None = None) -> list[JobConfig]:
    """Read and validate a matrix (the default one when ``path`` is None).

    ``only`` keeps the named configurations, in matrix order; an unknown name is an error.
    """
    path = path or DEFAULT_MATRIX
    data = _read(path)
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise InputError(f"matrix {path}: 'defaults' must be a mapping")
    configs = [_build(e, defaults, path, i) for i, e in enumerate(data["configurations"])]
    if not configs:
        raise InputError(f"matrix {path} lists no configurations")
    names = [c.name for c in configs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"matrix {path}: configuration name(s) used twice: {', '.join(dupes)}")
    if only:
        missing = [n for n in only if n not in names]
        if missing:
            raise InputError(f"unknown configuration(s) {', '.join(missing)}; the matrix has: {', '.join(names)}")
        configs = [c for c in configs if c.name in only]
    return configs
