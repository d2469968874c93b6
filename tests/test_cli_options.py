"""One set of command-line options (issue 18, item 4).

``--device`` was declared in seven command files with four help texts, and the render settings
were assembled four ways (score, render, generate eval, serve). Shared options now come from
``gencritic/cli/options.py`` and render settings from ``render_settings_from_cli``; these tests
hold every command to one help text per option, the render model's defaults, and the run
fingerprints (so folders written before still resume).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from gencritic.cli.main import app
from tests.conftest import make_image

# Names that mean different things in different commands (what --out writes, what --seed seeds...):
# the help must say the command's meaning, so these are the only ones allowed several texts.
SEVERAL_MEANINGS = {
    "--out": "what each command writes",
    "--seed": "what each command seeds",
    "--json": "what each listing prints",
    "--prompt": "score: every item's prompt; diagnose: the one image's",
    "--format": "score: result files; validate/train: dataset layout; generate: mesh files",
    "--group-by": "validate: bootstrap groups; report: leaderboard columns",
    "--ratings": "validate: columns to correlate; train: columns to learn (alias of --tasks)",
    "--root": "toys4k: the assets' folder; serve/mcp: folders requests may read",
    "--all": "generate clean: every job; generate resolve: every unconfirmed job",
    "--workers": "render: assets at once; score/toys4k: preparing threads",
    "--batch-size": "train: the training batch; elsewhere: images per model call",
    "--samples": "render: MSAA samples per pixel; compare3d: surface points per asset",
    "--max-frames": "temporal: frames read; serve/mcp: the most an input may have (refused beyond)",
    "--margin": "render: framing room around the asset; calibrate: the rating gap a pair needs",
    "--bootstrap": "validate: resamples of the rated items; judge3d: resamples of the prompts (Elo intervals)",
    "--views": "report: a folder of rendered views; judge3d: how many views the judge sees",
}


def _options() -> dict[str, dict[str, Any]]:
    """{option name: {command path: the click option}} over every command and sub-command."""
    found: dict[str, dict[str, Any]] = defaultdict(dict)

    def walk(group: Any, prefix: list[str]) -> None:
        for name, command in group.commands.items():
            if hasattr(command, "commands"):
                walk(command, [*prefix, name])
                continue
            for param in command.params:
                if param.param_type_name == "option":
                    found[max(param.opts, key=len)][" ".join([*prefix, name])] = param

    walk(typer.main.get_command(app), [])
    return found


def test_every_option_name_has_one_help_text() -> None:
    options = _options()
    assert len(options["--device"]) >= 8 and len(options["--cache-dir"]) >= 8  # the walk found the commands
    several = {}
    for name, by_command in options.items():
        texts: dict[str, list[str]] = defaultdict(list)
        for command, param in by_command.items():
            assert param.help, f"{command} {name} has no help"
            texts[param.help].append(command)
        if len(texts) > 1 and name not in SEVERAL_MEANINGS:
            several[name] = list(texts.values())
    assert several == {}, f"options with several help texts: {several}"
    # the same short flag everywhere for the shared options
    for name in ("--model", "--resolution", "--batch-size", "--quiet"):
        flags = {tuple(sorted(p.opts)) for c, p in options[name].items() if not (name == "--batch-size" and c == "train")}
        assert len(flags) == 1, (name, flags)


def test_commands_default_to_the_render_models_defaults() -> None:
    from gencritic.io.images import parse_background
    from gencritic.render.settings import RenderSettings

    fields = RenderSettings.model_fields
    options = _options()
    checked = 0
    for flag, field in (("--rig", "rig"), ("--resolution", "resolution"), ("--renderer", "renderer"),
                        ("--spp", "spp"), ("--allow-untextured", "allow_untextured"), ("--normalize", "normalize"),
                        ("--up", "up"), ("--lighting", "lighting"), ("--samples", "samples"), ("--radius", "radius"),
                        ("--fov", "fov"), ("--pitch", "pitch"), ("--background", "background"),
                        ("--margin", "margin")):
        for command, param in options[flag].items():
            if (flag, command) == ("--resolution", "report"):
                assert param.default == 256  # report thumbnails: smaller views on purpose
                continue
            if (flag, command) in (("--samples", "compare3d"), ("--margin", "calibrate")):
                continue  # another option of the same name (SEVERAL_MEANINGS)
            if flag == "--spp":  # unset: the model's 16, or the trellis preset's 128 (RenderSettings decides)
                assert param.default is None, (command, flag, param.default)
                checked += 1
                continue
            default = parse_background(param.default) if flag == "--background" else param.default
            assert default == fields[field].default, (command, flag, param.default)
            checked += 1
    assert options["--seed"]["render"].default == fields["seed"].default
    assert checked >= 20


# What the command line handed the pipeline before cli/options.py (same flags, computed with the
# earlier code): the run fingerprint of `score ... --model m` and its render options.
FINGERPRINTS = [
    ([], {"resolution": 512, "rig": "toys4k8"}, "e31c64e5cdc4"),
    (["--renderer", "cycles"], {"renderer": "cycles", "resolution": 512, "rig": "toys4k8", "spp": 16}, "3d390b71d16c"),
    (["--renderer", "cycles", "--spp", "64"], {"renderer": "cycles", "resolution": 512, "rig": "toys4k8", "spp": 64},
     "ae51b1118deb"),
    (["--allow-untextured"], {"allow_untextured": True, "resolution": 512, "rig": "toys4k8"}, "29a46b14ba35"),
    (["--rig", "orbit24", "-r", "256", "--background", "black"], {"resolution": 256, "rig": "orbit24"}, "81365cdefd2e"),
    (["--renderer", "gl", "--spp", "99"], {"resolution": 512, "rig": "toys4k8"}, "e31c64e5cdc4"),
    (["--no-cache", "--metrics", "clip, lpips", "--format", "parquet,jsonl"], {"resolution": 512, "rig": "toys4k8"},
     "e11be9bf31f1"),
]


@pytest.mark.parametrize(("flags", "render", "fingerprint"), FINGERPRINTS)
def test_score_keeps_the_fingerprints_of_earlier_runs(flags: list[str], render: dict[str, Any], fingerprint: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import gencritic.scoring.run
    from gencritic.hashing import describe_settings

    seen = []

    def capture(input: Path, out: Path | None = None, prompt: str | None = None, options: Any = None) -> Any:
        seen.append(options)
        raise typer.Exit(0)

    monkeypatch.setattr(gencritic.scoring.run, "score", capture)
    result = CliRunner().invoke(app, ["score", "x.png", "--out", "o", "--model", "m", *flags])
    assert result.exit_code == 0, result.output
    (options,) = seen
    assert options.render.given() == render  # the RenderSettings model, its given options as they were
    assert describe_settings(options.numeric_settings(True)) == fingerprint


def test_render_builds_the_settings_it_did_from_its_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gencritic.render.api
    from gencritic.render.settings import parse_render_options

    seen = []

    def capture(source: Path, out: Path, options: Any = None, transparent: bool = False, workers: int = 2,
                on_done: Any = None) -> list[Any]:
        seen.append((parse_render_options(options), transparent))
        return []

    monkeypatch.setattr(gencritic.render.api, "render_to_folder", capture)
    base = {"rig": "toys4k8", "resolution": 512, "normalize": "trellis", "up": "y", "lighting": "default",
            "samples": 0, "radius": 2.0, "fov": 40.0, "pitch": 30.0, "seed": 0, "cache": True, "renderer": "gl",
            "spp": 16, "allow_untextured": False, "background": "white"}
    cases = [
        ([], base, False),
        (["--background", "transparent", "--no-cache"], {**base, "cache": False, "background": None}, True),
        (["--rig", "random5", "--seed", "3", "-r", "64", "--up", "z", "--normalize", "sphere", "--lighting", "flat",
          "--samples", "4", "--radius", "3", "--fov", "30", "--pitch", "10", "--background", "#102030",
          "--cache-dir", str(tmp_path), "--allow-untextured", "--margin", "0.05"],
         {**base, "rig": "random5", "seed": 3, "resolution": 64, "up": "z", "normalize": "sphere", "lighting": "flat",
          "samples": 4, "radius": 3.0, "fov": 30.0, "pitch": 10.0, "background": "#102030",
          "cache_dir": tmp_path / "renders", "allow_untextured": True, "margin": 0.05}, False),
    ]
    for flags, before, transparent in cases:
        seen.clear()
        result = CliRunner().invoke(app, ["render", "x.glb", "--out", str(tmp_path / "v"), *flags])
        assert result.exit_code == 0, result.output
        settings, was_transparent = seen[0]
        expected = parse_render_options(before)
        assert settings == expected and settings.key() == expected.key() and was_transparent == transparent


def test_a_bad_render_value_is_one_line_before_any_work(tmp_path: Path, tiny_clip_dir: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Every command validates its render options up front, images-only runs included (they were
    ignored there, so a typo in a script surfaced only on the first mesh)."""
    import sys

    from gencritic.cli.main import main

    image = make_image(tmp_path / "a.png")
    runs = {
        "score": ["score", str(image), "--out", str(tmp_path / "out"), "--model", str(tiny_clip_dir), "--no-cache",
                  "-q", "--resolution", "8"],
        "report": ["report", str(tmp_path), "--out", str(tmp_path / "r.html"), "--rig", "orbit0"],
    }
    for name, argv in runs.items():
        monkeypatch.setattr(sys, "argv", ["gencritic", *argv])
        with pytest.raises(SystemExit) as exc:
            main()
        lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert exc.value.code == 2, (name, lines)
        assert len(lines) == 1, (name, lines)
        assert ("--resolution 8: use 16..4096 pixels" if name == "score" else "--rig") in lines[0], lines
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.html").exists()


def test_render_settings_from_cli_marks_only_what_the_command_gave() -> None:
    """The model's fields_set is what enters a run's fingerprint: the rasteriser, the strict
    texture rule and the options a command does not offer stay unset."""
    from gencritic.cli.options import render_options, render_settings_from_cli

    plain = render_settings_from_cli(rig="six", resolution=64)
    assert render_options(plain) == {"rig": "six", "resolution": 64}
    assert plain.renderer == "gl" and plain.spp == 16 and plain.cache and plain.cache_dir is None
    full = render_settings_from_cli(rig="six", resolution=64, renderer="cycles", spp=8, allow_untextured=True,
                                    background="black", up="z", cache=False, cache_dir=Path("/c"))
    assert render_options(full) == {"rig": "six", "resolution": 64, "renderer": "cycles", "spp": 8,
                                    "allow_untextured": True, "background": [0, 0, 0], "up": "z", "cache": False,
                                    "cache_dir": "/c/renders"}
    assert "background" not in render_options(render_settings_from_cli(rig="six", resolution=64,
                                                                       background="Transparent"))
