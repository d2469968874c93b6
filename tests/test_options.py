"""Every option a user writes is checked against a schema (issue 16, item 3).

A misspelt or wrongly typed option used to be ignored (``clip:modle=...`` ran the default model and
recorded the typo in the settings). Now metric options, render options, profile YAML and
generation matrices refuse it with one line: where, the key, the accepted keys and the closest
match; the CLI exits 2. ``gencritic metrics --json`` prints each metric's schema.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from gencritic.errors import InputError
from gencritic.metrics.registry import all_metrics, create_metric
from tests.conftest import make_image

METRIC_NAMES = sorted(all_metrics())


def _misspell(key: str) -> str:
    """'model' -> 'modell': the slip of a finger, which difflib must trace back to the key."""
    return key + key[-1]


def _gencritic(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
               ) -> tuple[int, list[str]]:
    """Run the console script in-process: (exit status, non-empty stderr lines)."""
    from gencritic.cli.main import main

    monkeypatch.setattr(sys, "argv", ["gencritic", *argv])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    code = exc.value.code if isinstance(exc.value.code, int) else 1
    return code, [line for line in err.splitlines() if line.strip()]


# -- metric options ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_every_metric_refuses_a_misspelt_option_with_the_closest_key(
        name: str, tmp_path: Path, tiny_clip_dir: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    schema = getattr(all_metrics()[name], "options_schema", None)
    accepted = sorted(schema.model_fields) if schema is not None else ["model"]
    key = accepted[0] if accepted else "model"  # a key people try on a metric that takes none
    typo = _misspell(key)
    image = make_image(tmp_path / "a.png")
    code, lines = _gencritic(["score", str(image), "--out", str(tmp_path / "out"), "--quiet", "--no-cache",
                              "--device", "cpu", "--model", str(tiny_clip_dir), "--metrics", f"{name}:{typo}=x"],
                             monkeypatch, capsys)
    assert code == 2, lines
    assert len(lines) == 1, lines
    line = lines[0]
    assert f"metric '{name}'" in line and f"'{typo}'" in line, line
    if accepted:
        assert f"did you mean '{key}'?" in line, line
        assert "accepted: " + ", ".join(accepted) in line, line
    else:
        assert "takes no options" in line, line
    assert not (tmp_path / "out" / "results.csv").exists()


def test_option_values_are_typed_and_a_wrong_type_is_one_line() -> None:
    ladder = create_metric("ladder:prompts=low|high;scale=50")
    assert ladder.settings()["scale"] == 50.0
    for spec, key in (("ladder:prompts=low|high;scale=fifty", "scale"), ("ladder:prompts=low|high;scale=0", "scale"),
                      ("ladder:prompts=low|high;scale=inf", "scale"), ("hpsv2:version=v3", "version")):
        with pytest.raises(InputError) as info:
            create_metric(spec)
        message = str(info.value)
        assert "\n" not in message and key in message and "accepted: " in message, message
    assert create_metric("psnr:mask=NONE").options["mask"] == "NONE"  # case-blind, as before
    with pytest.raises(InputError, match="mask=auto"):
        create_metric("ssim:mask=maybe")


def test_a_case_slip_and_several_unknown_keys_are_named_together() -> None:
    with pytest.raises(InputError) as info:
        create_metric("clip:Model=x;colour=red")
    message = str(info.value)
    assert "'Model' (did you mean 'model'?)" in message and "'colour'" in message and "accepted: model" in message


def test_positional_spec_metrics_still_validate_their_keys(tmp_path: Path) -> None:
    """learned:/path keeps its positional form; learned:key=value is checked like any option."""
    with pytest.raises(InputError) as info:
        create_metric(f"learned:heda={tmp_path / 'head'}")
    assert "unknown option 'heda' (did you mean 'head'?)" in str(info.value)
    with pytest.raises(InputError, match="unknown option 'temperature'"):
        create_metric("ladder:prompts=a|b;temperature=3")
    positional = keyed = None
    for spec in (f"learned:{tmp_path / 'absent'}", f"learned:head={tmp_path / 'absent'}"):
        with pytest.raises(Exception) as exc:  # the same refusal (no head there) either way
            create_metric(spec)
        if positional is None:
            positional = (type(exc.value), str(exc.value))
        else:
            keyed = (type(exc.value), str(exc.value))
    assert positional == keyed


def test_unknown_metric_name_gets_the_closest_match_too() -> None:
    with pytest.raises(InputError, match="unknown metric 'lpis' \\(did you mean 'lpips'\\?\\)"):
        create_metric("lpis")


def _listed() -> list[dict[str, Any]]:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    result = CliRunner().invoke(app, ["metrics", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_metrics_json_prints_each_metrics_options_schema() -> None:
    listed = _listed()
    classes = all_metrics()
    for entry in listed:
        assert "options" in entry, f"{entry['name']}: no options schema printed"
        schema = classes[entry["name"]].options_schema
        assert set(entry["options"]) == set(schema.model_fields), entry["name"]
        for key, spec in entry["options"].items():
            where = f"{entry['name']}.{key}"
            assert spec["type"] in ("string", "number", "integer", "boolean"), where
            assert isinstance(spec["required"], bool) and "default" in spec, where
            assert isinstance(spec["description"], str) and len(spec["description"].split()) >= 3, where
        json.dumps(entry["options"], allow_nan=False)  # the options part is strict JSON
    by_name = {m["name"]: m["options"] for m in listed}
    assert by_name["clip"]["model"]["type"] == "string" and by_name["clip"]["model"]["default"] is None
    assert by_name["ladder"]["scale"]["type"] == "number"
    assert set(by_name["ladder"]) == {"model", "prompts", "prompts_file", "scale"}
    assert by_name["lpips"]["mask"]["choices"] == ["auto", "none"] and by_name["lpips"]["mask"]["default"] == "auto"
    assert by_name["lpips"]["net"]["default"] == "alex"
    assert by_name["hpsv2"]["version"] == {**by_name["hpsv2"]["version"], "choices": ["v2.0", "v2.1"], "default": "v2.1"}
    assert by_name["aesthetic"].keys() == {"head", "model"}
    assert by_name["flicker"] == {}


# -- render settings --------------------------------------------------------------------------------


def test_render_options_refuse_typos_and_wrong_types_in_one_line() -> None:
    from gencritic.render.settings import parse_render_options

    with pytest.raises(InputError) as info:
        parse_render_options({"backgrond": "black"})
    message = str(info.value)
    assert "unknown render option 'backgrond' (did you mean 'background'?)" in message
    assert "accepted: allow_untextured, background, cache, cache_dir, fov" in message and "\n" not in message
    with pytest.raises(InputError) as info:
        parse_render_options({"resolution": "big"})
    assert "resolution='big'" in str(info.value) and "integer" in str(info.value)
    with pytest.raises(InputError, match=r"resolution=512\.5"):
        parse_render_options({"resolution": 512.5})  # was truncated to 512 without a word


def test_render_settings_is_one_validating_model_with_unchanged_cache_keys() -> None:
    from pydantic import ValidationError

    from gencritic.render.settings import RenderSettings, parse_render_options

    with pytest.raises(ValidationError):  # built directly (not only through the parser), it still validates
        RenderSettings(resolution=2)
    with pytest.raises(ValidationError):
        RenderSettings(rigg="six")  # type: ignore[call-arg]
    settings = parse_render_options({"resolution": "256", "background": "black", "radius": 3})
    assert isinstance(settings, RenderSettings)
    assert (settings.resolution, settings.background, settings.radius) == (256, (0, 0, 0), 3.0)
    # The cache keys of views rendered before the move to a pydantic model (computed with the dataclass).
    assert parse_render_options({}).key() == "5690c6f6cde54e240b15931a1940032ece950b28a6ad11b5d5535de579d0eab8"
    assert parse_render_options({"resolution": 256, "background": "black", "rig": "orbit24"}).key() == (
        "a681d16744290b93f23dde35c39ac94a6e7c9e6e0b15f0a8d19f33329818998b")
    assert parse_render_options({"samples": 4, "lighting": "flat", "up": "z", "normalize": "sphere"}).key() == (
        "d0a4d39e8d7f0e6318c4934e7509104df4e6a9d8663b499ef8aeaafcd31af9fa")


# -- profiles ---------------------------------------------------------------------------------------

PROFILE = """\
diagnostics:
  brightness: {region: foreground, target: [0.2, 0.8], weight: 1.0}
