"""Durable job state in one SQLite file: what was asked, what is running, what came back.

Why SQLite and not a JSON file: a crash (or Ctrl-C) while rewriting a JSON tracker can
truncate it and lose every session id, i.e. paid jobs. SQLite commits atomically; WAL lets
readers (``generate progress`` in another terminal) run beside a writer; and every write
here is a ``BEGIN IMMEDIATE`` transaction, so two processes working on the same folder
serialise their state changes instead of overwriting each other.

One row per job, identified by (image content sha256, configuration name). The state
machine (see docs/generation.md)::

    pending --claim--> submitting --POST answered--> running --> downloading --> complete
      ^  ^                |  |
      |  +- interrupted, -+  +- interrupted with sent=1 (or the answer was lost)
      |     sent=0           |  and the token lookup cannot answer
      |                      v
      +-- resolve --------- unconfirmed --resolve --adopt ID--> running
          --resubmit             +------resolve --forget------> failed

    4xx or a remote failure: submitting/running/downloading --> failed

``submitting`` is written, with an idempotency token, *before* anything is sent; the
token travels in the request. Separately, the ``sent`` mark is committed right before each
request leaves and cleared when the API answers "not processed" (429): it is what tells an
interrupted submission that cannot have been paid for (``sent=0``: back to ``pending``, no
question asked) from one that may have been (``sent=1``: looked up by token; when the
lookup cannot answer, ``unconfirmed``, which only the user moves on). A claim also records
the owning process and a lease, which is how a second process tells a live submission from
an abandoned one.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.jsonio import dumps_strict
from gencritic.remote.clock import Clock, iso
from gencritic.sqlite_wal import connect_wal

SCHEMA_VERSION = 2
STATUSES = ("pending", "submitting", "unconfirmed", "running", "downloading", "complete", "failed")
ACTIVE = ("pending", "submitting", "running", "downloading")  # states that move without the user
_UNOWNED = ("pending", "unconfirmed", "complete", "failed")  # states no process works on
LEASE_S = 15 * 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    image_sha256  TEXT NOT NULL,
    config        TEXT NOT NULL,
    config_fp     TEXT NOT NULL,
    config_json   TEXT NOT NULL,
    backend       TEXT NOT NULL,
    image_name    TEXT NOT NULL,
    image_path    TEXT NOT NULL,
    image_copy    TEXT NOT NULL,
    prompt        TEXT,
    status        TEXT NOT NULL,
    stage         TEXT NOT NULL,
    stage_input   TEXT,
    token         TEXT,
    session_id    TEXT,
    chain         TEXT NOT NULL DEFAULT '[]',
    remote_status TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    last_error    TEXT,
    outputs       TEXT NOT NULL DEFAULT '[]',
    files         TEXT NOT NULL DEFAULT '[]',
    owner_pid     INTEGER,
    owner_run     TEXT,
    lease_until   REAL,
    created_at    TEXT NOT NULL,
    submitted_at  TEXT,
    updated_at    TEXT NOT NULL,
    completed_at  TEXT,
    sent          INTEGER NOT NULL DEFAULT 0,
    UNIQUE (image_sha256, config)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
"""


def job_id_for(image_sha256: str, config: str) -> str:
    """Stable id of a job: readable, and unique per (content, configuration)."""
    return f"{image_sha256[:16]}:{config}"


@dataclass
class JobRow:
    """One job as stored. JSON columns are decoded."""

    job_id: str
    image_sha256: str
    config: str
    config_fp: str
    config_json: str
    backend: str
    image_name: str
    image_path: str
    image_copy: str
    prompt: str | None
    status: str
    stage: str
    stage_input: str | None
    token: str | None
    session_id: str | None
    chain: list[dict[str, Any]]
    remote_status: str | None
    attempts: int
    error: str | None
    last_error: str | None
    outputs: list[dict[str, Any]]
    files: list[dict[str, Any]]
    owner_pid: int | None
    owner_run: str | None
    lease_until: float | None
    created_at: str
    submitted_at: str | None
    updated_at: str
    completed_at: str | None
    sent: int  # 1: a request carrying ``token`` may have reached the API, outcome unknown

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        data = dict(row)
        for key in ("chain", "outputs", "files"):
            data[key] = json.loads(data[key] or "[]")
        return cls(**data)


@dataclass
class NewJob:
    """What planning knows about a job before it exists."""

    image_sha256: str
    config: str
    config_fp: str
    config_json: str
    backend: str
    image_name: str
    image_path: str
    image_copy: str
    prompt: str | None
    stage: str
    extra: dict[str, Any] = field(default_factory=dict)


