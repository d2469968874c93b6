"""The job state machine: plan, reconcile, submit, poll, download. No HTTP, no printing.

Every transition is one tracker transaction, written before the side effect it allows
(the claim and token before the POST, the ``sent`` mark right before each request leaves)
or right after the effect it records (the session id after the POST returns). Whatever is
killed in between is found by the next run:

* ``submitting`` with a dead owner and ``sent=0``: no request can have left; back to
  ``pending`` and sent in the same pass, without asking the API anything;
* ``submitting`` with a dead owner and ``sent=1``: the backend is asked for a session
  carrying the job's token; found -> adopt its id; not found -> send now, with the same
  token; the lookup cannot answer (no listing endpoint, refused, down) -> ``unconfirmed``;
* ``unconfirmed``: looked up again once per run; otherwise it waits for
  ``generate resolve`` (resubmit, forget, or adopt a session id). It is never re-sent on
  a guess and never waited on: ``run_until_done`` stops when only such jobs are left;
* ``running``: polled; ``downloading``: outputs fetched (again) and verified;
* ``complete`` files are re-hashed; one that is missing or altered is fetched again.

So ``generate run`` and ``generate progress`` are the same loop and both idempotent.
"""

from __future__ import annotations

import logging
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gencritic.atomic import atomic_open
from gencritic.errors import GencriticError, InputError, ItemError
from gencritic.generate.backends.base import Backend, RemoteState, StageRequest
from gencritic.generate.backends.command import CommandBackend
from gencritic.generate.backends.csm import DEFAULT_API_URL, AuthError, CsmBackend
from gencritic.generate.download import Downloader, FileRecord, still_valid, verify
from gencritic.generate.matrix import JobConfig
from gencritic.generate.tracker import ACTIVE, ClaimLost, JobRow, NewJob, Tracker
from gencritic.hashing import sha256_file
from gencritic.items import IMAGE_EXTENSIONS
from gencritic.remote.clock import Clock, iso
from gencritic.remote.keys import ApiKey
from gencritic.remote.retry import ApiError, RetriesExhausted, RetryPolicy, Unconfirmed

log = logging.getLogger("gencritic.generate")

DB_NAME = "jobs.sqlite"


@dataclass
class GenerateSettings:
    """Where state lives and how the network is used. Flags > env > these defaults."""

    workdir: Path = Path("gencritic-jobs")
    api_url: str = DEFAULT_API_URL
    formats: Sequence[str] = ("glb",)
    request_timeout_s: float = 60.0
    download_timeout_s: float = 300.0
    poll_interval_s: float = 30.0
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class StepReport:
    """What one pass did, for the CLI to show."""

    reconciled: int = 0
    requeued: int = 0  # interrupted before a request could leave: back to pending
    submitted: int = 0
    polled: int = 0
    downloaded: int = 0
    refetched: int = 0
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)


RESOLVE_ACTIONS = ("resubmit", "forget", "adopt")


def scan_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (sorted); the folder must exist and hold some."""
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder: pass the folder that holds your input images")
    images = sorted(p for p in folder.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        exts = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise InputError(f"no images in {folder} (looked for {exts})")
    return images


def resolve_api_url(given: str | None, workdir: Path) -> str:
    """--api-url/$CSM_API_URL > the URL this workdir's jobs were submitted to > the public API.

    Remembering the workdir's URL matters: polling sessions made through a gateway at the
    public endpoint would answer 404 and fail every job.
    """
    import sqlite3

    if given:
        return given
    db = workdir / DB_NAME
    if db.exists():
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='api_url'").fetchone()
        except sqlite3.Error:
            row = None
        finally:
            conn.close()
        if row:
            return str(row[0])
    return DEFAULT_API_URL


def sidecar_prompt(image: Path) -> str | None:
    """``photo.txt`` beside ``photo.png`` is the image's prompt (used by text metrics in eval)."""
    text_file = image.with_suffix(".txt")
    if text_file.is_file():
        text = text_file.read_text(encoding="utf-8").strip()
        return text or None
    return None