rules:
  - when: brightness too_low
    suggest: {light_power: "+20%"}
    why: too dark
"""


@pytest.mark.parametrize(("find", "replace", "expected"), [
    ("region:", "regoin:", "unknown key in diagnostics.brightness: 'regoin' (did you mean 'region'?); "
                           "accepted: region, target, tolerance, weight"),
    ("diagnostics:", "diagnostic:", "unknown key 'diagnostic' (did you mean 'diagnostics'?)"),
    ("why:", "wyh:", "unknown key in rules[0]: 'wyh' (did you mean 'why'?)"),
    ("rules:", "segmentation: {bg_treshold: 0.1}\nrules:",
     "unknown key in segmentation: 'bg_treshold' (did you mean 'bg_threshold'?)"),
    ("weight: 1.0", "weight: heavy", "diagnostics.brightness.weight='heavy' is not valid"),
    ("brightness:", "brightnes:", "unknown diagnostic 'brightnes' (did you mean 'brightness'?)"),
])
def test_profile_typos_are_refused_with_the_closest_key(tmp_path: Path, find: str, replace: str,
                                                        expected: str) -> None:
    from gencritic.diagnose.profiles import load_profile

    path = tmp_path / "mine.yaml"
    path.write_text(PROFILE)
    assert load_profile(path).check("brightness").options == {"region": "foreground"}  # type: ignore[union-attr]
    path.write_text(PROFILE.replace(find, replace, 1))
    with pytest.raises(InputError) as info:
        load_profile(path)
    message = str(info.value)
    assert expected in message and f"profile {path}" in message and "\n" not in message, message


def test_profile_typo_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(PROFILE.replace("region:", "regoin:"))
    image = make_image(tmp_path / "a.png")
    code, lines = _gencritic(["diagnose", str(image), "--profile", str(path)], monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and "did you mean 'region'?" in lines[0], lines


def test_shipped_profiles_still_load_the_same() -> None:
    from gencritic.diagnose.profiles import load_profile

    explosion = load_profile("explosion")
    assert explosion.check("brightness").options == {"region": "foreground"}  # type: ignore[union-attr]
    assert explosion.check("intensity").options["ladder"][0] == "a faint wisp of smoke"  # type: ignore[union-attr]
    assert load_profile("product-shot").segmentation == {"bg_threshold": 0.06}
    assert len(load_profile("campfire").rules) > 5


# -- generation matrices ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("configurations:\n  - name: x\n    setings: {geometry_model: turbo}\n",
     "configuration 'x': unknown key 'setings' (did you mean 'settings'?); accepted: backend, command"),
    ("defualts: {backend: csm}\nconfigurations:\n  - name: x\n",
     "unknown key 'defualts' (did you mean 'defaults'?); accepted: configurations, defaults, version"),
    ("defaults: {backnd: csm}\nconfigurations:\n  - name: x\n",
     "unknown key in defaults: 'backnd' (did you mean 'backend'?)"),
    ("configurations:\n  - name: x\n    settings: {geomtery_model: turbo}\n",
     "settings key 'geomtery_model' looks like a typo of 'geometry_model'"),
    ("configurations:\n  - name: x\n    backend: command\n    command: [g, '{image}', '{output}']\n    timeout_s: soon\n",
     "timeout_s='soon' is not valid"),
])
def test_matrix_typos_are_refused_with_the_closest_key(tmp_path: Path, text: str, expected: str) -> None:
    from gencritic.generate.matrix import load_matrix

    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(InputError) as info:
        load_matrix(path)
    message = str(info.value)
    assert expected in message and "\n" not in message, message


def test_matrix_settings_other_than_typos_still_reach_the_api(tmp_path: Path) -> None:
    from gencritic.generate.matrix import load_matrix

    path = tmp_path / "m.yaml"
    path.write_text("version: 1\nconfigurations:\n  - name: x\n    settings: {geometry_model: turbo, seed: 3}\n")
    (config,) = load_matrix(path)
    assert config.settings == {"geometry_model": "turbo", "seed": 3}
