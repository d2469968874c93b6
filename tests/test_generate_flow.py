"""Generation jobs end to end against the fake CSM server: full runs, faults, crashes, resume."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gencritic.errors import GencriticError
from gencritic.generate.matrix import load_matrix
from gencritic.generate.runner import Runner, StepReport
from gencritic.generate.tracker import Tracker
from tests.conftest import make_image
from tests.fake_csm import FakeClock, FakeCsm, Fault, make_glb, make_runner

COLORS = [(220, 30, 30), (30, 200, 40), (30, 40, 220)]


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    for i, color in enumerate(COLORS):
        make_image(folder / f"obj{i}.png", color)
    return folder


def runner_for(tmp_path: Path, fake: FakeCsm, clock: FakeClock | None = None, timeout_s: float = 3.0) -> Runner:
    return make_runner(tmp_path / "jobs", fake.url, fake.api_key, clock or FakeClock(), timeout_s=timeout_s)


def sessions_per_job(fake: FakeCsm) -> dict[tuple[str, str], int]:
    """How many sessions the server created per (configuration, token-less job key)."""
    out: dict[tuple[str, str], int] = {}
    for s in fake.sessions.values():
        meta = s["metadata"]
        key = (meta["configuration"], s["type"])
        out[key] = out.get(key, 0) + 1
    return out


def db_snapshot(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT job_id, status, session_id, files, attempts, error FROM jobs ORDER BY job_id").fetchall()
    finally:
        conn.close()


def test_full_run_3_images_x_6_configs(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    with runner_for(tmp_path, fake, clock) as runner:
        n_images, created, existing = runner.plan(images, load_matrix())
        assert (n_images, created, existing) == (3, 18, 0)
        runner.run_until_done(max_passes=10)
        rows = runner.tracker.all()
    assert len(rows) == 18 and {r.status for r in rows} == {"complete"}
    # 18 submissions + 3 follow-up image-to-3D sessions of the chat chains, each sent exactly once
    assert fake.posts == 21 and len(fake.sessions) == 21
    for row in rows:
        mesh = [f for f in row.files if f["kind"] == "mesh"]
        assert len(mesh) == 1 and mesh[0]["format"] == "glb"
        data = Path(mesh[0]["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == mesh[0]["sha256"]
        served = fake.files[f"/files/{row.session_id}/mesh_0.glb"]
        assert data == served  # verified byte for byte against what the server sent
        assert row.submitted_at and row.completed_at and row.attempts >= 1
    kits = [r for r in rows if r.config == "kit-pro-turbo-baked"]
    assert all(sum(f["kind"] == "part" for f in r.files) == 3 for r in kits)
    chats = [r for r in rows if r.config == "chat-i3d-turbo-pbr"]
    for r in chats:
        assert r.chain and r.chain[0]["stage"] == "chat" and r.chain[0]["image_asset"].startswith("ASSET_")
        follow = fake.sessions[r.session_id]
        assert follow["type"] == "image_to_3d" and follow["input"]["image"] == r.chain[0]["image_asset"]
        assert fake.sessions[r.chain[0]["session_id"]]["type"] == "chat_to_3d"
    # requests carried the documented shapes
    i3d = next(s for s in fake.sessions.values() if s["metadata"]["configuration"] == "i3d-turbo-pbr")
    assert i3d["input"]["settings"] == {"geometry_model": "turbo", "texture_model": "pbr", "resolution": 200000}
    assert i3d["input"]["image"].startswith("data:image/png;base64,")
    kit = next(s for s in fake.sessions.values() if s["type"] == "image_to_kit")
    assert kit["input"]["decomposition_model"] == "pro"
    # polling waited the poll interval between passes, through the injected clock only
    assert clock.sleeps and set(clock.sleeps) == {30.0}


def test_progress_is_idempotent_and_never_redownloads(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    with runner_for(tmp_path, fake) as runner:
        runner.plan(images, load_matrix(None, ["i3d-turbo", "kit-pro-turbo-baked"]))
        runner.run_until_done(max_passes=5)
    db = tmp_path / "jobs" / "jobs.sqlite"
    before = db_snapshot(db)
    log_len = len(fake.log)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "jobs" / "results").rglob("*.glb")}
    for _ in range(2):
        with runner_for(tmp_path, fake) as again:
            assert again.plan(images, load_matrix(None, ["i3d-turbo", "kit-pro-turbo-baked"]))[1] == 0
            report = again.step()
        assert (report.submitted, report.polled, report.downloaded) == (0, 0, 0)
    assert fake.log[log_len:] == []  # not one request: nothing to poll, nothing to fetch
    assert db_snapshot(db) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    import csv

    with open(tmp_path / "jobs" / "results" / "manifest.csv", newline="") as fh:
        listed = list(csv.DictReader(fh))
    assert len(listed) == 3 * 1 + 3 * 4  # i3d: one mesh; kit: mesh + 3 parts
    assert all(hashlib.sha256(Path(r["path"]).read_bytes()).hexdigest() == r["sha256"] for r in listed)


def test_changed_or_lost_file_is_fetched_again_and_verified(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    with runner_for(tmp_path, fake) as runner:
        runner.plan(images, load_matrix(None, ["i3d-base"]))
        runner.run_until_done(max_passes=5)
        row = runner.tracker.all()[0]
        path = Path(row.files[0]["path"])
        path.write_bytes(b"tampered")
        other = Path(runner.tracker.all()[1].files[0]["path"])
        other.unlink()
        report = runner.step()
        assert report.refetched == 2 and report.downloaded == 2
        for r in runner.tracker.all():
            assert r.status == "complete"
            f = r.files[0]
            assert hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest() == f["sha256"]


def test_truncated_download_is_retried_and_never_kept(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    fake.script("GET file", Fault(truncate=True), Fault(status=503))
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(images, load_matrix(None, ["i3d-turbo"]))
        runner.run_until_done(max_passes=5)
        rows = runner.tracker.all()
    assert {r.status for r in rows} == {"complete"}
    assert 2.0 in clock.sleeps and 4.0 in clock.sleeps  # two retried downloads, on the schedule
    for r in rows:
        assert Path(r.files[0]["path"]).read_bytes() == fake.files[f"/files/{r.session_id}/mesh_0.glb"]
    assert not list((tmp_path / "jobs").rglob("*.part"))


def test_429_burst_without_retry_after_backs_off_2_4_8(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    fake.script("POST sessions", Fault(429), Fault(429), Fault(429))
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(images, load_matrix(None, ["i3d-base"]))
        report = StepReport()
        runner.submit_pending(report)
        assert report.submitted == 3
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert fake.posts == 3 and fake.count("POST", "/v3/sessions/") == 6
    assert fake.count("GET", "/v3/sessions/") == 0  # 429 = not processed: no lookup needed


def test_429_with_retry_after_is_honoured(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    fake.script("POST sessions", Fault(429, headers={"Retry-After": "7"}), Fault(429, headers={"Retry-After": "1"}))
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(images, load_matrix(None, ["i3d-base"]))
        runner.step()
    assert clock.sleeps[:2] == [7.0, 1.0]


def test_500s_on_poll_are_retried_and_the_job_completes(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(images, load_matrix(None, ["i3d-base"]))
        runner.step()
        fake.script("GET session", Fault(500), Fault(502))
        runner.run_until_done(max_passes=5)
        assert {r.status for r in runner.tracker.all()} == {"complete"}
    assert clock.sleeps[:2] == [2.0, 4.0]


def test_validation_error_fails_at_once_with_the_api_message(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    matrix = tmp_path / "m.yaml"
    matrix.write_text("configurations:\n  - name: tiny\n    settings: {resolution: 10}\n")
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(images, load_matrix(matrix))
        report = runner.step()
        rows = runner.tracker.all()
    assert {r.status for r in rows} == {"failed"}
    assert all("HTTP 422" in (r.error or "") and "resolution must be an integer" in (r.error or "") for r in rows)
    assert len(report.failed) == 3 and clock.sleeps == []
    assert fake.count("POST", "/v3/sessions/") == 3  # one try each, no retry


def test_404_on_poll_fails_the_job_at_once(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    make_image(tmp_path / "one" / "a.png", (10, 10, 200))
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(tmp_path / "one", load_matrix(None, ["i3d-base"]))
        runner.step()
        fake.script("GET session", Fault(404, body={"message": "session not found"}))
        report = runner.step()
        (row,) = runner.tracker.all()
    assert row.status == "failed" and row.error == "HTTP 404: session not found"
    assert report.failed and clock.sleeps == []


def test_remote_failure_is_recorded_with_its_reason(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    fake.fail_sessions = {"i3d-turbo-baked"}
    with runner_for(tmp_path, fake) as runner:
        runner.plan(images, load_matrix(None, ["i3d-turbo-baked", "i3d-turbo"]))
        runner.run_until_done(max_passes=5)
        rows = runner.tracker.all()
    failed = [r for r in rows if r.status == "failed"]
    assert {r.config for r in failed} == {"i3d-turbo-baked"} and len(failed) == 3
    assert all("could not be segmented" in (r.error or "") for r in failed)
    assert all(not r.files for r in failed)
    assert {r.status for r in rows if r.config == "i3d-turbo"} == {"complete"}


def test_hung_post_that_created_the_session_is_adopted_not_resent(tmp_path: Path, fake: FakeCsm,
                                                                  images: Path) -> None:
    clock = FakeClock()
    fake.script("POST sessions", Fault(hang_s=5.0, after_create=True))
    with runner_for(tmp_path, fake, clock, timeout_s=0.3) as runner:
        runner.plan(images, load_matrix(None, ["i3d-turbo"]))
        runner.run_until_done(max_passes=5)
        rows = runner.tracker.all()
    assert {r.status for r in rows} == {"complete"}
    assert len(fake.sessions) == 3  # the timed-out POST had created one: it was found by token, not re-sent
    assert clock.sleeps[0] == 2.0
    assert fake.count("GET", "/v3/sessions/") >= 1


def test_exhausted_retries_leave_submitting_then_reconcile(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    clock = FakeClock()
    make_image(tmp_path / "one" / "a.png", (10, 10, 200))
    fake.script("POST sessions", *[Fault(500)] * 4)
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(tmp_path / "one", load_matrix(None, ["i3d-base"]))
        report = runner.step()
        (row,) = runner.tracker.all()
        assert row.status == "submitting" and row.token and "gave up after 4 attempts" in (row.last_error or "")
        assert report.warnings and clock.sleeps == [2.0, 4.0, 8.0]
        token = row.token
        runner.run_until_done(max_passes=5)
        (row,) = runner.tracker.all()
    assert row.status == "complete" and len(fake.sessions) == 1
    assert next(iter(fake.sessions.values()))["metadata"]["gencritic_token"] == token  # same token re-sent


def test_refusal_after_a_lost_answer_keeps_the_job_for_reconciling(tmp_path: Path, fake: FakeCsm) -> None:
    clock = FakeClock()
    make_image(tmp_path / "one" / "a.png", (10, 10, 200))
    # the POST creates the session but its answer is lost (502), then the lookup endpoint is down (404)
    fake.script("POST sessions", Fault(502, after_create=True))
    fake.script("GET list", Fault(404, body={"message": "listing disabled"}))
    with runner_for(tmp_path, fake, clock) as runner:
        runner.plan(tmp_path / "one", load_matrix(None, ["i3d-base"]))
        runner.step()
        (row,) = runner.tracker.all()
        # visible as needing the user (issue 17: was a silent `submitting`), still checked on the next run
        assert row.status == "unconfirmed" and "cannot be checked" in (row.last_error or "")
        runner.run_until_done(max_passes=5)  # the lookup works again: the session is adopted
        (row,) = runner.tracker.all()
    assert row.status == "complete" and len(fake.sessions) == 1 and fake.count("POST", "/v3/") == 1


class SimulatedCrash(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the code under test catches it."""