class ClaimLost(Exception):
    """This run no longer owns the row it was about to send (its lease ran out and another
    process took the job over). Nothing may be sent for it."""


def _migrate_1_to_2(c: sqlite3.Connection) -> None:
    """Add the ``sent`` mark. A version-1 ``submitting`` row may have sent its request, so it
    is marked sent (it will be looked up, never silently re-sent)."""
    c.execute("ALTER TABLE jobs ADD COLUMN sent INTEGER NOT NULL DEFAULT 0")
    c.execute("UPDATE jobs SET sent=1 WHERE status='submitting'")
    c.execute("UPDATE meta SET value='2' WHERE key='schema_version'")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Tracker:
    """The job table of one workdir (``<workdir>/jobs.sqlite``)."""

    def __init__(self, path: Path, clock: Clock) -> None:
        self.path = path
        self.clock = clock
        self.run_id = uuid.uuid4().hex
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = connect_wal(path, what_to_do="stop it or use another --workdir")
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA synchronous=FULL")
        with self.transaction() as c:
            # executescript would COMMIT on its own; run the statements inside our transaction
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                c.execute(stmt)
            row = c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None:
                c.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) == 1:
                _migrate_1_to_2(c)
            elif int(row[0]) != SCHEMA_VERSION:
                raise InputError(f"{path} was written by another gencritic version (schema {row[0]}); "
                                 f"use a new --workdir")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: take the write lock up front so read-then-write is atomic."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _now(self) -> str:
        stamp = iso(self.clock.now())
        assert stamp is not None
        return stamp

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                      (key, value))

    # -- planning ---------------------------------------------------------------------------
    def plan(self, jobs: Sequence[NewJob]) -> tuple[int, int]:
        """Insert jobs that do not exist yet; returns (created, already there).

        A configuration whose settings changed under the same name is refused: its old
        results would otherwise be reported as the new configuration's.
        """
        created = existing = 0
        now = self._now()
        with self.transaction() as c:
            for job in jobs:
                jid = job_id_for(job.image_sha256, job.config)
                row = c.execute("SELECT config_fp, image_path FROM jobs WHERE job_id=?", (jid,)).fetchone()
                if row is not None:
                    if row["config_fp"] != job.config_fp:
                        raise InputError(
                            f"configuration {job.config!r} changed since its jobs were created in {self.path.parent}; "
                            f"rename it in the matrix, or run `gencritic generate clean --config {job.config}` first")
                    if row["image_path"] != job.image_path:  # renamed/moved file, same content: follow it
                        c.execute("UPDATE jobs SET image_path=?, image_name=? WHERE job_id=?",
                                  (job.image_path, job.image_name, jid))
                    existing += 1
                    continue
                c.execute(
                    "INSERT INTO jobs (job_id, image_sha256, config, config_fp, config_json, backend, image_name, "
                    "image_path, image_copy, prompt, status, stage, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (jid, job.image_sha256, job.config, job.config_fp, job.config_json, job.backend, job.image_name, job.image_path,
                     job.image_copy, job.prompt, job.stage, now, now))
                created += 1
        return created, existing

    # -- reading ----------------------------------------------------------------------------
    def get(self, job_id: str) -> JobRow:
        row = self._conn.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return JobRow.from_row(row)

    def all(self, statuses: Sequence[str] | None = None) -> list[JobRow]:
        sql = "SELECT * FROM jobs"
        args: list[Any] = []
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = list(statuses)
        sql += " ORDER BY image_name, image_sha256, rowid"  # rowid: matrix order within an image
        return [JobRow.from_row(r) for r in self._conn.execute(sql, args)]

    def counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status")}

    # -- state changes ----------------------------------------------------------------------
    def _is_stale(self, row: sqlite3.Row) -> bool:
        """A ``submitting`` claim whose owner is gone (crashed, killed, or an earlier run here)."""
        if row["owner_run"] == self.run_id:
            return False
        pid = row["owner_pid"]
        if pid is None or not _pid_alive(int(pid)) or int(pid) == os.getpid():
            return True
        return float(row["lease_until"] or 0) < self.clock.now()

    def claim_for_submit(self, job_id: str) -> JobRow | None:
        """pending -> submitting, recorded before anything is sent; ``sent`` starts at 0.

        The row keeps a token it already has (a request that never left, or one the user
        chose to resubmit: the same ``Idempotency-Key`` lets a gateway that honours it
        answer with the earlier session); otherwise it gets a fresh one. Returns None when
        another process got there first.
        """
        now = self._now()
        with self.transaction() as c:
            row = c.execute("SELECT status, token FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row["status"] != "pending":
                return None
            token = row["token"] or f"gc-{uuid.uuid4().hex}"
            c.execute("UPDATE jobs SET status='submitting', token=?, sent=0, attempts=attempts+1, owner_pid=?, "
                      "owner_run=?, lease_until=?, updated_at=? WHERE job_id=?",
                      (token, os.getpid(), self.run_id, self.clock.now() + LEASE_S, now, job_id))
        return self.get(job_id)

    def mark_sent(self, job_id: str) -> None:
        """Commit "a request may leave now" right before it does; renews the lease.

        Raises :class:`ClaimLost` when this run no longer owns the submission: then
        another process may be sending it, and sending too would pay twice.
        """
        with self.transaction() as c:
            n = c.execute("UPDATE jobs SET sent=1, lease_until=?, updated_at=? "
                          "WHERE job_id=? AND status='submitting' AND owner_run=?",
                          (self.clock.now() + LEASE_S, self._now(), job_id, self.run_id)).rowcount
        if n != 1:
            raise ClaimLost(f"{job_id}: another process took this submission over; not sending it")

    def mark_not_sent(self, job_id: str) -> None:
        """The API answered that the request was not processed (429) and nothing before it is
        in doubt: an interruption from here on cannot have cost anything."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET sent=0, updated_at=? WHERE job_id=? AND status='submitting' AND owner_run=?",
                      (self._now(), job_id, self.run_id))

    def claim_stale_submission(self, job_id: str) -> JobRow | None:
        """Take over a ``submitting`` row left by a dead owner, or an ``unconfirmed`` one to
        look it up again; either becomes ``submitting`` owned by this run, keeping its token
        and ``sent`` mark. Returns None when a live process holds it."""
        with self.transaction() as c:
            row = c.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None:
                return None
            if not (row["status"] == "unconfirmed" or (row["status"] == "submitting" and self._is_stale(row))):
                return None
            c.execute("UPDATE jobs SET status='submitting', owner_pid=?, owner_run=?, lease_until=?, updated_at=? "
                      "WHERE job_id=?",
                      (os.getpid(), self.run_id, self.clock.now() + LEASE_S, self._now(), job_id))
        return self.get(job_id)

    def claim_active(self, job_id: str, status: str) -> JobRow | None:
        """Take a running/downloading row for this run (skipped if a live process holds it)."""
        with self.transaction() as c:
            row = c.execute("SELECT * FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row["status"] != status:
                return None
            if row["owner_run"] not in (None, self.run_id) and not self._is_stale(row):
                return None
            c.execute("UPDATE jobs SET owner_pid=?, owner_run=?, lease_until=? WHERE job_id=?",
                      (os.getpid(), self.run_id, self.clock.now() + LEASE_S, job_id))
        return self.get(job_id)

    def update(self, job_id: str, expect: str | Sequence[str] | None = None, **fields: Any) -> bool:
        """Set columns atomically; with ``expect``, only if the row is still in that status."""
        for key in ("chain", "outputs", "files"):
            if key in fields:
                fields[key] = dumps_strict(fields[key], sort_keys=True)
        fields["updated_at"] = self._now()
        if fields.get("status") in ("complete", "failed"):
            fields.setdefault("completed_at", fields["updated_at"])
        if fields.get("status") in _UNOWNED:
            fields.setdefault("owner_pid", None)
            fields.setdefault("owner_run", None)
            fields.setdefault("lease_until", None)
        cols = ", ".join(f"{k}=?" for k in fields)
        args = [*fields.values(), job_id]
        sql = f"UPDATE jobs SET {cols} WHERE job_id=?"
        if expect is not None:
            wanted = [expect] if isinstance(expect, str) else list(expect)
            sql += f" AND status IN ({','.join('?' * len(wanted))})"
            args.extend(wanted)
        with self.transaction() as c:
            return c.execute(sql, args).rowcount == 1

    def release(self, job_id: str) -> None:
        """Drop this run's claim (the row keeps its status for the next run)."""
        with self.transaction() as c:
            c.execute("UPDATE jobs SET owner_pid=NULL, owner_run=NULL, lease_until=NULL "
                      "WHERE job_id=? AND owner_run=?", (job_id, self.run_id))

    def delete(self, job_ids: Sequence[str]) -> int:
        with self.transaction() as c:
            n = 0
            for jid in job_ids:
                n += c.execute("DELETE FROM jobs WHERE job_id=?", (jid,)).rowcount
        return n
