"""Read objects behind addresses (``s3://``, ``gs://``, ``az://``, ``https://``) into a local cache by content.

Why a cache by content: the rest of gencritic reads local files (PIL, trimesh, Blender), and a
re-run, a second metric or another item pointing at the same object must not download it again.
An object is downloaded once into ``<cache>/remote/objects/<sha256[:2]>/<sha256><suffix>`` (the
suffix kept, since loaders choose the format by it); an index maps the object's *version* to that
content.

Why the version: the address alone cannot say whether the object changed since it was fetched. Its
version is what the store reports of it — ETag (or GCS generation / MD5, S3 VersionId), size and
last-modified time — and the index entry is keyed by ``sha256(address | size | etag | mtime)``, the
item's hash of a remote object. A changed object has another key, so it is downloaded again (and
scored on its new bytes, whose content hash keys the embedding and render caches as for any file).
The version is read before and after every download; if it moved in between, the download is
retried once and then fails the item, so no cache entry ever pairs one version with another's
bytes. A store that reports neither an ETag nor a time (some web servers) gives no version to trust:
such objects are downloaded on every run (their content still deduplicates in the store).

Every request uses the store's own credential chain (nothing is passed or recorded here); errors
name the address with :func:`~gencritic.io.urls.redact` applied.

Counters (:data:`STATS`) say what this process fetched — the Ray engine reports them per node.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.errors import InputError, ItemError
from gencritic.io.urls import SCHEMES, UrlPath, redact

REMOTE_DIR = "remote"  # under the cache folder
_CHUNK = 1 << 20


def filesystem(url: UrlPath) -> tuple[Any, str]:
    """The fsspec file system for ``url`` and the path it uses; a missing implementation is an
    :class:`InputError` naming the package to install."""
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec comes with huggingface_hub
        raise InputError("reading addresses needs fsspec: pip install 'gencritic[remote]'") from None
    try:
        fs, path = fsspec.core.url_to_fs(str(url))
    except (ImportError, ValueError) as exc:
        package = SCHEMES.get(url.scheme, "an fsspec implementation")
        raise InputError(f"{url.scheme}:// addresses need {package}: pip install {package} "
                         f"(or 'gencritic[remote]'); {type(exc).__name__}: {redact(str(exc))}") from None
    return fs, path


def require_backends(urls: Iterable[UrlPath]) -> None:
    """One line before any work when an address's scheme has no installed fsspec implementation."""
    for url in {u.scheme: u for u in urls}.values():
        filesystem(url)


@dataclass(frozen=True)
class ObjectVersion:
    """What the store says of one object: size, ETag (or generation/MD5/VersionId), modified time."""

    size: int | None
    etag: str | None
    mtime: str | None

    @property
    def trusted(self) -> bool:
        """Whether a change of the object would show here (an ETag or a time)."""
        return bool(self.etag or self.mtime)

    def key(self, url: UrlPath) -> str:
        """The item's hash of this object: its address and version together."""
        return hashlib.sha256(f"{url}|{self.size}|{self.etag}|{self.mtime}".encode()).hexdigest()


_ETAG_FIELDS = ("ETag", "etag", "generation", "md5Hash", "VersionId", "version_id", "content_md5")
_TIME_FIELDS = ("LastModified", "last_modified", "mtime", "updated", "modified")


def _version_of(info: dict[str, Any]) -> ObjectVersion:
    tags = [f"{k}={info[k]}" for k in _ETAG_FIELDS if info.get(k) not in (None, "")]
    times = [str(info[k]) for k in _TIME_FIELDS if info.get(k) not in (None, "")]
    size = info.get("size")
    return ObjectVersion(size=int(size) if isinstance(size, (int, float)) else None,
                         etag=";".join(tags) or None, mtime=times[0] if times else None)


