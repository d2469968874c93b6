"""``gencritic critique`` and ``gencritic judge3d``: the vision-language judges.

Each command parses options and calls :mod:`gencritic.judges`; no logic here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gencritic.cli.options import CacheDir, Device, Dtype, NoCache, Profile, Quiet, Vlm, cache_root


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("critique")(critique_command)
    app.command("judge3d")(judge3d_command)


def _vlm_spec(vlm: Optional[str]) -> str:  # noqa: UP045
    from gencritic.models.vlm import default_vlm_spec

    return vlm or default_vlm_spec()


def critique_command(
    input: Path = typer.Argument(..., help="An image, or a frame sequence (folder of frames, GIF, MP4/WebM)."),
    profile: Profile = "explosion",
    vlm: Vlm = None,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the JSON here instead of printing it."),  # noqa: UP045
    max_new_tokens: int = typer.Option(512, "--max-new-tokens", min=16, help="Longest answer the VLM may give."),
    device: Device = "auto",
    dtype: Dtype = "auto",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Ask a VLM what is wrong with a render and which profile parameters to change, as validated JSON.

    The VLM is --vlm, else $GENCRITIC_VLM_MODEL, else Qwen/Qwen2-VL-2B-Instruct. The profile's
    rules run too (model-free): their suggestions are reported beside the VLM's, and
    `disagreements` lists parameters the two would move in opposite directions. An answer that is
    not valid JSON for the schema is asked again once, then reported as a failed critique.

    Examples:

      gencritic critique render.png --profile explosion --vlm Qwen/Qwen2-VL-2B-Instruct

      gencritic critique frames/ --profile campfire --vlm http://127.0.0.1:8000/v1 --out critique.json
    """
    from gencritic.diagnose.api import critique
    from gencritic.jsonio import dumps_strict
    from gencritic.judges.critique import make_client
    from gencritic.models import ModelPool

    pool = ModelPool(device=device, dtype=dtype)
    client = make_client(_vlm_spec(vlm), pool, cache_root(cache_dir, no_cache))
    result = critique(input, profile=profile, vlm=client, pool=pool, max_new_tokens=max_new_tokens)
    text = dumps_strict(result, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    from gencritic.atomic import atomic_write_text

    atomic_write_text(out, text + "\n")
    typer.echo(f"wrote {out}", err=True)


def judge3d_command(
    folders: list[Path] = typer.Argument(..., help="Two or more generator folders; outputs named by prompt id "
                                                   "(mesh files, folders of views, or images)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: leaderboard.csv/.json/.html, matches.csv."),
    vlm: Vlm = None,
    criteria: str = typer.Option("alignment,geometry,texture", "--criteria",
                                 help="Comma-separated: alignment, plausibility, coherence, geometry, texture."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="CSV with id,prompt (else <id>.txt sidecars)."),  # noqa: UP045
    names: Optional[str] = typer.Option(None, "--names", help="Comma-separated generator names (default: folder names)."),  # noqa: UP045
    views: int = typer.Option(4, "--views", help="Views per asset shown to the judge (evenly spaced)."),
    tile: int = typer.Option(256, "--tile", help="Pixels per view in the picture the judge sees."),
    max_side: int = typer.Option(1024, "--max-side", help="Longest side of the pair picture sent to the VLM."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples of prompts for the Elo intervals."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    device: Device = "auto",
    dtype: Dtype = "auto",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    quiet: Quiet = False,
) -> None:
    """Rank 3D generators by pairwise VLM comparisons of their rendered views (GPTEval3D's protocol).

    The judge is --vlm, else $GENCRITIC_VLM_MODEL, else Qwen/Qwen2-VL-2B-Instruct. Every pair of
    generators is compared on every shared prompt and criterion, in both orders;
    ratings are Bradley–Terry strengths on the Elo scale with 95% intervals from resampling prompts.
    An interrupted run resumes from the answer cache.

    Examples:

      gencritic judge3d trellis/ instantmesh/ lgm/ --out board/ --vlm Qwen/Qwen2-VL-7B-Instruct

      gencritic judge3d a_views/ b_views/ --prompts prompts.csv --criteria alignment,plausibility --out board/
    """
    from gencritic.jsonio import dumps_strict
    from gencritic.judges.critique import make_client
    from gencritic.judges.judge3d import JudgeOptions, judge_generators, plan_judging
    from gencritic.judges.leaderboard import write_leaderboard
    from gencritic.models import ModelPool

    folder = cache_root(cache_dir, no_cache)
    # renders are cached beside the answers, as `score` caches them beside the embeddings
    render_options: dict[str, object] = {"cache": False} if folder is None else {"cache_dir": str(folder / "renders")}
    opts = JudgeOptions(criteria=[c.strip() for c in criteria.split(",") if c.strip()], views=views, tile=tile,
                        bootstrap=bootstrap, seed=seed, prompts_file=prompts,
                        names=[n.strip() for n in names.split(",")] if names else None,
                        render_options=render_options)
    plan = plan_judging(folders, opts)  # bad folders or options stop here, before a model is loaded
    client = make_client(_vlm_spec(vlm), ModelPool(device=device, dtype=dtype), folder, max_side=max_side)
    result = judge_generators(plan, client, opts, progress=None if quiet else lambda m: typer.echo(m, err=True))
    paths = write_leaderboard(result, out)
    overall = result["ratings"]["overall"]
    typer.echo(dumps_strict({"leaderboard": overall, "matches": result["matches"],
                             "written": {k: str(v) for k, v in paths.items()}}, indent=2))