class Runner:
    """Drives the jobs of one workdir."""

    def __init__(self, settings: GenerateSettings, clock: Clock, backend_factory: Callable[[str], Backend],
                 downloader: Downloader | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.rng = rng
        self.clock = clock
        self.workdir = settings.workdir
        self.tracker = Tracker(self.workdir / DB_NAME, clock)
        self._factory = backend_factory
        self._backends: dict[str, Backend] = {}
        self._downloader = downloader
        self._fresh: set[str] = set()  # jobs polled in this run (their URLs are current)

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        if self._downloader is not None:
            self._downloader.close()
        self.tracker.close()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            self._backends[name] = self._factory(name)
        return self._backends[name]

    @property
    def downloader(self) -> Downloader:
        if self._downloader is None:
            self._downloader = Downloader(self.clock, self.settings.policy, self.settings.download_timeout_s,
                                          rng=self.rng)
        return self._downloader

    def output_dir(self, row: JobRow) -> Path:
        stem = Path(row.image_name).stem
        return self.workdir / "results" / f"{stem}-{row.image_sha256[:8]}" / row.config

    # -- planning ---------------------------------------------------------------------------
    def plan(self, images_dir: Path, configs: Sequence[JobConfig]) -> tuple[int, int, int]:
        """Create a pending job per (image, configuration); returns (images, created, existing).

        Images are checked (they must decode) and copied, content-addressed, into the
        workdir, so the bytes sent, the hash and the reference used by ``eval`` agree even
        if the user edits or moves the originals later.
        """
        from gencritic.io.images import load_image

        images = scan_images(images_dir)
        store = self.workdir / "images"
        store.mkdir(parents=True, exist_ok=True)
        jobs: list[NewJob] = []
        seen: dict[str, Path] = {}
        for image in images:
            try:
                sha = load_image(image).sha256
            except ItemError as exc:
                raise InputError(f"{exc}; fix or remove the file and run again") from None
            if sha in seen:
                log.warning("%s has the same content as %s: one set of jobs serves both", image, seen[sha])
                continue
            seen[sha] = image
            copy = store / f"{sha}{image.suffix.lower()}"
            if not copy.exists():  # unique temp name: another process may be copying the same image
                with atomic_open(copy, binary=True, prefix=f".{sha[:16]}.") as fh, open(image, "rb") as src:
                    shutil.copyfileobj(src, fh)
            prompt = sidecar_prompt(image)
            for config in configs:
                jobs.append(NewJob(image_sha256=sha, config=config.name, config_fp=config.fingerprint(),
                                   config_json=config.to_json(), backend=config.backend, image_name=image.name,
                                   image_path=str(image.resolve()), image_copy=str(copy.resolve()), prompt=prompt,
                                   stage=config.stages[0]))
        created, existing = self.tracker.plan(jobs)
        return len(seen), created, existing

    # -- one pass ---------------------------------------------------------------------------
    def step(self, verify_complete: bool = True, recheck_unconfirmed: bool = True) -> StepReport:
        """Verify, reconcile, submit, poll, submit follow-up stages, download. Idempotent.

        ``recheck_unconfirmed``: look ``unconfirmed`` jobs up again (once per run is enough:
        an API without a listing answers the same every poll).
        """
        report = StepReport()
        if verify_complete:  # first, so a lost or altered file is fetched again in this same pass
            self.verify_complete(report)
        self.reconcile(report, recheck_unconfirmed)
        self.submit_pending(report)
        self.poll_running(report)
        self.submit_pending(report)  # chat-to-3D: the mesh stage starts as soon as the image exists
        self.download_ready(report)
        self.write_manifest()
        return report

    def write_manifest(self) -> Path:
        """``results/manifest.csv``: every downloaded file with its job, config, image and sha256.

        For people and tools that want the meshes without reading SQLite (e.g. ``gencritic
        score``). Rewritten atomically, and only when its content changes.
        """
        from gencritic.atomic import atomic_write_text
        from gencritic.io.tables import rows_to_csv

        columns = ["job_id", "image", "config", "status", "kind", "index", "format", "path", "sha256", "bytes"]
        rows = [{"job_id": r.job_id, "image": r.image_name, "config": r.config, "status": r.status, **f}
                for r in self.tracker.all() for f in r.files]
        path = self.workdir / "results" / "manifest.csv"
        text = rows_to_csv(rows, columns)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
        return path

    def active(self) -> int:
        """Jobs that can still move without the user (``unconfirmed`` ones cannot)."""
        counts = self.tracker.counts()
        return sum(counts.get(s, 0) for s in ACTIVE)

    def needs_user(self) -> list[JobRow]:
        """Jobs only ``generate resolve`` can move: submissions that may or may not exist."""
        return self.tracker.all(["unconfirmed"])

    def run_until_done(self, max_passes: int | None = None,
                       on_pass: Callable[[StepReport], None] | None = None) -> StepReport:
        """Loop ``step`` every ``poll_interval_s`` until no job can move without the user.

        Finished, failed and ``unconfirmed`` jobs do not keep the loop alive, so a
        submission nobody can check ends the wait (the CLI says which and why) instead of
        polling for ever.
        """
        total = StepReport()
        passes = 0
        while True:
            report = self.step(verify_complete=passes == 0, recheck_unconfirmed=passes == 0)
            passes += 1
            for name in ("reconciled", "requeued", "submitted", "polled", "downloaded", "refetched"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.failed.extend(report.failed)
            total.warnings.extend(report.warnings)
            total.unconfirmed.extend(report.unconfirmed)
            if on_pass is not None:
                on_pass(report)
            if self.active() == 0 or (max_passes is not None and passes >= max_passes):
                return total
            self.clock.sleep(self.settings.poll_interval_s)

    # -- transitions ------------------------------------------------------------------------
    def _fail(self, row: JobRow, message: str, report: StepReport, expect: str) -> None:
        if self.tracker.update(row.job_id, expect=expect, status="failed", error=message):
            report.failed.append(f"{row.image_name} × {row.config}: {message}")

    def _auth_stop(self, row: JobRow, exc: AuthError) -> GencriticError:
        self.tracker.release(row.job_id)
        return GencriticError(str(exc))

    def _unconfirm(self, row: JobRow, why: str, report: StepReport) -> None:
        """submitting -> unconfirmed: the request may have landed and nobody can tell now."""
        message = f"the submission may have reached the API and cannot be checked ({why})"
        if self.tracker.update(row.job_id, expect="submitting", status="unconfirmed", last_error=message):
            report.unconfirmed.append(f"{row.image_name} × {row.config}: {message}")

    def reconcile(self, report: StepReport, recheck_unconfirmed: bool = True) -> None:
        """Settle interrupted submissions (owner gone) and, with ``recheck_unconfirmed``, look
        ``unconfirmed`` ones up again.

        ``sent=0``: nothing can have left, so the job is pending again (and sent in this
        pass). ``sent=1``: the token is looked up; found -> adopted; not found -> sent now;
        no answer -> ``unconfirmed``, for the user to resolve.
        """
        statuses = ["submitting", "unconfirmed"] if recheck_unconfirmed else ["submitting"]
        for row in self.tracker.all(statuses):
            self.backend(row.backend)  # a missing key fails here, before the job is claimed
            claimed = self.tracker.claim_stale_submission(row.job_id)
            if claimed is None:
                continue
            if not claimed.sent or claimed.token is None:
                if self.tracker.update(claimed.job_id, expect="submitting", status="pending", sent=0):
                    log.info("%s: interrupted before its request left; pending again", claimed.job_id)
                    report.requeued += 1
                continue
            backend = self.backend(claimed.backend)
            try:
                found = backend.find_by_token(claimed.token)
            except AuthError as exc:
                self.tracker.update(claimed.job_id, expect="submitting", status=row.status)
                raise self._auth_stop(claimed, exc) from None
            except (ApiError, RetriesExhausted) as exc:
                self._unconfirm(claimed, str(exc), report)
                continue
            report.reconciled += 1
            if found is not None:
                log.info("%s: adopted session %s submitted before an interruption", claimed.job_id, found)
                self.tracker.update(claimed.job_id, expect="submitting", status="running", session_id=found,
                                    submitted_at=iso(self.clock.now()), remote_status="incomplete", last_error=None,
                                    sent=0)
                self.tracker.release(claimed.job_id)
            else:
                self._send(claimed, report)

    def submit_pending(self, report: StepReport) -> None:
        for row in self.tracker.all(["pending"]):
            self.backend(row.backend)  # a missing key fails here, before the job is claimed
            claimed = self.tracker.claim_for_submit(row.job_id)
            if claimed is not None:
                self._send(claimed, report)

    def _send(self, row: JobRow, report: StepReport) -> None:
        """POST one stage of a row this run owns in ``submitting``; record the outcome."""
        assert row.token is not None
        config = JobConfig.from_json(row.config_json)
        job_id = row.job_id
        request = StageRequest(config=config, stage=row.stage, image_path=Path(row.image_copy),
                               stage_input=row.stage_input, token=row.token, output_dir=self.output_dir(row),
                               image_name=row.image_name, before_send=lambda: self.tracker.mark_sent(job_id),
                               not_sent=lambda: self.tracker.mark_not_sent(job_id))
        try:
            session_id = self.backend(row.backend).submit(request)
        except ClaimLost as exc:  # another process owns it now; it decides what happens
            report.warnings.append(f"{row.image_name} × {row.config}: {exc}")
            return
        except AuthError as exc:
            # 401/403 is answered before anything is created: the job goes back to pending.
            self.tracker.update(job_id, expect="submitting", status="pending", token=None, sent=0)
            raise self._auth_stop(row, exc) from None
        except Unconfirmed as exc:
            self._unconfirm(row, str(exc), report)
            return
        except ApiError as exc:
            self._fail(row, str(exc), report, expect="submitting")
            return
        except RetriesExhausted as exc:
            if self.tracker.get(job_id).sent:
                # The last try may still have landed (timeout, 5xx): stay in submitting, keep the
                # token; the next pass looks it up before any new POST (or marks it unconfirmed).
                self.tracker.update(job_id, last_error=str(exc))
                self.tracker.release(job_id)
            else:  # every try was answered "not processed" (429): nothing to look up later
                self.tracker.update(job_id, expect="submitting", status="pending", last_error=str(exc))
            report.warnings.append(f"{row.image_name} × {row.config}: {exc}")
            return
        self.tracker.update(job_id, expect="submitting", status="running", session_id=session_id,
                            submitted_at=iso(self.clock.now()), remote_status="incomplete", last_error=None, sent=0)
        self.tracker.release(job_id)
        report.submitted += 1

    def unconfirmed_job(self, job_id: str) -> JobRow:
        """The job, if it is one ``resolve`` can act on; else one line saying why not."""
        try:
            row = self.tracker.get(job_id)
        except KeyError:
            raise InputError(f"no job {job_id!r} in {self.workdir}; `gencritic generate progress --workdir "
                             f"{self.workdir}` lists the unconfirmed ones with their ids") from None
        if row.status != "unconfirmed":
            raise InputError(f"job {job_id} is {row.status}, not unconfirmed: there is nothing to resolve "
                             f"(`generate progress` settles interrupted submissions by itself)")
        return row

    def resolve(self, job_id: str, action: str, session_id: str | None = None) -> str:
        """The user's answer for an ``unconfirmed`` job; returns what happened, in words.

        ``resubmit``: it is not on the API (or a second charge is accepted): pending again,
        with the same token, so a gateway honouring ``Idempotency-Key`` can still dedupe.
        ``forget``: stop tracking it (failed, with a note; no request is made).
        ``adopt``: the user found its session (e.g. in the CSM dashboard): track that id.
        """
        if action not in RESOLVE_ACTIONS:
            raise InputError(f"unknown resolve action {action!r}: use --resubmit, --forget or --adopt SESSION_ID")
        row = self.unconfirmed_job(job_id)
        if action == "resubmit":
            ok = self.tracker.update(job_id, expect="unconfirmed", status="pending", sent=0, last_error=None)
            what = "pending again; the next `generate run` or `generate progress` sends it (same idempotency token)"
        elif action == "forget":
            ok = self.tracker.update(job_id, expect="unconfirmed", status="failed", sent=0,
                                     error=f"forgotten by `generate resolve --forget`; a session carrying token "
                                           f"{row.token} may exist on the API and is not tracked")
            what = "forgotten (failed; nothing was sent)"
        else:
            if not session_id:
                raise InputError("--adopt needs the session id you found, e.g. --adopt SESSION_1700000000_0000001")
            ok = self.tracker.update(job_id, expect="unconfirmed", status="running", session_id=session_id,
                                     submitted_at=iso(self.clock.now()), remote_status="incomplete", sent=0,
                                     last_error=None)
            what = f"running, tracking session {session_id}; `generate progress` polls it"
        if not ok:
            raise InputError(f"job {job_id} changed while resolving it (another gencritic process is checking it); "
                             f"run `gencritic generate progress` and try again")
        return f"{job_id}: {what}"

    def poll_running(self, report: StepReport) -> None:
        for row in self.tracker.all(["running"]):
            claimed = self.tracker.claim_active(row.job_id, "running")
            if claimed is None or claimed.session_id is None:
                continue
            state = self._poll(claimed, report)
            if state is None:
                continue
            report.polled += 1
            self._apply(claimed, state, report)

    def _poll(self, row: JobRow, report: StepReport) -> RemoteState | None:
        assert row.session_id is not None
        try:
            state = self.backend(row.backend).poll(row.session_id, row.stage)
        except AuthError as exc:
            raise self._auth_stop(row, exc) from None
        except ApiError as exc:
            self._fail(row, str(exc), report, expect=row.status)
            return None
        except RetriesExhausted as exc:
            self.tracker.update(row.job_id, last_error=str(exc))
            self.tracker.release(row.job_id)
            report.warnings.append(f"{row.image_name} × {row.config}: {exc}")
            return None
        self._fresh.add(row.job_id)
        return state

    def _apply(self, row: JobRow, state: RemoteState, report: StepReport) -> None:
        if state.status == "incomplete":
            self.tracker.update(row.job_id, expect="running", remote_status=state.raw_status, last_error=None)
            self.tracker.release(row.job_id)
        elif state.status == "failed":
            self._fail(row, state.error or "the session failed remotely", report, expect=row.status)
        elif row.stage == "chat":
            chain = [*row.chain, {"stage": "chat", "session_id": row.session_id, "image_asset": state.next_input,
                                  "outputs": [o.as_dict() for o in state.outputs]}]
            self.tracker.update(row.job_id, expect="running", status="pending", stage="mesh",
                                stage_input=state.next_input, session_id=None, token=None, remote_status=None,
                                chain=chain, owner_pid=None, owner_run=None, lease_until=None)
        else:
            self.tracker.update(row.job_id, expect="running", status="downloading", remote_status=state.raw_status,
                                outputs=[o.as_dict() for o in state.outputs])
            self.tracker.release(row.job_id)

    def _pick_format(self, urls: dict[str, str]) -> str | None:
        for fmt in self.settings.formats:
            if fmt in urls:
                return fmt
        return None

    def download_ready(self, report: StepReport) -> None:
        for row in self.tracker.all(["downloading"]):
            claimed = self.tracker.claim_active(row.job_id, "downloading")
            if claimed is None:
                continue
            outputs = claimed.outputs
            if claimed.job_id not in self._fresh and claimed.session_id and claimed.backend != "command":
                state = self._poll(claimed, report)  # signed links expire: refresh them first
                if state is None:
                    continue
                if state.status != "complete":
                    self._fail(claimed, state.error or f"the session went back to {state.raw_status!r}", report,
                               expect="downloading")
                    continue
                outputs = [o.as_dict() for o in state.outputs]
                self.tracker.update(claimed.job_id, outputs=outputs)
            self._download(claimed, outputs, report)

    def _download(self, row: JobRow, outputs: list[dict[str, object]], report: StepReport) -> None:
        files = [f for f in row.files if still_valid(f)]
        have = {str(f["path"]) for f in files}
        out_dir = self.output_dir(row)
        for out in outputs:
            kind = str(out["kind"])
            if kind == "image":
                continue
            index = int(str(out["index"]))
            local = out.get("local_path")
            try:
                if local:
                    path = Path(str(local))
                    if str(path) in have:
                        continue
                    if not path.is_file():
                        raise ApiError(f"the local result {path} is gone; `generate clean` this job and run again")
                    problem = verify(path, path.suffix.lstrip(".").lower())
                    if problem:
                        raise ApiError(f"{path.name}: {problem}")
                    record = FileRecord(str(path), sha256_file(path), path.stat().st_size, kind, index,
                                        path.suffix.lstrip(".").lower())
                else:
                    urls = dict(out.get("urls") or {})  # type: ignore[call-overload]
                    fmt = self._pick_format(urls)
                    if fmt is None:
                        raise ApiError(f"no {'/'.join(self.settings.formats)} file in the output (available: "
                                       f"{', '.join(sorted(urls)) or 'none'}); use --format to pick one")
                    name = f"mesh.{fmt}" if kind == "mesh" and index == 0 else f"{kind}-{index:02d}.{fmt}"
                    dest = out_dir / name
                    if str(dest) in have:
                        continue
                    record = self.downloader.fetch(urls[fmt], dest, fmt, kind, index)
            except ApiError as exc:
                self._fail(row, str(exc), report, expect="downloading")
                return
            except RetriesExhausted as exc:
                self.tracker.update(row.job_id, files=files, last_error=str(exc))
                self.tracker.release(row.job_id)
                report.warnings.append(f"{row.image_name} × {row.config}: {exc}")
                return
            files.append(record.as_dict())
            have.add(record.path)
            self.tracker.update(row.job_id, files=files)  # durable per file: a crash keeps what arrived
            report.downloaded += 1
        if not files:
            self._fail(row, "the finished session had no mesh to download", report, expect="downloading")
            return
        self.tracker.update(row.job_id, expect="downloading", status="complete", files=files, last_error=None)

    def verify_complete(self, report: StepReport) -> None:
        """Re-hash finished files; a lost or altered one sends its job back to downloading."""
        for row in self.tracker.all(["complete"]):
            bad = [f for f in row.files if not still_valid(f)]
            if bad:
                names = ", ".join(Path(str(f["path"])).name for f in bad)
                self.tracker.update(row.job_id, expect="complete", status="downloading", completed_at=None,
                                    last_error=f"{names} missing or changed on disk since download; fetching again")
                report.refetched += 1
                report.warnings.append(f"{row.image_name} × {row.config}: {names} changed on disk; fetching again")

    # -- cleaning ---------------------------------------------------------------------------
    def select(self, images: Sequence[str] = (), configs: Sequence[str] = (), statuses: Sequence[str] = ()
               ) -> list[JobRow]:
        """Jobs matching every given filter (image by file name, stem or sha256 prefix)."""
        rows = self.tracker.all(list(statuses) or None)
        if images:
            wanted = set(images)
            rows = [r for r in rows if r.image_name in wanted or Path(r.image_name).stem in wanted
                    or any(r.image_sha256.startswith(w) for w in wanted if len(w) >= 8)]
        if configs:
            rows = [r for r in rows if r.config in set(configs)]
        return rows

    def clean(self, rows: Sequence[JobRow]) -> tuple[int, int]:
        """Delete the rows' result folders and tracking; returns (jobs, files removed)."""
        removed_files = 0
        for row in rows:
            out = self.output_dir(row)
            if out.exists():
                removed_files += sum(1 for p in out.rglob("*") if p.is_file())
                shutil.rmtree(out)
                parent = out.parent
                if parent.exists() and not any(parent.iterdir()):
                    parent.rmdir()
        n = self.tracker.delete([r.job_id for r in rows])
        used = {r.image_copy for r in self.tracker.all()}
        for row in rows:
            copy = Path(row.image_copy)
            if row.image_copy not in used and copy.exists():
                copy.unlink()
        return n, removed_files


def backend_factory(settings: GenerateSettings, clock: Clock, key: Callable[[], ApiKey],
                    rng: random.Random | None = None) -> Callable[[str], Backend]:
    """Build backends on first use, so a command-only matrix never asks for an API key."""

    def make(name: str) -> Backend:
        if name == "csm":
            timeout = httpx.Timeout(settings.request_timeout_s, connect=min(10.0, settings.request_timeout_s))
            return CsmBackend(settings.api_url, key(), clock, settings.policy, timeout=timeout, rng=rng)
        if name == "command":
            return CommandBackend()
        raise InputError(f"unknown backend {name!r}: use csm or command")

    return make
