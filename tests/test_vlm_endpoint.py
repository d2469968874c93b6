"""The OpenAI-compatible endpoint path of the VLM layer, against a fake server on loopback (issue 21).

Checked: what is sent (the question, the image, greedy settings, the key only as a header),
how the answer is read (first-token logprobs, message JSON), bounded retries with the project's
backoff, cache hits, and that the key appears in no log line, error, output or cache file.
"""

from __future__ import annotations

import base64
import io
import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencritic.errors import ModelUnavailableError
from gencritic.items import Item
from gencritic.models.loader import ModelPool
from gencritic.remote.retry import RetryPolicy
from gencritic.scoring import score
from tests.fake_csm import FakeClock
from tests.fake_openai import FakeOpenAI, Reply

KEY = "sk-vlm-secret-0123456789"
QUESTION = 'Does this figure show "{}"? Please answer yes or no.'


def _yes_by_prompt(body: dict) -> Reply:
    """'red' prompts get P(Yes) = e^-0.1, others e^-2.3: what the scores must read back exactly."""
    prompt = FakeOpenAI.prompt_of(body)
    lp = -0.1 if "red" in prompt else -2.3
    return Reply("Yes", [("Yes", lp), ("No", math.log(1 - math.exp(lp)))])


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("GENCRITIC_VLM_API_KEY", KEY)
    fake = FakeOpenAI(api_key=KEY, reply=_yes_by_prompt).start()
    yield fake
    fake.stop()


