"""Interrupted submissions against an API without a session listing (issue 17, item 3).

The ``sent`` mark decides what an interruption left behind: before it, nothing can have been
paid for and the job is simply pending again; after it, the job is looked up, and when the
API cannot answer it becomes ``unconfirmed`` (visible, never re-sent on a guess, never
waited on) until ``generate resolve`` says what to do.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.errors import InputError
from gencritic.generate.matrix import load_matrix
from gencritic.generate.runner import Runner, StepReport
from gencritic.generate.tracker import _SCHEMA, NewJob, Tracker
from tests.conftest import make_image
from tests.fake_csm import FakeClock, FakeCsm, Fault, make_runner

# `gencritic generate ...` without the scoring stack (torch): what the console script runs for
# these commands, with its run-level error handling (one line, exit 2).
DRIVER = """
import sys
from gencritic.cli.generate import gen_app
from gencritic.errors import GencriticError
try:
    gen_app(sys.argv[1:], prog_name="gencritic generate")
except GencriticError as exc:
    print(f"gencritic: error: {exc}", file=sys.stderr)
    sys.exit(2)
"""


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the code under test catches it."""


class CrashingClock(FakeClock):
    """A clock whose first sleep is where the process dies (e.g. during a Retry-After wait)."""

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        raise SimulatedCrash


@pytest.fixture()
def bare() -> Iterator[FakeCsm]:
    """The fake API without ``GET /v3/sessions/``: a lost answer cannot be looked up."""
    server = FakeCsm(listing=False).start()
    yield server
    server.stop()


@pytest.fixture()
def one(tmp_path: Path) -> Path:
    folder = tmp_path / "one"
    make_image(folder / "a.png", (10, 10, 200))
    return folder


def runner_for(tmp_path: Path, fake: FakeCsm, clock: FakeClock | None = None) -> Runner:
    return make_runner(tmp_path / "jobs", fake.url, fake.api_key, clock or FakeClock(), timeout_s=3.0)


def db_row(tmp_path: Path) -> tuple[Any, ...]:
    """(status, sent, token, session_id) of the only job, read by a connection of our own."""
    with sqlite3.connect(str(tmp_path / "jobs" / "jobs.sqlite")) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM jobs").fetchone())
    return row["status"], row.get("sent"), row["token"], row["session_id"]


def lookups(fake: FakeCsm) -> int:
    return sum(1 for m, p, _ in fake.log if m == "GET" and p == "/v3/sessions/")