def describe_failure(url: UrlPath, exc: BaseException) -> str:
    """One line naming the (redacted) address and what went wrong, with the fix where known."""
    where = redact(str(url))
    name = type(exc).__name__
    text = redact(str(exc)).replace("\n", " ")
    if isinstance(exc, FileNotFoundError):
        return f"not found: {where} (check the address; the object may have been deleted)"
    if isinstance(exc, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return f"access denied: {where} (check the credentials this machine's {url.scheme} client finds)"
    if name in ("NoCredentialsError", "DefaultCredentialsError", "ClientAuthenticationError") \
            or ("credentials" in text.lower() and "unable to locate" in text.lower()):
        return (f"no credentials for {where}: set them the standard way for {url.scheme} (for S3: "
                f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or an instance role)")
    return f"cannot read {where}: {name}: {text}"


class ObjectNotFound(ItemError):
    """The address names no object (a side file may then be looked for under another name)."""


def stat_object(url: UrlPath) -> ObjectVersion:
    """The object's version; :class:`ItemError` when it is missing (:class:`ObjectNotFound`), a
    folder or unreadable."""
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)  # s3fs/gcsfs remember listings: a changed object must show
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise ObjectNotFound(describe_failure(url, exc)) from None
    except Exception as exc:
        raise ItemError(describe_failure(url, exc)) from None
    if info.get("type") == "directory":
        raise ItemError(f"expected a file but found a folder: {redact(str(url))}")
    STATS.add(stats=1)
    return _version_of(info)


def list_folder_urls(url: UrlPath) -> list[UrlPath]:
    """The objects directly below a folder prefix (hidden names skipped), in natural order."""
    from gencritic.io.listing import natural_key

    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)
        entries = fs.ls(path, detail=True)
    except Exception as exc:
        raise ItemError(describe_failure(url, exc)) from None
    names = [posix_name(str(e["name"])) for e in entries if e.get("type") == "file"]
    names = [n for n in names if n and not n.startswith(".")]
    return [url / n for n in sorted(names, key=natural_key)]


def read_object(url: UrlPath) -> bytes:
    """An object's bytes, not cached (manifests and prompt files: small, and read each run so a
    changed one is seen); :class:`ItemError` naming the address when it cannot be read."""
    fs, path = filesystem(url)
    try:
        data = fs.cat_file(path)
    except FileNotFoundError as exc:
        raise ObjectNotFound(describe_failure(url, exc)) from None
    except Exception as exc:
        raise ItemError(describe_failure(url, exc)) from None
    STATS.add(fetches=1, nbytes=len(data))
    return bytes(data)


def find_files(url: UrlPath) -> list[str]:
    """Every object below a folder prefix, as paths relative to it (``a/b.png``), hidden names
    (a segment starting with ``.``) skipped; :class:`ItemError` when the prefix cannot be listed."""
    fs, path = filesystem(url)
    try:
        fs.invalidate_cache(path)
        found = fs.find(path, detail=True)
    except Exception as exc:
        raise ItemError(describe_failure(url, exc)) from None
    base = path.rstrip("/") + "/"
    out = []
    for name, info in found.items():
        if info.get("type", "file") != "file" or not str(name).startswith(base):
            continue
        rel = str(name)[len(base):]
        if rel and not any(part.startswith(".") for part in rel.split("/")):
            out.append(rel)
    return out


def posix_name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