def _image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (600, 300)) -> Path:
    arr = np.full((size[1], size[0], 3), 255, np.uint8)
    arr[size[1] // 4: 3 * size[1] // 4, size[0] // 4: 3 * size[0] // 4] = color
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def _items(tmp_path: Path) -> list[Item]:
    return [Item("red", "image", _image(tmp_path / "red.png", (220, 20, 20)), prompt="a red square"),
            Item("blue", "image", _image(tmp_path / "blue.png", (20, 20, 220)), prompt="a blue square")]


def test_vqascore_through_an_endpoint_sends_the_question_and_reads_the_yes_logprob(
        server: FakeOpenAI, tmp_path: Path) -> None:
    run = score(_items(tmp_path), metrics=f"vqascore:model={server.url}", cache_dir=tmp_path / "cache",
                pool=ModelPool("cpu"), progress=False, device="cpu")
    assert [r["vqascore"] for r in run.rows] == [math.exp(-0.1), math.exp(-2.3)]
    assert run.rows[0]["model"] == server.url  # the spec as given; the server's model name was discovered
    gets = [r for r in server.requests if r["method"] == "GET"]
    assert [g["path"] for g in gets] == ["/v1/models"]
    posts = server.posts()
    assert len(posts) == 2
    for post, prompt in zip(posts, ["a red square", "a blue square"], strict=True):
        body = post["body"]
        assert post["path"] == "/v1/chat/completions"
        assert post["headers"]["Authorization"] == f"Bearer {KEY}"
        assert body["model"] == "fake-vlm" and body["temperature"] == 0 and body["seed"] == 0
        assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20
        assert FakeOpenAI.prompt_of(body) == QUESTION.format(prompt)
        url = next(c["image_url"]["url"] for c in body["messages"][0]["content"] if c["type"] == "image_url")
        assert url.startswith("data:image/png;base64,")
        sent = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert sent.size == (448, 224)  # the default bound, aspect kept
    # a second run is answered from the cache: no request at all
    again = score(_items(tmp_path), metrics=f"vqascore:model={server.url}", cache_dir=tmp_path / "cache",
                  pool=ModelPool("cpu"), progress=False, device="cpu")
    assert [r["vqascore"] for r in again.rows] == [r["vqascore"] for r in run.rows]
    assert len(server.posts()) == 2


def test_a_yes_the_server_did_not_list_fails_the_view_instead_of_a_number(
        server: FakeOpenAI, tmp_path: Path) -> None:
    server.reply = lambda body: Reply("No", [("No", -0.01), ("no", -5.0)])
    run = score(_items(tmp_path)[:1], metrics=f"vqascore:model={server.url}#fake-vlm", cache_dir=None,
                pool=ModelPool("cpu"), progress=False, device="cpu")
    row = run.rows[0]
    assert not row["success"] and math.isnan(row["vqascore"])
    assert "'Yes' is not among the first tokens" in row["error"]
    server.logprobs = False  # a server that ignores the logprobs request
    run = score(_items(tmp_path)[1:], metrics=f"vqascore:model={server.url}#fake-vlm", cache_dir=None,
                pool=ModelPool("cpu"), progress=False, device="cpu")
    assert "returned no logprobs" in run.rows[0]["error"]


def test_retries_are_bounded_with_the_project_backoff(server: FakeOpenAI) -> None:
    from gencritic.models.vlm import load_vlm
    from gencritic.models.vlm_cache import VLMClient

    clock = FakeClock()
    vlm = load_vlm(f"{server.url}#fake-vlm", clock=clock, policy=RetryPolicy(jitter_s=0.0))
    image = Image.new("RGB", (32, 32), (200, 30, 30))
    server.fail_next = [503, 429]  # two transient failures, then an answer
    ok = VLMClient(vlm).first_token_logprobs([image], ["a"], ["Is it red?"], ["Yes"])[0]
    assert ok.error is None and ok.value == [-0.1]
    assert clock.sleeps == [2.0, 4.0] and len(server.posts()) == 3
    server.fail_next = [500] * 10  # never recovers: 1 try + 3 retries, then the item fails
    failed = VLMClient(vlm).first_token_logprobs([image], ["b"], ["Is it blue?"], ["Yes"])[0]
    assert failed.value is None and "gave up after 4 attempts" in failed.error
    assert len(server.posts()) == 3 + 4 and clock.sleeps == [2.0, 4.0, 2.0, 4.0, 8.0]
    server.fail_next = [400]  # a refusal is not retried
    refused = VLMClient(vlm).first_token_logprobs([image], ["c"], ["?"], ["Yes"])[0]
    assert "HTTP 400" in refused.error and len(server.posts()) == 8


def test_the_key_is_never_logged_written_or_echoed(server: FakeOpenAI, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    server.fail_next = [400]  # its error body echoes the key
    out = tmp_path / "out"
    run = score(_items(tmp_path), out=out, metrics=f"vqascore:model={server.url}", cache_dir=tmp_path / "cache",
                pool=ModelPool("cpu"), progress=False, device="cpu")
    assert "****" in run.rows[0]["error"] and KEY not in run.rows[0]["error"]
    assert run.rows[1]["success"]
    assert KEY not in caplog.text
    captured = capsys.readouterr()
    assert KEY not in captured.out and KEY not in captured.err
    for path in [*out.rglob("*"), *(tmp_path / "cache").rglob("*")]:
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    from gencritic.models.vlm import load_vlm

    vlm = load_vlm(f"{server.url}#fake-vlm")
    assert KEY not in f"{vlm.key} {vlm.key!r} {vlm.settings()} {vlm.model_id}"  # type: ignore[attr-defined]


def test_a_refused_key_is_one_clear_error(server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.models.vlm import load_vlm

    monkeypatch.setenv("GENCRITIC_VLM_API_KEY", "sk-wrong")
    with pytest.raises(ModelUnavailableError, match="set GENCRITIC_VLM_API_KEY") as info:
        load_vlm(server.url)  # the model list is asked first, with the key
    assert "sk-wrong" not in str(info.value)
    monkeypatch.setenv("GENCRITIC_VLM_API_KEY", KEY)
    server.models = ["a", "b"]
    with pytest.raises(Exception, match="serves 2 models"):
        load_vlm(server.url)


def test_the_vlm_can_be_named_once_in_the_environment(server: FakeOpenAI, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """$GENCRITIC_VLM_MODEL names the judge of every VLM metric and command that is not told one;
    the run's --model (a CLIP) never is."""
    monkeypatch.setenv("GENCRITIC_VLM_MODEL", f"{server.url}#fake-vlm")
    run = score(_items(tmp_path)[:1], metrics="vqascore", model="openai/clip-vit-base-patch32", cache_dir=None,
                pool=ModelPool("cpu"), progress=False, device="cpu")
    assert run.rows[0]["vqascore"] == math.exp(-0.1) and run.rows[0]["model"] == f"{server.url}#fake-vlm"
