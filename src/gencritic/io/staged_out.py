"""``--out s3://bucket/run/``: a run writes a local folder, and the address is kept in step with it.

Why staged: the journal is appended and fsynced per batch, and results are rewritten at the end;
object stores have neither appends nor renames. So the run writes a local folder as usual and:

* **on entry** the address's state is read back (its settings fingerprint and its journal), so a
  resumed run skips what any earlier run into that address finished, on this machine or another;
* **during the run** a thread uploads what the journal gained since the last upload as a new
  object under ``.gencritic/journal.d/`` (every ``interval`` seconds: a crash of the driver loses
  at most that much, and object stores append nothing, so a segment is never rewritten);
* **on exit** (also after Ctrl-C or an error) the whole journal is uploaded as
  ``.gencritic/journal.jsonl``, the segments it now holds are deleted, then the result files,
  ``summary.json`` last. Each file is one PUT, which object stores make atomic: a reader sees the
  previous version or the new one, never part of a file.

Reading the journal back joins ``journal.jsonl`` and the segments in name order; a record that
appears twice (a segment whose deletion failed) is the same record, and the journal keeps the last.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.io.fetch import describe_failure, filesystem, name_addresses
from gencritic.io.urls import OBJECT_STORES, UrlPath, redact

log = logging.getLogger("gencritic")

SEGMENTS = "journal.d"


def _complete_lines(data: bytes) -> bytes:
    """``data`` up to its last newline (a torn last line is dropped, as the journal does)."""
    return data[:data.rfind(b"\n") + 1]


class StagedOutput:
    """A local folder standing for an output address; use as a context manager (gives the folder).

    ``state_dir``/``journal`` name the run's state folder and journal inside the output folder;
    ``overwrite`` deletes the address's state first (as ``--overwrite`` discards a local one).
    """

    def __init__(self, url: UrlPath, state_dir: str, journal: str, *, overwrite: bool = False,
                 interval: float = 5.0) -> None:
        if url.scheme not in OBJECT_STORES:
            raise InputError(f"--out {redact(str(url))}: results can be written to object storage "
                             f"(s3://, gs://, az://), not to {url.scheme}:// addresses")
        self.url = url
        self.state_dir = state_dir
        self.journal = journal
        self.overwrite = overwrite
        self.interval = interval
        self.fs, self.root = filesystem(url)
        self.local = Path(tempfile.mkdtemp(prefix="gencritic-out-"))
        self.session = f"{time.time_ns():020d}"
        self._sent = 0  # journal bytes already uploaded (those read back included)
        self._segments: list[str] = []  # remote segment paths that the consolidated journal replaces
        self._uploaded: dict[str, tuple[int, int]] = {}  # relative name -> (size, mtime_ns) last uploaded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.failed: str | None = None  # why a background upload failed (retried at the next one)

    # --- addresses --------------------------------------------------------------------------
    def _remote(self, rel: str) -> str:
        return f"{self.root.rstrip('/')}/{rel}"

    def _local_journal(self) -> Path:
        return self.local / self.state_dir / self.journal

    def name(self, text: str) -> str:
        """``text`` with the local folder named by the address (for messages)."""
        return name_addresses(text, {str(self.local): str(self.url)})

    # --- entry: read the address's state back ------------------------------------------------
    def _read_state(self) -> None:
        state = self._remote(self.state_dir)
        try:
            self.fs.invalidate_cache(state)
            found = sorted(self.fs.find(state)) if self.fs.exists(state) else []
        except Exception as exc:
            raise InputError(f"--out: {describe_failure(self.url, exc)}") from None
        prefix = state.rstrip("/") + "/"
        journal_key = prefix + self.journal
        segments = sorted(p for p in found if p.startswith(prefix + SEGMENTS + "/"))
        if self.overwrite:
            for path in [journal_key, prefix + "run.json", *segments]:
                if path in found:
                    self._call(self.fs.rm_file, path)
            return
        local_state = self.local / self.state_dir
        local_state.mkdir(parents=True, exist_ok=True)
        for path in found:
            rel = path[len(prefix):]
            if "/" not in rel and rel != self.journal:  # run.json and other small state files
                (local_state / rel).write_bytes(self._call(self.fs.cat_file, path))
        parts = ([self._call(self.fs.cat_file, journal_key)] if journal_key in found else [])
        parts += [self._call(self.fs.cat_file, seg) for seg in segments]
        data = b"".join(_complete_lines(bytes(p)) for p in parts)
        if data:
            self._local_journal().write_bytes(data)
        self._sent = len(data)
        self._segments = segments
        for f in local_state.iterdir():
            if f.is_file():
                st = f.stat()
                self._uploaded[f"{self.state_dir}/{f.name}"] = (st.st_size, st.st_mtime_ns)

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:
            raise InputError(f"--out: {describe_failure(self.url, exc)}") from None

    def __enter__(self) -> Path:
        try:
            self._read_state()
        except BaseException:
            shutil.rmtree(self.local, ignore_errors=True)
            raise
        self._thread = threading.Thread(target=self._mirror, name="gencritic-upload", daemon=True)
        self._thread.start()
        return self.local

    # --- during the run --------------------------------------------------------------------
    def _mirror(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.flush()
                self.failed = None
            except Exception as exc:  # the network may come back: keep the run going, retry next time
                self.failed = describe_failure(self.url, exc)
                log.warning("uploading the journal to %s failed (retrying): %s", redact(str(self.url)), self.failed)

    def flush(self) -> int:
        """Upload the journal's new complete lines as one segment, and changed state files; the
        number of journal bytes uploaded."""
        with self._lock:
            journal = self._local_journal()
            sent = 0
            if journal.is_file():
                with open(journal, "rb") as fh:
                    fh.seek(self._sent)
                    new = _complete_lines(fh.read())
                if new:
                    segment = self._remote(f"{self.state_dir}/{SEGMENTS}/{self.session}-{self._sent:016d}.jsonl")
                    self.fs.pipe_file(segment, new)
                    self._segments.append(segment)
                    self._sent += len(new)
                    sent = len(new)
            state = self.local / self.state_dir
            if state.is_dir():
                for f in sorted(state.iterdir()):
                    if f.is_file() and f.name != self.journal:
                        self._put_if_changed(f)
            return sent

    def _put_if_changed(self, f: Path) -> bool:
        rel = f.relative_to(self.local).as_posix()
        st = f.stat()
        if self._uploaded.get(rel) == (st.st_size, st.st_mtime_ns):
            return False
        self.fs.put_file(str(f), self._remote(rel))  # one PUT: atomic on an object store
        self._uploaded[rel] = (st.st_size, st.st_mtime_ns)
        return True

    # --- exit: the whole journal, then the results, summary last ---------------------------------
    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            self.upload_all()
        except Exception as upload_exc:
            message = (f"could not write the results to {redact(str(self.url))}: "
                       f"{describe_failure(self.url, upload_exc)}; they are in {self.local} "
                       f"(the journal streamed so far is at the address: the same command resumes)")
            if exc is None:
                raise InputError(message) from None
            log.error("%s", message)
            return
        shutil.rmtree(self.local, ignore_errors=True)

    def upload_all(self) -> None:
        """Upload every changed file: the journal whole, its segments deleted, then the rest."""
        with self._lock:
            state = self.local / self.state_dir
            journal = self._local_journal()
            if journal.is_file() and self._put_if_changed(journal):
                for segment in self._segments:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.rm_file(segment)
                self._segments = []
            files = [f for f in sorted(self.local.rglob("*")) if f.is_file() and f != journal]
            first = [f for f in files if f.parent == state]
            last = [f for f in files if f.name == "summary.json" and f.parent == self.local]
            rest = [f for f in files if f not in first and f not in last]
            for f in first + rest + last:
                self._put_if_changed(f)
