"""Retry policy, backoff schedule, Retry-After parsing, the matrix and the key store (no network)."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gencritic.errors import InputError
from gencritic.generate.matrix import load_matrix
from gencritic.remote.keys import ApiKey, redact, resolve_api_key
from gencritic.remote.retry import (
    ApiError,
    RetriesExhausted,
    RetryableError,
    RetryPolicy,
    call_with_retry,
    is_retryable_status,
    parse_retry_after,
)
from tests.fake_csm import FakeClock, ZeroRandom


def test_schedule_is_2_4_8_then_capped_at_30() -> None:
    policy = RetryPolicy()
    assert [policy.delay(i, 0.0) for i in range(6)] == [2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # jitter adds less than jitter_s and never breaks the cap
    assert 2.0 <= policy.delay(0, 0.999) < 3.0
    assert policy.delay(10, 0.999) == 30.0


@pytest.mark.parametrize(("status", "retry"), [(429, True), (500, True), (502, True), (503, True), (504, True),
                                               (400, False), (401, False), (403, False), (404, False), (422, False)])
def test_only_429_and_5xx_are_retryable(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


def test_retry_after_seconds_and_http_date() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("soon", now) is None
    when = datetime.fromtimestamp(now + 12, tz=timezone.utc)
    assert parse_retry_after(format_datetime(when, usegmt=True), now) == pytest.approx(12.0, abs=1.0)


def test_three_retries_then_give_up_with_the_recorded_schedule() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        raise RetryableError("HTTP 503: busy", status=503)

    with pytest.raises(RetriesExhausted) as info:
        call_with_retry(attempt, what="poll", clock=clock, rng=ZeroRandom())
    assert len(calls) == 4  # first try + 3 retries
    assert clock.sleeps == [2.0, 4.0, 8.0]
    assert "HTTP 503: busy" in str(info.value)


def test_non_retryable_fails_at_once_without_sleeping() -> None:
    clock = FakeClock()
    calls: list[int] = []

    def attempt() -> str:
        calls.append(1)
        raise ApiError("HTTP 400: settings.resolution must be an integer", 400)

    with pytest.raises(ApiError, match="resolution"):
        call_with_retry(attempt, what="submit", clock=clock)
    assert calls == [1]
    assert clock.sleeps == []


def test_retry_after_wins_over_the_schedule_and_success_stops_retrying() -> None:
    clock = FakeClock()
    answers: list[Exception | str] = [RetryableError("429", retry_after=7.0, status=429),
                                      RetryableError("429", status=429), "ok"]

    def attempt() -> str:
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    assert call_with_retry(attempt, what="submit", clock=clock, rng=ZeroRandom()) == "ok"
    assert clock.sleeps == [7.0, 4.0]  # server's 7 s, then our second step (retry index 1)


def test_huge_retry_after_is_not_waited_for() -> None:
    clock = FakeClock()

    def attempt() -> str:
        raise RetryableError("429", retry_after=3600.0, status=429)

    with pytest.raises(RetriesExhausted, match="run the command again later"):
        call_with_retry(attempt, what="submit", clock=clock)
    assert clock.sleeps == []


# -- matrix -------------------------------------------------------------------------------------
def test_default_matrix_is_csms_six() -> None:
    configs = load_matrix()
    assert [c.type for c in configs] == ["image_to_3d"] * 4 + ["image_to_kit", "chat_to_3d"]
    assert all(c.settings["resolution"] == 200000 for c in configs)
    assert [(c.settings.get("geometry_model"), c.settings.get("texture_model")) for c in configs[:4]] == [
        ("base", "none"), ("turbo", "none"), ("turbo", "baked"), ("turbo", "pbr")]
    kit = configs[4]
    assert (kit.decomposition_model, kit.settings["geometry_model"], kit.settings["texture_model"]) == (
        "pro", "turbo", "baked")
    assert configs[5].stages == ("chat", "mesh") and configs[5].prompt


def test_matrix_errors_are_one_actionable_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text("configurations:\n  - name: x\n    settings: {geometry_model: turbbo}\n")
    with pytest.raises(InputError) as info:
        load_matrix(bad)
    assert "turbbo" in str(info.value) and "base, turbo" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="unknown configuration"):
        load_matrix(None, ["nope"])


def test_toml_matrix_and_command_backend(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[[configurations]]\nname = "local"\nbackend = "command"\n'
                    'command = ["python", "gen.py", "{image}", "{output}"]\n')
    (config,) = load_matrix(path)
    assert config.backend == "command" and config.command[-1] == "{output}"
    path.write_text('[[configurations]]\nname = "local"\nbackend = "command"\ncommand = "python gen.py"\n')
    with pytest.raises(InputError, match="list"):
        load_matrix(path)


# -- key store ----------------------------------------------------------------------------------
def test_key_from_env_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    key = resolve_api_key(prompt=None, environ={"CSM_API_KEY": "sk-env-secret"})
    assert key.reveal() == "sk-env-secret"
    assert "sk-env-secret" not in repr(key) and "sk-env-secret" not in f"{key}" and "sk-env" not in str(key)
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(key)


def test_key_prompted_once_and_stored_0600(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    asked: list[int] = []

    def prompt() -> str:
        asked.append(1)
        return "  sk-typed-secret \n"

    assert resolve_api_key(prompt=prompt, environ={}).reveal() == "sk-typed-secret"
    stored = tmp_path / "gencritic" / "csm_api_key"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert resolve_api_key(prompt=prompt, environ={}).reveal() == "sk-typed-secret"
    assert asked == [1]
    os.chmod(stored, 0o644)
    with pytest.raises(InputError, match="chmod 600"):
        resolve_api_key(prompt=prompt, environ={})


def test_no_key_and_no_terminal_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    with pytest.raises(InputError, match="CSM_API_KEY"):
        resolve_api_key(prompt=None, environ={})


def test_redact() -> None:
    assert redact("Invalid API key: sk-abc (sk-abc)", "sk-abc") == "Invalid API key: **** (****)"
    assert ApiKey("sk-abc").redact("x sk-abc") == "x ****"


@settings(max_examples=200, deadline=None)
@given(i=st.integers(min_value=0, max_value=40), rand=st.floats(min_value=0.0, max_value=0.999999))
def test_backoff_is_bounded_monotone_and_capped(i: int, rand: float) -> None:
    policy = RetryPolicy()
    d = policy.delay(i, rand)
    floor = min(policy.cap_s, policy.base_s * 2.0 ** i)
    assert floor <= d <= min(policy.cap_s, floor + policy.jitter_s)
    assert d <= policy.cap_s
    assert policy.delay(i + 1, rand) >= d


@given(seconds=st.integers(min_value=0, max_value=10**6))
def test_numeric_retry_after_is_taken_literally(seconds: int) -> None:
    assert parse_retry_after(str(seconds), 1_800_000_000.0) == float(seconds)
