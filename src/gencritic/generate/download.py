"""Fetch result files so that a file on disk is always a whole, verified file.

A mesh is streamed to a temp name while its sha256 is computed, checked (byte count
against ``Content-Length``; for GLB, the header's magic and declared length), fsynced and
only then renamed into place. The checksum goes into the tracker; a later ``progress``
re-hashes files it believes complete and fetches again only if one was lost or altered.
Transient failures (429, 5xx, resets, truncated bodies) are retried on the same schedule
as API calls. No API key is ever sent here: result URLs are often signed links on
another host.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from dataclasses import dataclass
from pathlib import Path

import httpx

from gencritic.hashing import sha256_file
from gencritic.remote.clock import Clock
from gencritic.remote.retry import (
    ApiError,
    RetryableError,
    RetryPolicy,
    call_with_retry,
    is_retryable_status,
)

CHUNK = 1 << 16


@dataclass(frozen=True)
class FileRecord:
    """A downloaded file as recorded in the tracker."""

    path: str
    sha256: str
    bytes: int
    kind: str
    index: int
    format: str

    def as_dict(self) -> dict[str, object]:
        return {"path": self.path, "sha256": self.sha256, "bytes": self.bytes, "kind": self.kind,
                "index": self.index, "format": self.format}


def check_glb(path: Path) -> str | None:
    """Why a GLB file is not whole (bad magic, length field disagreeing with the size), or None."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        header = fh.read(12)
    if len(header) < 12:
        return f"GLB is {size} bytes, shorter than its 12-byte header"
    magic, version, length = struct.unpack("<4sII", header)
    if magic != b"glTF":
        return "not a GLB file (the first bytes are not 'glTF')"
    if version != 2:
        return f"GLB version {version} is not supported (expected 2)"
    if length != size:
        return f"GLB header declares {length} bytes but {size} arrived (truncated or padded download)"
    return None


def verify(path: Path, fmt: str, expected_bytes: int | None = None) -> str | None:
    """Structural check of a finished file; the reason it is bad, or None."""
    size = path.stat().st_size
    if size == 0:
        return "the file is empty"
    if expected_bytes is not None and size != expected_bytes:
        return f"expected {expected_bytes} bytes (Content-Length) but got {size}"
    if fmt == "glb":
        return check_glb(path)
    return None


class Downloader:
    """Streams URLs to files; one httpx client for all, without credentials."""

    def __init__(self, clock: Clock, policy: RetryPolicy | None = None, timeout: httpx.Timeout | float = 120.0,
                 rng: random.Random | None = None, transport: httpx.BaseTransport | None = None) -> None:
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self._http = httpx.Client(timeout=timeout, transport=transport, follow_redirects=True)

    def close(self) -> None:
        self._http.close()

    def _once(self, url: str, dest: Path, fmt: str) -> tuple[str, int]:
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
        digest = hashlib.sha256()
        try:
            with self._http.stream("GET", url) as response:
                if not response.is_success:
                    text = f"download {dest.name}: HTTP {response.status_code}"
                    if is_retryable_status(response.status_code):
                        raise RetryableError(text, status=response.status_code)
                    raise ApiError(f"{text} (the link may have expired; run `generate progress` again to refresh it)",
                                   response.status_code)
                declared = response.headers.get("Content-Length")
                with open(tmp, "wb") as fh:
                    for block in response.iter_bytes(CHUNK):
                        fh.write(block)
                        digest.update(block)
                    fh.flush()
                    os.fsync(fh.fileno())
        except httpx.TimeoutException:
            tmp.unlink(missing_ok=True)
            raise RetryableError(f"download {dest.name}: timed out") from None
        except httpx.TransportError as exc:
            tmp.unlink(missing_ok=True)
            raise RetryableError(f"download {dest.name}: connection error: {exc or type(exc).__name__}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        problem = verify(tmp, fmt, int(declared) if declared and declared.isdigit() else None)
        if problem:
            tmp.unlink(missing_ok=True)
            raise RetryableError(f"download {dest.name}: {problem}")
        size = tmp.stat().st_size
        os.replace(tmp, dest)
        return digest.hexdigest(), size

    def fetch(self, url: str, dest: Path, fmt: str, kind: str, index: int) -> FileRecord:
        """Download ``url`` to ``dest`` (atomically), verified; retried when transient."""
        if not url.startswith(("http://", "https://")):
            raise ApiError(f"refusing to download from a non-HTTP URL for {dest.name}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        sha, size = call_with_retry(lambda: self._once(url, dest, fmt), what=f"download {dest.name}",
                                    clock=self.clock, policy=self.policy, rng=self.rng)
        return FileRecord(str(dest), sha, size, kind, index, fmt)


def still_valid(record: dict[str, object]) -> bool:
    """A recorded file is still on disk with the recorded checksum (so it is not fetched again)."""
    path = Path(str(record.get("path", "")))
    return path.is_file() and sha256_file(path) == record.get("sha256")