def test_crash_between_submit_and_record_does_not_submit_twice(tmp_path: Path, fake: FakeCsm, images: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    original = Tracker.update
    crashed: list[str] = []

    def crash_on_record(self: Tracker, job_id: str, expect: Any = None, **fields: Any) -> bool:
        if fields.get("status") == "running" and not crashed:
            crashed.append(job_id)
            raise SimulatedCrash
        return original(self, job_id, expect, **fields)

    monkeypatch.setattr(Tracker, "update", crash_on_record)
    runner = runner_for(tmp_path, fake)
    runner.plan(images, load_matrix(None, ["i3d-turbo", "i3d-base"]))
    with pytest.raises(SimulatedCrash):
        runner.step()
    runner.close()
    assert fake.posts == 1  # the POST landed, its answer was never recorded
    with sqlite3.connect(str(tmp_path / "jobs" / "jobs.sqlite")) as conn:
        assert conn.execute("SELECT status, session_id FROM jobs WHERE job_id=?", (crashed[0],)).fetchone() == (
            "submitting", None)
    monkeypatch.setattr(Tracker, "update", original)
    with runner_for(tmp_path, fake) as resumed:
        report = resumed.step()
        assert report.reconciled == 1
        resumed.run_until_done(max_passes=5)
        rows = resumed.tracker.all()
    assert {r.status for r in rows} == {"complete"}
    assert fake.posts == 6 and len(fake.sessions) == 6  # 3 images × 2 configs, nothing twice
    assert all(n == 3 for n in sessions_per_job(fake).values())


def test_crash_after_claim_before_send_submits_exactly_once(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    with runner_for(tmp_path, fake) as runner:
        runner.plan(images, load_matrix(None, ["i3d-base"]))
        (first, *_) = runner.tracker.all()
        assert runner.tracker.claim_for_submit(first.job_id) is not None  # recorded, then "killed"
    with runner_for(tmp_path, fake) as resumed:
        resumed.run_until_done(max_passes=5)
        assert {r.status for r in resumed.tracker.all()} == {"complete"}
    assert fake.posts == 3 and len(fake.sessions) == 3


def test_two_processes_claim_a_job_once(tmp_path: Path) -> None:
    db = tmp_path / "jobs.sqlite"
    clock = FakeClock()
    from gencritic.generate.tracker import NewJob

    seed = Tracker(db, clock)
    seed.plan([NewJob(image_sha256="ab" * 32, config=f"c{i}", config_fp="fp", config_json="{}", backend="csm",
                      image_name="a.png", image_path="/a.png", image_copy="/a.png", prompt=None, stage="mesh")
               for i in range(20)])
    ids = [r.job_id for r in seed.all()]
    seed.close()
    wins: list[list[str]] = [[], []]

    def worker(k: int) -> None:
        t = Tracker(db, clock)
        for jid in ids:
            if t.claim_for_submit(jid) is not None:
                wins[k].append(jid)
        t.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins[0] + wins[1]) == sorted(ids)  # every job claimed by exactly one of them
    assert not set(wins[0]) & set(wins[1])


def test_renamed_image_keeps_its_jobs_edited_image_gets_new_ones(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    with runner_for(tmp_path, fake) as runner:
        runner.plan(images, load_matrix(None, ["i3d-base"]))
        (images / "obj0.png").rename(images / "renamed.png")
        make_image(images / "obj1.png", (250, 250, 0))  # same name, new content
        n, created, existing = runner.plan(images, load_matrix(None, ["i3d-base"]))
        assert (n, created, existing) == (3, 1, 2)
        names = {r.image_name for r in runner.tracker.all()}
        assert "renamed.png" in names and len(runner.tracker.all()) == 4


def test_changed_configuration_settings_are_refused(tmp_path: Path, fake: FakeCsm, images: Path) -> None:
    from gencritic.errors import InputError

    matrix = tmp_path / "m.yaml"
    matrix.write_text("configurations:\n  - name: mine\n    settings: {geometry_model: base}\n")
    with runner_for(tmp_path, fake) as runner:
        runner.plan(images, load_matrix(matrix))
        matrix.write_text("configurations:\n  - name: mine\n    settings: {geometry_model: turbo}\n")
        with pytest.raises(InputError, match="generate clean --config mine"):
            runner.plan(images, load_matrix(matrix))


def test_key_never_leaks_into_errors_logs_db_or_results(tmp_path: Path, fake: FakeCsm, images: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    wrong = "sk-wrong-key-5f3a9c0e11"
    bad = make_runner(tmp_path / "jobs", fake.url, wrong, FakeClock())
    bad.plan(images, load_matrix(None, ["i3d-base"]))
    with pytest.raises(GencriticError) as info:
        bad.step()
    bad.close()
    text = str(info.value)
    assert fake.count("POST", "/v3/sessions/") == 1  # 401 is not retried
    assert "HTTP 401" in text and "Invalid API key: ****" in text and wrong not in text
    assert wrong not in repr(info.value) and all(wrong not in str(a) for a in info.value.args)
    # the job was not burnt by the bad key: it is pending again
    with runner_for(tmp_path, fake) as good:
        assert {r.status for r in good.tracker.all()} == {"pending"}
        fake.script("GET session", Fault(500, body={"message": f"upstream said {fake.api_key}"}))
        good.run_until_done(max_passes=5)
        assert {r.status for r in good.tracker.all()} == {"complete"}
    for secret in (wrong, fake.api_key):
        assert secret not in caplog.text
        for path in (tmp_path / "jobs").rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), path
    # the key went to the API routes only, never with a file download (often a signed URL elsewhere)
    api = [h for p, h in fake.requests if p.startswith("/v3/")]
    files = [h for p, h in fake.requests if p.startswith("/files/")]
    assert api and files
    assert all(h.get("x-api-key") in (wrong, fake.api_key) for h in api)
    assert all("x-api-key" not in h for h in files)


def test_command_backend_runs_a_local_generator(tmp_path: Path, images: Path) -> None:
    import sys

    script = tmp_path / "gen.py"
    glb = tmp_path / "template.glb"
    glb.write_bytes(make_glb("sphere"))
    script.write_text("import shutil, sys\n"
                      "if sys.argv[3] == 'obj2':\n    sys.exit('CUDA out of memory on obj2')\n"
                      f"shutil.copyfile({str(glb)!r}, sys.argv[2])\n")
    matrix = tmp_path / "m.yaml"
    matrix.write_text(f"configurations:\n  - name: local\n    backend: command\n"
                      f"    command: [{sys.executable!r}, {str(script)!r}, '{{image}}', '{{output}}', '{{name}}']\n")
    with make_runner(tmp_path / "jobs", "http://127.0.0.1:9", "unused", FakeClock()) as runner:
        runner.plan(images, load_matrix(matrix))
        runner.run_until_done(max_passes=3)
        rows = {r.image_name: r for r in runner.tracker.all()}
    assert rows["obj0.png"].status == "complete"
    assert Path(rows["obj0.png"].files[0]["path"]).read_bytes() == glb.read_bytes()
    assert rows["obj2.png"].status == "failed" and "CUDA out of memory on obj2" in (rows["obj2.png"].error or "")
    # a local result deleted by hand is reported, not silently regenerated or ignored
    Path(rows["obj1.png"].files[0]["path"]).unlink()
    with make_runner(tmp_path / "jobs", "http://127.0.0.1:9", "unused", FakeClock()) as runner:
        report = runner.step()
        row = next(r for r in runner.tracker.all() if r.image_name == "obj1.png")
    assert report.refetched == 1 and row.status == "failed" and "is gone" in (row.error or "")

    # eval items are keyed by the mesh content, so a regenerated job is never served an old score
    from gencritic.generate.evaluate import job_items

    (item,) = [i for i in job_items([rows["obj0.png"]])]
    assert item.item_id == f"{rows['obj0.png'].job_id}@{rows['obj0.png'].files[0]['sha256'][:12]}"
    assert item.reference == Path(rows["obj0.png"].image_copy) and item.kind == "mesh"


TWO_PROCESS_SCRIPT = """
import sys
from pathlib import Path
from gencritic.remote.clock import SystemClock
from gencritic.remote.keys import ApiKey
from gencritic.generate.matrix import load_matrix
from gencritic.generate.runner import GenerateSettings, Runner, backend_factory
url, key, workdir, images = sys.argv[1:5]
settings = GenerateSettings(workdir=Path(workdir), api_url=url, request_timeout_s=10, poll_interval_s=0.05)
clock = SystemClock()
with Runner(settings, clock, backend_factory(settings, clock, lambda: ApiKey(key))) as runner:
    runner.plan(Path(images), load_matrix(None, ["i3d-base", "i3d-turbo", "i3d-turbo-pbr"]))
    print(runner.run_until_done(max_passes=40).submitted)
"""


def test_two_real_processes_on_one_workdir_submit_each_job_once(tmp_path: Path, fake: FakeCsm,
                                                                 images: Path) -> None:
    import subprocess
    import sys

    fake.post_delay_s = 0.05  # keep both processes inside the submit phase together
    argv = [sys.executable, "-c", TWO_PROCESS_SCRIPT, fake.url, fake.api_key, str(tmp_path / "jobs"), str(images)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    submitted = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        submitted.append(int(out.strip()))
    assert sum(submitted) == 9  # each job sent by exactly one of the two processes
    assert fake.posts == 9 and len(fake.sessions) == 9  # 3 images × 3 configs, none twice
    with runner_for(tmp_path, fake) as runner:
        rows = runner.tracker.all()
    assert len(rows) == 9 and {r.status for r in rows} == {"complete"}
    assert all(r.attempts == 1 for r in rows)


class _CtrlCMidDownload(httpx.BaseTransport):
    """Delivers half of the first mesh body, then raises KeyboardInterrupt (a user's Ctrl-C)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.fired = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if self.fired or not request.url.path.endswith(".glb"):
            return response
        self.fired = True
        body = response.read()

        class Stream(httpx.SyncByteStream):
            def __iter__(self) -> Iterator[bytes]:
                yield body[: len(body) // 2]
                raise KeyboardInterrupt

        return httpx.Response(response.status_code, headers=response.headers, stream=Stream())


def test_ctrl_c_mid_download_keeps_no_partial_file_and_resumes(tmp_path: Path, fake: FakeCsm,
                                                               images: Path) -> None:
    from gencritic.generate.download import Downloader

    clock = FakeClock()
    runner = runner_for(tmp_path, fake, clock)
    runner._downloader = Downloader(clock, transport=_CtrlCMidDownload())
    runner.plan(images, load_matrix(None, ["i3d-turbo"]))
    runner.step()
    with pytest.raises(KeyboardInterrupt):
        runner.step()
    runner.close()
    assert not list((tmp_path / "jobs").rglob("*.part")) and not list((tmp_path / "jobs").rglob("mesh.glb"))
    with runner_for(tmp_path, fake) as resumed:
        resumed.run_until_done(max_passes=3)
        rows = resumed.tracker.all()
    assert {r.status for r in rows} == {"complete"} and fake.posts == 3
    for r in rows:
        assert Path(r.files[0]["path"]).read_bytes() == fake.files[f"/files/{r.session_id}/mesh_0.glb"]
