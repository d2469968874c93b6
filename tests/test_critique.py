"""Structured VLM critique beside the rules: `gencritic critique` and the `vlm` block of diagnose (issue 21).

A fake OpenAI-compatible server plays the VLM whose answer is known (a critique that contradicts a
rule, invalid JSON, an unknown parameter); a tiny random Qwen2-VL checks the local path end to end,
including that its invalid answers become a failed critique (never a made-up one) and that the
output is byte-identical twice.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencritic.diagnose.api import diagnose
from tests.fake_openai import FakeOpenAI, Reply
from tests.vlm_fixtures import build_tiny_qwen2_vl

# A VLM that says the fire is too bright: the rules say brightness is too low (emission_strength +30%)
CONTRADICTING = {
    "summary": "A small, washed-out fireball with too little smoke.",
    "issues": [{"description": "the flame core is blown out", "severity": "moderate", "region": "emissive"},
               {"description": "almost no smoke shell", "severity": "minor", "region": "foreground"}],
    "suggested_changes": [{"parameter": "emission_strength", "direction": "decrease", "reason": "too bright"},
                          {"parameter": "flame_vorticity", "direction": "increase", "reason": "flat flame"}],
}


def run_cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    """The console script in-process; its exit status."""
    from gencritic.cli.main import main

    monkeypatch.setattr(sys, "argv", ["gencritic", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code if isinstance(exc.value.code, int) else 1


def dim_fireball(path: Path) -> Path:
    """Dim orange blob in a grey ring on black: the explosion rules call brightness too_low."""
    yy, xx = np.mgrid[:128, :128]
    d = np.hypot(yy - 64, xx - 64)
    arr = np.zeros((128, 128, 3), np.uint8)
    arr[d < 30] = (90, 40, 10)
    arr[(d >= 30) & (d < 40)] = (60, 60, 60)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture()
def server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("GENCRITIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("GENCRITIC_VLM_API_KEY", raising=False)
    fake = FakeOpenAI(api_key=None, reply=lambda body: Reply(json.dumps(CONTRADICTING))).start()
    yield fake
    fake.stop()


def test_disagreements_list_where_the_vlm_contradicts_a_rule(server: FakeOpenAI, tmp_path: Path) -> None:
    image = dim_fireball(tmp_path / "dim.png")
    plain = diagnose(image, profile="explosion")
    result = diagnose(image, profile="explosion", vlm=f"{server.url}#judge")
    assert plain["suggested_parameters"]["emission_strength"]["change"] == "+30%"
    # the rules stay primary: everything but the vlm block is what diagnose says without it
    assert {k: v for k, v in result.items() if k != "vlm"} == plain
    block = result["vlm"]
    assert block["status"] == "ok" and block["error"] is None and len(block["attempts"]) == 1
    assert block["critique"] == CONTRADICTING
    assert block["model"] == f"{server.url}#judge"
    # emission_strength: VLM decrease vs rules +30%; flame_vorticity agrees (+30% for contrast too_low)
    assert block["disagreements"] == [{
        "parameter": "emission_strength", "vlm": "decrease", "vlm_reason": "too bright", "rules": "increase",
        "rules_change": "+30%", "rules_because": plain["suggested_parameters"]["emission_strength"]["because"]}]
    prompt = FakeOpenAI.prompt_of(server.posts()[0]["body"])
    for param in ("emission_strength", "flame_max_temp", "camera_distance", "dissolve_speed"):
        assert f"- {param}:" in prompt  # the profile's own parameters, named for the model
    assert '"suggested_changes"' in prompt and "explosion" in prompt
    body = server.posts()[0]["body"]
    assert body["temperature"] == 0 and body["max_tokens"] == 512 and "logprobs" not in body


def test_an_invalid_answer_is_asked_again_once_then_the_critique_fails(server: FakeOpenAI, tmp_path: Path) -> None:
    image = dim_fireball(tmp_path / "dim.png")
    answers = iter(["Sure! The fire looks great.", "```json\n" + json.dumps(CONTRADICTING) + "\n```"])
    server.reply = lambda body: Reply(next(answers))
    block = diagnose(image, profile="explosion", vlm=f"{server.url}#a")["vlm"]
    assert block["status"] == "ok" and [a["error"] is None for a in block["attempts"]] == [False, True]
    retry = FakeOpenAI.prompt_of(server.posts()[1]["body"])
    assert "Sure! The fire looks great." in retry and "It is not valid: the answer holds no JSON object" in retry

    bad = dict(CONTRADICTING, suggested_changes=[{"parameter": "fireball_size", "direction": "increase",
                                                   "reason": "bigger"}])
    server.reply = lambda body: Reply(json.dumps(bad))
    block = diagnose(image, profile="explosion", vlm=f"{server.url}#b")["vlm"]
    assert block["status"] == "failed" and block["critique"] is None and block["disagreements"] == []
    assert len(block["attempts"]) == 2 and all("fireball_size" in a["error"] for a in block["attempts"])
    assert block["error"].startswith("no valid critique after 2 answers")
    assert len(server.posts()) == 2 + 2  # one retry, never more

    server.reply = lambda body: Reply(json.dumps({**CONTRADICTING, "issues": [{"description": "x",
                                                                              "severity": "fatal",
                                                                              "region": "foreground"}]}))
    block = diagnose(image, profile="explosion", vlm=f"{server.url}#c")["vlm"]
    assert block["status"] == "failed" and "issues.0.severity" in block["attempts"][0]["error"]


def test_critique_command_prints_rules_and_critique(server: FakeOpenAI, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    image = dim_fireball(tmp_path / "dim.png")
    assert run_cli(["critique", str(image), "--profile", "explosion", "--vlm", f"{server.url}#judge", "--no-cache"],
                   monkeypatch) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "ok" and out["rules"]["suggested_parameters"]["emission_strength"]["change"] == "+30%"
    assert [d["parameter"] for d in out["disagreements"]] == ["emission_strength"]
    assert out["profile"]["name"] == "explosion" and out["kind"] == "image"


def test_a_local_vlm_critique_is_deterministic_and_never_invented(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    model = build_tiny_qwen2_vl(tmp_path / "tiny_qwen")
    image = dim_fireball(tmp_path / "dim.png")
    texts = []
    for n in range(2):
        out = tmp_path / f"critique{n}.json"
        assert run_cli(["critique", str(image), "--profile", "explosion", "--vlm", str(model), "--device", "cpu",
                        "--max-new-tokens", "24", "--no-cache", "--out", str(out)], monkeypatch) == 0
        texts.append(out.read_bytes())
    capsys.readouterr()
    assert texts[0] == texts[1]
    result = json.loads(texts[0])
    # a random model writes no valid JSON: a failed critique with both raw answers, no critique made up
    assert result["status"] == "failed" and result["critique"] is None and len(result["attempts"]) == 2
    assert all(a["error"] for a in result["attempts"]) and result["settings"]["backend"] == "transformers"


def test_vlm_with_archive_is_refused_not_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    image = dim_fireball(tmp_path / "dim.png")
    code = run_cli(["diagnose", str(image), "--vlm", "http://127.0.0.1:9/v1#x", "--archive",
                    str(tmp_path / "loop.sqlite")], monkeypatch)
    assert code == 2 and "--vlm cannot be combined with --archive" in capsys.readouterr().err


def test_answers_are_read_from_fences_and_checked_against_the_profile() -> None:
    from gencritic.diagnose.profiles import load_profile
    from gencritic.judges.critique import InvalidCritique, parse_critique, profile_parameters, rule_direction

    params = profile_parameters(load_profile("explosion"))
    assert list(params)[:3] == ["emission_strength", "exposure", "flame_vorticity"]
    text = "Here you go:\n```json\n" + json.dumps(CONTRADICTING) + "\n```\nAnything else?"
    assert parse_critique(text, params).model_dump(mode="json") == CONTRADICTING
    for broken in ("{", "[1, 2]", json.dumps({**CONTRADICTING, "extra": 1}), json.dumps({"summary": "x"})):
        with pytest.raises(InvalidCritique):
            parse_critique(broken, params)
    assert [rule_direction(c) for c in ("+30%", "-0.5", "effect_centroid", "+0%")] == [
        "increase", "decrease", None, None]