class FetchStats:
    """Counters of one process: objects downloaded, their bytes, cache hits, version checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fetches = 0
        self.bytes = 0
        self.hits = 0
        self.stats = 0

    def add(self, fetches: int = 0, nbytes: int = 0, hits: int = 0, stats: int = 0) -> None:
        with self._lock:
            self.fetches += fetches
            self.bytes += nbytes
            self.hits += hits
            self.stats += stats

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"fetches": self.fetches, "bytes": self.bytes, "hits": self.hits, "stats": self.stats}


STATS = FetchStats()


def stats_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


class ObjectCache:
    """Local copies of remote objects, stored by content, found by version.

    ``root`` is the cache folder (``<cache>/remote`` is used); ``None`` keeps the copies in a
    temporary folder for this cache's life only (``--no-cache``), removed by :meth:`close`.
    Safe with several threads and processes on one folder: every file appears by an atomic rename.
    """

    def __init__(self, root: Path | None) -> None:
        self._temporary = root is None
        self._root = None if root is None else Path(root) / REMOTE_DIR
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The folder of this cache (a temporary one is made on first use)."""
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="gencritic-fetch-"))
            return self._root

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def index(self) -> Path:
        return self.root / "index"

    def close(self) -> None:
        if self._temporary and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    def __enter__(self) -> ObjectCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _index_file(self, key: str) -> Path:
        return self.index / key[:2] / key

    def _object_file(self, sha: str, suffix: str) -> Path:
        return self.objects / sha[:2] / f"{sha}{suffix}"

    def lookup(self, url: UrlPath, version: ObjectVersion) -> Path | None:
        """The local copy of this version of ``url``, when the cache holds it."""
        if not version.trusted:
            return None
        entry = self._index_file(version.key(url))
        try:
            sha, _, suffix = entry.read_text(encoding="utf-8").strip().partition(" ")
        except OSError:
            return None
        local = self._object_file(sha, suffix)
        try:
            os.utime(local)  # used now: `gencritic cache prune --unused-days` keeps it
        except OSError:
            return None
        return local

    def fetch(self, url: UrlPath) -> Path:
        """A local file with the object's current bytes; :class:`ItemError` naming the address
        when it cannot be read."""
        version = stat_object(url)
        cached = self.lookup(url, version)
        if cached is not None:
            STATS.add(hits=1)
            return cached
        for attempt in (1, 2):
            tmp, sha, size = self._download(url)
            after = stat_object(url)
            if after == version:
                break
            tmp.unlink(missing_ok=True)
            if attempt == 2:
                raise ItemError(f"{redact(str(url))} changed while it was being read, twice; run again")
            version = after
        suffix = url.suffix
        local = self._object_file(sha, suffix)
        local.parent.mkdir(parents=True, exist_ok=True)
        if local.is_file():
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, local)
        if version.trusted:
            atomic_write_text(self._index_file(version.key(url)), f"{sha} {suffix}\n")
        STATS.add(fetches=1, nbytes=size)
        return local

    def _download(self, url: UrlPath) -> tuple[Path, str, int]:
        """Download into a temporary file beside the store; (file, sha256, size)."""
        fs, path = filesystem(url)
        self.objects.mkdir(parents=True, exist_ok=True)
        tmp = self.objects / f".fetch-{secrets.token_hex(8)}.tmp"
        digest = hashlib.sha256()
        size = 0
        try:
            with fs.open(path, "rb") as src, open(tmp, "wb") as dst:
                for block in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(block)
                    dst.write(block)
                    size += len(block)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, ItemError):
                raise
            raise ItemError(describe_failure(url, exc)) from None
        return tmp, digest.hexdigest(), size

    def fetch_many(self, urls: Sequence[UrlPath]) -> list[Path]:
        return [self.fetch(u) for u in urls]

    def tree(self, files: dict[str, Path]) -> Path:
        """A folder holding ``files`` (relative name -> local copy from :meth:`fetch`), for readers
        that find side files by relative name (an OBJ's MTL and textures, a folder of views).

        Keyed by the names and contents, so the same files give the same folder; built under a
        temporary name and renamed into place. Files are hard links into the store (a copy
        where the file system has none)."""
        for rel in files:
            if not rel or rel.startswith("/") or rel == ".." or rel.startswith("../") or "/../" in rel:
                raise ItemError(f"cannot place {rel!r} inside the asset's folder")
        listing = "\n".join(f"{rel}\t{local.name}" for rel, local in sorted(files.items()))
        key = hashlib.sha256(listing.encode("utf-8", errors="surrogateescape")).hexdigest()
        folder = self.root / "trees" / key[:2] / key
        if folder.is_dir():
            with contextlib.suppress(OSError):
                os.utime(folder)  # used now (see lookup)
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = folder.with_name(f".{key}.{secrets.token_hex(6)}.tmp")
        try:
            for rel, local in files.items():
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.link(local, dest)
                except OSError:  # no hard links here (another device, some network file systems)
                    shutil.copyfile(local, dest)
            os.rename(tmp, folder)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not folder.is_dir():  # not another process's identical folder: a real failure
                raise
        return folder


def name_addresses(text: str, local_to_url: dict[str, str]) -> str:
    """``text`` (an error message) with local cache paths replaced by the addresses they hold,
    longest first, so a failed row names what the user wrote, not a cache file."""
    for local, url in sorted(local_to_url.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(local, redact(url))
    return text
