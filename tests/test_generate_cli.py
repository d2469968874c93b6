"""The `gencritic generate` commands against the fake CSM server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.errors import InputError
from tests.conftest import make_image
from tests.fake_csm import FakeCsm


@pytest.fixture()
def env(tmp_path: Path, fake: FakeCsm, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return {"CSM_API_URL": fake.url, "CSM_API_KEY": fake.api_key, "XDG_CONFIG_HOME": str(tmp_path / "config")}


def statuses(workdir: Path) -> dict[str, str]:
    with sqlite3.connect(str(workdir / "jobs.sqlite")) as conn:
        return dict(conn.execute("SELECT job_id, status FROM jobs").fetchall())


def test_run_progress_clean_from_the_command_line(tmp_path: Path, fake: FakeCsm, env: dict[str, str]) -> None:
    images = tmp_path / "images"
    make_image(images / "a.png", (200, 20, 20))
    make_image(images / "b.png", (20, 20, 200))
    workdir = tmp_path / "w"
    cli = CliRunner()
    res = cli.invoke(app, ["generate", "run", str(images), "--workdir", str(workdir), "-c", "i3d-turbo",
                           "-c", "kit-pro-turbo-baked"], env=env)
    assert res.exit_code == 0, res.output
    assert "4 new job(s)" in res.output and "generate progress --workdir" in res.output
    assert set(statuses(workdir).values()) == {"running"}
    assert fake.posts == 4

    # progress finds the API the jobs were submitted to without being told again
    res = cli.invoke(app, ["generate", "progress", "--workdir", str(workdir)],
                     env={**env, "CSM_API_URL": ""})
    assert res.exit_code == 0, res.output
    assert "complete" in res.output and "+3 parts" in res.output and "4 complete" in res.output
    assert set(statuses(workdir).values()) == {"complete"}

    res = cli.invoke(app, ["generate", "run", str(images), "--workdir", str(workdir), "-c", "i3d-turbo",
                           "-c", "kit-pro-turbo-baked"], env=env)
    assert res.exit_code == 0 and "0 new job(s), 4 already tracked" in res.output and fake.posts == 4

    res = cli.invoke(app, ["generate", "clean", "--workdir", str(workdir), "--config", "i3d-turbo"], env=env,
                     input="n\n")
    assert res.exit_code == 1 and len(statuses(workdir)) == 4
    res = cli.invoke(app, ["generate", "clean", "--workdir", str(workdir), "--config", "i3d-turbo", "--yes"], env=env)
    assert res.exit_code == 0 and "removed 2 job(s)" in res.output
    assert len(statuses(workdir)) == 2
    assert not list((workdir / "results").rglob("i3d-turbo/*"))
    assert list((workdir / "results").rglob("kit-pro-turbo-baked/mesh.glb"))


def test_errors_are_one_line_that_says_what_to_do(tmp_path: Path, fake: FakeCsm, env: dict[str, str]) -> None:
    cli = CliRunner()
    res = cli.invoke(app, ["generate", "progress", "--workdir", str(tmp_path / "none")], env=env)
    assert isinstance(res.exception, InputError) and "generate run IMAGES_DIR" in str(res.exception)
    res = cli.invoke(app, ["generate", "run", str(tmp_path / "missing")], env=env)
    assert isinstance(res.exception, InputError) and "not a folder" in str(res.exception)
    images = tmp_path / "images"
    make_image(images / "a.png")
    no_key = {k: v for k, v in env.items() if k != "CSM_API_KEY"}
    res = cli.invoke(app, ["generate", "run", str(images), "--workdir", str(tmp_path / "w")],
                     env={**no_key, "CSM_API_KEY": ""})
    assert isinstance(res.exception, InputError) and "CSM_API_KEY" in str(res.exception)
    assert fake.posts == 0 and statuses(tmp_path / "w") == {}  # stopped before planning anything
    res = cli.invoke(app, ["generate", "clean", "--workdir", str(tmp_path / "w")], env=env)
    assert isinstance(res.exception, InputError) and "--all" in str(res.exception)


def test_help_teaches_with_examples() -> None:
    cli = CliRunner()
    for cmd in ("run", "progress", "clean", "eval"):
        res = cli.invoke(app, ["generate", cmd, "--help"])
        assert res.exit_code == 0 and "Examples" in res.output, cmd
