"""Find one weights file that a metric needs: a path the user gave, an environment variable,
or a file in a Hugging Face hub repo (local cache first).

Long-CLIP, SPECS, HPSv2 and ImageReward ship single checkpoint files rather than
``save_pretrained`` folders, so ``load_clip``'s hub-id path does not cover them. This module
only *locates* the file; loading stays in :mod:`gencritic.models.loader` and
:mod:`gencritic.models.preference`. Nothing here falls back to another model: when the file
cannot be had, the error names the model, the env var and the hub file to fetch.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from gencritic.errors import ModelUnavailableError


@dataclass(frozen=True)
class WeightsSource:
    """Where a named model's weights may come from, in the order they are tried."""

    model_name: str  # what users call it ("Long-CLIP-L", "HPS v2.1")
    env_var: str  # e.g. GENCRITIC_LONGCLIP_MODEL
    option_hint: str  # e.g. "longclip:model=/path/to/longclip-L.pt"
    hub_repo: str | None = None  # e.g. "BeichenZhang/LongCLIP-L"
    hub_filename: str | None = None  # e.g. "longclip-L.pt"
    kind: str = "file"  # "file" or "folder" (save_pretrained layout)

    def how_to_provide(self) -> str:
        hub = (f" or put {self.hub_filename} from https://huggingface.co/{self.hub_repo} in the Hugging Face cache"
               if self.hub_repo and self.hub_filename else "")
        return f"give the {self.kind} with {self.option_hint}, set {self.env_var}=/path/to/{self.kind}{hub}"


def unavailable(source: WeightsSource, reason: str) -> ModelUnavailableError:
    reason = " ".join(reason.split())[:240]
    return ModelUnavailableError(f"{source.model_name} weights unavailable: {reason}; {source.how_to_provide()}")


def _hub_reachable() -> bool:
    """Cheap check that the hub's host resolves, so an offline machine fails in milliseconds
    instead of through huggingface_hub's retry back-off (about 25 s of warnings per file)."""
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def hub_repo_reachable(source: str, probe_file: str = "config.json") -> bool:
    """Can ``from_pretrained(source)`` possibly succeed? True for a local folder, a repo whose
    ``probe_file`` is in the HF cache, or a hub reachable over the network. Checked before
    transformers tries, because its offline failure takes ~25 s of retries per file."""
    if Path(source).expanduser().exists():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache(source, probe_file), str):
            return True
    except Exception:  # not a valid repo id: let the loader report it
        return True
    return not _offline() and _hub_reachable()


def _hub_file(repo: str, filename: str) -> Path | None:
    """The file from the local HF cache, else downloaded (unless offline); None if neither."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - huggingface_hub is a core dependency
        return None
    try:
        return Path(hf_hub_download(repo, filename, local_files_only=True))
    except Exception:
        pass
    if _offline() or not _hub_reachable():
        return None
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # the failure is reported once, by our error line
    try:
        return Path(hf_hub_download(repo, filename))
    except Exception:
        return None
    finally:
        hub_log.setLevel(level)


def resolve_weights(source: WeightsSource, given: str | None) -> str:
    """Return the spec to load: the user's value (option, then env var) or a hub file's local path.

    A given value that looks like a path must exist; other given values (hub ids) are passed
    on untouched for the loader to resolve."""
    value = given or os.environ.get(source.env_var)
    if value:
        path = Path(value).expanduser()
        looks_like_path = value.startswith((".", "/", "~")) or path.suffix in (".pt", ".pth", ".bin", ".safetensors")
        if looks_like_path and not path.exists():
            raise unavailable(source, f"no such file '{value}'")
        return str(path) if path.exists() else value
    if source.hub_repo and source.hub_filename:
        found = _hub_file(source.hub_repo, source.hub_filename)
        if found is not None:
            return str(found)
        raise unavailable(source, f"{source.hub_filename} is not in the Hugging Face cache and could not be "
                                  f"downloaded")
    raise unavailable(source, "no weights file given")