def unconfirmed_after_a_landed_post(tmp_path: Path, fake: FakeCsm, images: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> str:
    """Kill between "the API created the session" and "its id is written"; then resume."""
    original = Tracker.update

    def crash_on_record(self: Tracker, job_id: str, expect: Any = None, **fields: Any) -> bool:
        if fields.get("status") == "running":
            raise SimulatedCrash
        return original(self, job_id, expect, **fields)

    runner = runner_for(tmp_path, fake)
    runner.plan(images, load_matrix(None, ["i3d-base"]))
    monkeypatch.setattr(Tracker, "update", crash_on_record)
    with pytest.raises(SimulatedCrash):
        runner.step()
    runner.close()
    monkeypatch.setattr(Tracker, "update", original)
    assert db_row(tmp_path)[:2] == ("submitting", 1) and len(fake.sessions) == 1
    with runner_for(tmp_path, fake) as resumed:
        resumed.step()
        (row,) = resumed.tracker.all()
    assert row.status == "unconfirmed"
    return row.job_id


# -- the state machine ---------------------------------------------------------------------

def test_killed_after_claim_before_anything_left_is_pending_again_and_sent_once(
        tmp_path: Path, bare: FakeCsm, one: Path) -> None:
    with runner_for(tmp_path, bare) as runner:
        runner.plan(one, load_matrix(None, ["i3d-base"]))
        (row,) = runner.tracker.all()
        assert runner.tracker.claim_for_submit(row.job_id) is not None  # recorded, then "killed"
    assert db_row(tmp_path)[:2] == ("submitting", 0)
    with runner_for(tmp_path, bare) as resumed:
        report = resumed.step()
        assert report.requeued == 1 and report.submitted == 1
        resumed.run_until_done(max_passes=5)
        (row,) = resumed.tracker.all()
    assert row.status == "complete"
    assert bare.posts == 1 and lookups(bare) == 0  # nothing to look up: no request had left


def test_killed_during_a_retry_after_wait_is_pending_again_not_stuck(tmp_path: Path, bare: FakeCsm,
                                                                      one: Path) -> None:
    bare.script("POST sessions", Fault(429, headers={"Retry-After": "5"}))
    runner = runner_for(tmp_path, bare, CrashingClock())
    runner.plan(one, load_matrix(None, ["i3d-base"]))
    with pytest.raises(SimulatedCrash):
        runner.step()  # the POST was answered 429 (not processed); killed while waiting 5 s
    runner.close()
    status, sent, token, _ = db_row(tmp_path)
    assert (status, sent) == ("submitting", 0)
    clock = FakeClock()
    with runner_for(tmp_path, bare, clock) as resumed:
        resumed.run_until_done(max_passes=5)
        (row,) = resumed.tracker.all()
    assert row.status == "complete" and row.token == token  # the same idempotency token, sent once
    assert bare.posts == 1 and len(bare.sessions) == 1 and lookups(bare) == 0
    assert set(bare.paid_per_job().values()) == {1}


def test_a_landed_post_without_listing_is_unconfirmed_and_the_wait_ends(
        tmp_path: Path, bare: FakeCsm, one: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = unconfirmed_after_a_landed_post(tmp_path, bare, one, monkeypatch)
    clock = FakeClock()
    with runner_for(tmp_path, bare, clock) as again:
        report = again.run_until_done(max_passes=50)
        (row,) = again.tracker.all()
        assert [r.job_id for r in again.needs_user()] == [job_id] and again.active() == 0
    assert row.status == "unconfirmed" and "cannot be checked" in (row.last_error or "")
    assert "HTTP 404" in (row.last_error or "")
    assert report.unconfirmed and report.submitted == 0
    assert clock.sleeps == []  # one pass, then it stopped: nothing could move without the user
    assert len(bare.sessions) == 1 and bare.count("POST", "/v3/") == 1  # never re-sent on a guess


def test_a_lost_post_answer_without_listing_is_unconfirmed_not_failed_not_resent(
        tmp_path: Path, bare: FakeCsm, one: Path) -> None:
    bare.script("POST sessions", Fault(502, after_create=True))
    with runner_for(tmp_path, bare) as runner:
        runner.plan(one, load_matrix(None, ["i3d-base"]))
        report = runner.step()
        (row,) = runner.tracker.all()
    assert row.status == "unconfirmed" and report.unconfirmed and not report.failed
    with runner_for(tmp_path, bare) as again:  # looked up once more per run, then left to the user
        again.run_until_done(max_passes=5)
        (row,) = again.tracker.all()
    assert row.status == "unconfirmed"
    assert len(bare.sessions) == 1 and bare.count("POST", "/v3/") == 1 and lookups(bare) == 2


def test_only_429s_leave_nothing_to_look_up(tmp_path: Path, bare: FakeCsm, one: Path) -> None:
    bare.script("POST sessions", *[Fault(429)] * 4)
    with runner_for(tmp_path, bare) as runner:
        runner.plan(one, load_matrix(None, ["i3d-base"]))
        report = StepReport()
        runner.submit_pending(report)
        (row,) = runner.tracker.all()
        assert row.status == "pending" and row.sent == 0 and "gave up after 4 attempts" in (row.last_error or "")
        assert report.warnings
        runner.run_until_done(max_passes=5)
        (row,) = runner.tracker.all()
    assert row.status == "complete" and bare.posts == 1 and lookups(bare) == 0


def test_an_unconfirmed_job_is_adopted_when_a_listing_answers(tmp_path: Path, fake: FakeCsm, one: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    fake.listing = False
    unconfirmed_after_a_landed_post(tmp_path, fake, one, monkeypatch)
    fake.listing = True  # e.g. a gateway that lists sessions, or the API added the endpoint
    with runner_for(tmp_path, fake) as again:
        again.run_until_done(max_passes=5)
        (row,) = again.tracker.all()
    assert row.status == "complete" and len(fake.sessions) == 1 and fake.count("POST", "/v3/") == 1


def test_sent_mark_is_committed_before_the_request_leaves(tmp_path: Path, bare: FakeCsm, one: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[Any, ...]] = []
    bare.on_request = lambda method, path, phase, status: seen.append(db_row(tmp_path)) if (
        method, phase) == ("POST", "received") else None
    with runner_for(tmp_path, bare) as runner:
        runner.plan(one, load_matrix(None, ["i3d-base"]))
        runner.step()
    assert seen and seen[0][:2] == ("submitting", 1)  # read by another connection: durable already
    assert db_row(tmp_path)[:2] == ("running", 0)


def test_a_lost_claim_sends_nothing(tmp_path: Path, bare: FakeCsm, one: Path) -> None:
    with runner_for(tmp_path, bare) as runner:
        runner.plan(one, load_matrix(None, ["i3d-base"]))
        (row,) = runner.tracker.all()
        claimed = runner.tracker.claim_for_submit(row.job_id)
        assert claimed is not None
        # e.g. our lease ran out and another process took the job over
        with runner_for(tmp_path, bare) as other, other.tracker.transaction() as c:
            c.execute("UPDATE jobs SET owner_run=? WHERE job_id=?", (other.tracker.run_id, row.job_id))
        report = StepReport()
        runner._send(claimed, report)
    assert bare.count("POST", "/v3/") == 0 and "took this submission over" in report.warnings[0]


def test_version_1_workdir_is_migrated_and_its_submitting_rows_are_looked_up(tmp_path: Path, bare: FakeCsm,
                                                                            one: Path) -> None:
    db = tmp_path / "jobs" / "jobs.sqlite"
    db.parent.mkdir(parents=True)
    v1 = _SCHEMA.replace("    sent          INTEGER NOT NULL DEFAULT 0,\n", "")
    with sqlite3.connect(str(db)) as conn:
        conn.executescript(v1)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    clock = FakeClock()
    tracker = Tracker(db, clock)
    tracker.plan([NewJob(image_sha256="ab" * 32, config="i3d-base", config_fp="fp",
                         config_json=load_matrix(None, ["i3d-base"])[0].to_json(), backend="csm",
                         image_name="a.png", image_path=str(one / "a.png"), image_copy=str(one / "a.png"),
                         prompt=None, stage="mesh")])
    (row,) = tracker.all()
    with tracker.transaction() as c:  # a v1 submission interrupted after its POST may have left
        c.execute("UPDATE jobs SET status='submitting', token='gc-old', owner_pid=NULL WHERE job_id=?",
                  (row.job_id,))
        if "sent" in {r[1] for r in c.execute("PRAGMA table_info(jobs)")}:
            c.execute("ALTER TABLE jobs DROP COLUMN sent")
        c.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    tracker.close()
    with runner_for(tmp_path, bare, clock) as runner:
        assert runner.tracker.get_meta("schema_version") == "2"
        runner.run_until_done(max_passes=5)
        (row,) = runner.tracker.all()
    assert row.status == "unconfirmed" and row.sent == 1 and bare.count("POST", "/v3/") == 0


# -- generate resolve ----------------------------------------------------------------------

def test_resolve_resubmit_sends_again_with_the_same_token(tmp_path: Path, bare: FakeCsm, one: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    original = getattr(Tracker, "mark_sent", None)

    def crash_after_mark(self: Tracker, job_id: str) -> None:
        assert original is not None
        original(self, job_id)
        raise SimulatedCrash  # killed after the mark, before the socket write

    runner = runner_for(tmp_path, bare)
    runner.plan(one, load_matrix(None, ["i3d-base"]))
    monkeypatch.setattr(Tracker, "mark_sent", crash_after_mark, raising=False)
    with pytest.raises(SimulatedCrash):
        runner.step()
    runner.close()
    monkeypatch.setattr(Tracker, "mark_sent", original)
    with runner_for(tmp_path, bare) as again:
        again.step()
        (row,) = again.tracker.all()
        assert row.status == "unconfirmed" and bare.count("POST", "/v3/") == 0
        message = again.resolve(row.job_id, "resubmit")
        assert "pending again" in message and again.tracker.get(row.job_id).status == "pending"
        again.run_until_done(max_passes=5)
        done = again.tracker.get(row.job_id)
    assert done.status == "complete" and done.token == row.token
    posted = [h for p, h in bare.requests if p == "/v3/sessions/" and "idempotency-key" in h]
    assert [h["idempotency-key"] for h in posted] == [row.token]
    assert set(bare.paid_per_job().values()) == {1}


@pytest.fixture()
def cli_env(tmp_path: Path, bare: FakeCsm, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return {"CSM_API_URL": bare.url, "CSM_API_KEY": bare.api_key, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def test_resolve_forget_and_adopt_from_the_command_line(tmp_path: Path, bare: FakeCsm, one: Path,
                                                        cli_env: dict[str, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    make_image(one / "b.png", (200, 10, 10))
    original = Tracker.update
    crashed: list[str] = []

    def crash_on_record(self: Tracker, job_id: str, expect: Any = None, **fields: Any) -> bool:
        if fields.get("status") == "running" and len(crashed) < 2:
            crashed.append(job_id)
            raise SimulatedCrash
        return original(self, job_id, expect, **fields)

    monkeypatch.setattr(Tracker, "update", crash_on_record)
    for _ in range(2):  # two runs, each killed right after its POST landed
        runner = runner_for(tmp_path, bare)
        runner.plan(one, load_matrix(None, ["i3d-base"]))
        with pytest.raises(SimulatedCrash):
            runner.step()
        runner.close()
    monkeypatch.setattr(Tracker, "update", original)
    workdir = tmp_path / "jobs"
    cli = CliRunner()
    res = cli.invoke(app, ["generate", "progress", "--workdir", str(workdir)], env=cli_env)
    assert res.exit_code == 0, res.output
    assert "2 unconfirmed" in res.output
    for job_id in crashed:
        assert f"gencritic generate resolve {job_id} --workdir {workdir} --resubmit" in res.output
        assert f"gencritic generate resolve {job_id} --workdir {workdir} --forget" in res.output
    session_of = {s["metadata"]["gencritic_token"]: sid for sid, s in bare.sessions.items()}
    with runner_for(tmp_path, bare) as r:
        tokens = {j: r.tracker.get(j).token for j in crashed}
    forget, adopt = crashed

    # what cannot be resolved says so in one line, and changes nothing
    for args, needle in ((["--forget"], "name the job"), ([forget], "exactly one of"),
                         ([forget, "--forget", "--resubmit"], "exactly one of"),
                         (["nope:i3d-base", "--forget"], "no job 'nope:i3d-base'"),
                         ([forget, adopt, "--adopt", "X"], "--adopt SESSION_ID resolves one job")):
        res = cli.invoke(app, ["generate", "resolve", *args, "--workdir", str(workdir)], env=cli_env)
        assert isinstance(res.exception, InputError) and needle in str(res.exception), (args, res.output)

    res = cli.invoke(app, ["generate", "resolve", forget, "--forget", "--workdir", str(workdir)], env=cli_env)
    assert res.exit_code == 0 and "forgotten" in res.output
    sid = session_of[tokens[adopt]]
    res = cli.invoke(app, ["generate", "resolve", adopt, "--adopt", sid, "--workdir", str(workdir)], env=cli_env)
    assert res.exit_code == 0 and sid in res.output
    res = cli.invoke(app, ["generate", "resolve", adopt, "--resubmit", "--workdir", str(workdir)], env=cli_env)
    assert isinstance(res.exception, InputError) and "is running, not unconfirmed" in str(res.exception)
    bare.finish_all()
    res = cli.invoke(app, ["generate", "progress", "--workdir", str(workdir)], env=cli_env)
    assert res.exit_code == 0, res.output
    with runner_for(tmp_path, bare) as r:
        rows = {row.job_id: row for row in r.tracker.all()}
    assert rows[forget].status == "failed" and "resolve --forget" in (rows[forget].error or "")
    assert tokens[forget] in (rows[forget].error or "")
    assert rows[adopt].status == "complete" and rows[adopt].session_id == sid
    assert bare.count("POST", "/v3/") == 2 and len(bare.sessions) == 2  # nothing re-sent


def test_progress_wait_ends_and_says_why(tmp_path: Path, bare: FakeCsm, one: Path, cli_env: dict[str, str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = unconfirmed_after_a_landed_post(tmp_path, bare, one, monkeypatch)
    workdir = tmp_path / "jobs"
    env = {**os.environ, **cli_env}
    argv = [sys.executable, "-c", DRIVER, "progress", "--wait", "--poll-interval", "0.05", "--workdir", str(workdir)]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("`generate progress --wait` kept waiting on a job nothing but the user can move")
    assert proc.returncode == 0, proc.stderr
    assert "stopped waiting: 1 job(s) unconfirmed" in proc.stderr
    assert f"gencritic generate resolve {job_id} --workdir {workdir} --resubmit" in proc.stdout
    assert bare.count("POST", "/v3/") == 1
