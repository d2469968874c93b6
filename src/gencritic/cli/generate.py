"""``gencritic generate run|progress|resolve|clean|eval``: generation jobs from the command line.

Each command parses flags, builds a :class:`~gencritic.generate.runner.Runner` and prints;
the logic lives in :mod:`gencritic.generate`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from gencritic.cli.options import (
    DEFAULT_CLIP_MODEL,
    AllowUntextured,
    Device,
    Model,
    NoCache,
    Quiet,
    Resolution,
    Rig,
    cache_root,
    render_options,
    render_settings_from_cli,
    split_list,
)
from gencritic.errors import InputError

if TYPE_CHECKING:
    from gencritic.generate.runner import Runner
    from gencritic.remote.keys import ApiKey

gen_app = typer.Typer(
    name="generate",
    help=(
        "Generate 3D assets from your images with hosted APIs (CSM.ai) or a local command, track the jobs "
        "durably, then score the results.\n\n"
        "Typical session:\n\n"
        "  export CSM_API_KEY=...                      (or be asked once; kept in ~/.config/gencritic, mode 600)\n\n"
        "  gencritic generate run images/              (submits 6 CSM configurations per image)\n\n"
        "  gencritic generate progress                 (re-run any time: polls, downloads, shows a table)\n\n"
        "  gencritic generate eval                     (renders, scores vs the input image, writes a leaderboard)\n\n"
        "State lives in --workdir (default ./gencritic-jobs): jobs.sqlite, images/, results/, eval/."
    ),
    no_args_is_help=True,
)

# The options several generate commands share (cli/options.py holds those of every area).
Workdir = Annotated[Path, typer.Option(
    "--workdir", "-w", help="Folder that holds the job database, image copies and results (default ./gencritic-jobs).")]
ApiUrl = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--api-url", help="CSM API base URL (env CSM_API_URL; default: the URL the workdir's jobs were submitted to, else "
                      "https://api.csm.ai). Point it at a proxy or gateway.")]
Configs = Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
    "--config", "-c", help="Only these configurations (repeatable).")]
Wait = Annotated[bool, typer.Option(
    "--wait", help="Keep polling until every job is finished (jobs take 30-60 min); stops early when only you can "
                   "move a job on (unconfirmed jobs).")]
PollInterval = Annotated[float, typer.Option("--poll-interval", help="Seconds between polls with --wait.")]
MeshFormats = Annotated[str, typer.Option(
    "--format", help="Mesh format(s) to download, in order of preference: glb, obj, fbx, usdz.")]
RequestTimeout = Annotated[float, typer.Option(
    "--timeout", help="Seconds before one HTTP request is abandoned (retried).")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(gen_app, name="generate")


def _api_url(value: Optional[str], workdir: Path) -> str:  # noqa: UP045
    from gencritic.generate.runner import resolve_api_url

    return resolve_api_url(value or os.environ.get("CSM_API_URL") or None, workdir)


def _formats(text: str) -> tuple[str, ...]:
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    allowed = ("glb", "obj", "fbx", "usdz")
    bad = [f for f in formats if f not in allowed]
    if bad or not formats:
        raise InputError(f"--format {text!r}: use one or more of {', '.join(allowed)} (in order of preference)")
    return formats


def _runner(workdir: Path, api_url: Optional[str], formats: str, timeout: float, poll_interval: float,  # noqa: UP045
            must_exist: bool) -> Runner:
    from gencritic.generate.runner import DB_NAME, GenerateSettings, Runner, backend_factory
    from gencritic.remote.clock import SystemClock
    from gencritic.remote.keys import resolve_api_key

    if must_exist and not (workdir / DB_NAME).exists():
        raise InputError(f"no generation jobs in {workdir}: start with `gencritic generate run IMAGES_DIR "
                         f"--workdir {workdir}`")
    if timeout <= 0 or poll_interval <= 0:
        raise InputError("--timeout and --poll-interval must be positive numbers of seconds")
    settings = GenerateSettings(workdir=workdir, api_url=_api_url(api_url, workdir), formats=_formats(formats),
                                request_timeout_s=timeout, poll_interval_s=poll_interval)
    clock = SystemClock()

    def ask() -> str:
        return str(typer.prompt("CSM API key (from your CSM profile page; stored once, mode 600)", hide_input=True))

    def key() -> ApiKey:
        return resolve_api_key(prompt=ask if sys.stdin.isatty() else None)

    return Runner(settings, clock, backend_factory(settings, clock, key))


def _show(runner: Runner, title: str) -> None:
    from rich.console import Console

    from gencritic.generate.table import problems, status_table, tally
    rows = runner.tracker.all()
    console = Console()
    console.print(status_table(rows, title))
    console.print(f"{tally(rows)}  [dim](workdir {runner.workdir})[/]")
    for line in problems(rows, runner.workdir):
        console.print(line, markup=False, style=None, soft_wrap=True)


def _drive(runner: Runner, wait: bool) -> None:
    from gencritic.generate.runner import StepReport

    def note(report: StepReport) -> None:
        extra = f", {report.requeued} resumed after an interruption" if report.requeued else ""
        extra += f", {len(report.unconfirmed)} unconfirmed" if report.unconfirmed else ""
        typer.echo(f"pass: {report.submitted} submitted, {report.polled} polled, {report.downloaded} downloaded"
                   f"{extra}, {runner.active()} still active", err=True)

    if wait:
        runner.run_until_done(on_pass=note)
    else:
        note(runner.step())
    stuck = runner.needs_user()
    if stuck:
        why = ("stopped waiting: " if wait else "") + (
            f"{len(stuck)} job(s) unconfirmed: their request may have reached the API and it cannot be checked, "
            f"so they are neither re-sent (that could pay twice) nor waited on; resolve each with the command "
            f"shown below")
        typer.echo(why, err=True)


@gen_app.command("run")
def run_command(
    images: Path = typer.Argument(..., help="Folder of input images (png/jpg/webp...). A sidecar NAME.txt is the "
                                            "image's prompt, used by text metrics in `eval`."),
    matrix: Optional[Path] = typer.Option(None, "--matrix", "-m", help="YAML/TOML file of configurations (default: "  # noqa: UP045
                                                                       "CSM.ai's six; see docs/generation.md)."),
    config: Configs = None,
    workdir: Workdir = Path("gencritic-jobs"),
    api_url: ApiUrl = None,
    wait: Wait = False,
    poll_interval: PollInterval = 30.0,
    formats: MeshFormats = "glb",
    timeout: RequestTimeout = 60.0,
) -> None:
    """Submit every image to every configuration of the matrix (safe to re-run: nothing is sent twice).

    Examples:

      gencritic generate run images/

      gencritic generate run images/ --config i3d-turbo --config i3d-turbo-pbr --wait

      gencritic generate run images/ --matrix my_matrix.yaml --workdir runs/trellis
    """
    from gencritic.generate.matrix import load_matrix
    configs = load_matrix(matrix, list(config or []))
    runner = _runner(workdir, api_url, formats, timeout, poll_interval, must_exist=False)
    with runner:
        for backend in dict.fromkeys(c.backend for c in configs):
            runner.backend(backend)  # no key or bad --api-url: stop now, before any work
        if "csm" in {c.backend for c in configs}:
            runner.tracker.set_meta("api_url", runner.settings.api_url)
        n_images, created, existing = runner.plan(images, configs)
        typer.echo(f"{n_images} image(s) × {len(configs)} configuration(s): {created} new job(s), "
                   f"{existing} already tracked", err=True)
        _drive(runner, wait)
        _show(runner, "generation jobs")
        if runner.active():
            typer.echo(f"jobs run remotely for 30-60 min; check with: gencritic generate progress --workdir {workdir}",
                       err=True)


@gen_app.command("progress")
def progress_command(
    workdir: Workdir = Path("gencritic-jobs"),
    api_url: ApiUrl = None,
    wait: Wait = False,
    poll_interval: PollInterval = 30.0,
    formats: MeshFormats = "glb",
    timeout: RequestTimeout = 60.0,
) -> None:
    """Poll unfinished jobs, download finished meshes (checksummed), and show the image × config table.

    Idempotent: finished downloads are verified, never fetched again; interrupted submissions are
    reconciled with the API before anything is re-sent.

    Examples:

      gencritic generate progress

      gencritic generate progress --wait --poll-interval 60
    """
    runner = _runner(workdir, api_url, formats, timeout, poll_interval, must_exist=True)
    with runner:
        _drive(runner, wait)
        _show(runner, "generation jobs")


@gen_app.command("clean")
def clean_command(
    workdir: Workdir = Path("gencritic-jobs"),
    image: Optional[list[str]] = typer.Option(None, "--image", help="Image file name, stem or sha256 prefix (repeatable)."),  # noqa: UP045
    config: Configs = None,
    status: Optional[list[str]] = typer.Option(None, "--status", help="Only jobs in this status, e.g. failed (repeatable)."),  # noqa: UP045
    everything: bool = typer.Option(False, "--all", help="Every job in the workdir."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Remove downloaded results and tracking for the chosen jobs, so they can be generated again.

    Examples:

      gencritic generate clean --status failed          (then `generate run` re-submits them)

      gencritic generate clean --config i3d-base --yes

      gencritic generate clean --all
    """
    from gencritic.generate.tracker import STATUSES

    if not (image or config or status or everything):
        raise InputError("say what to clean: --image NAME, --config NAME, --status failed, or --all")
    bad = [s for s in status or [] if s not in STATUSES]
    if bad:
        raise InputError(f"--status {bad[0]!r} is not a job status; use one of {', '.join(STATUSES)}")
    runner = _runner(workdir, None, "glb", 60.0, 30.0, must_exist=True)
    with runner:
        rows = runner.select(image or [], config or [], status or [])
        if not rows:
            typer.echo("no jobs match; nothing to clean", err=True)
            return
        remote = sum(1 for r in rows if r.status in ("submitting", "unconfirmed", "running"))
        msg = f"remove {len(rows)} job(s) and their downloaded files from {workdir}?"
        if remote:
            msg += (f" {remote} are (or may be) running remotely; their results would be lost, and running them "
                    f"again pays again.")
        if not yes and not typer.confirm(msg, default=False):
            typer.echo("nothing removed", err=True)
            raise typer.Exit(1)
        jobs, files = runner.clean(rows)
        typer.echo(f"removed {jobs} job(s) and {files} file(s)")


@gen_app.command("resolve")
def resolve_command(
    job: Optional[list[str]] = typer.Argument(None, help="Job id(s) as `generate progress` prints them."),  # noqa: UP045
    workdir: Workdir = Path("gencritic-jobs"),
    resubmit: bool = typer.Option(False, "--resubmit", help="The session is not on the API: send the job again "
                                                           "(next run/progress)."),
    forget: bool = typer.Option(False, "--forget", help="Stop tracking the job (marked failed); nothing is sent."),
    adopt: Optional[str] = typer.Option(None, "--adopt", metavar="SESSION_ID",  # noqa: UP045
                                        help="The session is on the API under this id: track it."),
    every: bool = typer.Option(False, "--all", help="Every unconfirmed job in the workdir (not with --adopt)."),
) -> None:
    """Decide what happens to an unconfirmed job: a submission that may have reached the API when
    the API offers no way to check (gencritic never guesses: a re-send could pay twice, a drop could
    lose a paid result).

    Examples:

      gencritic generate resolve 0a1b2c3d4e5f6a7b:i3d-turbo --resubmit

      gencritic generate resolve 0a1b2c3d4e5f6a7b:i3d-turbo --adopt SESSION_1700000000_0000001

      gencritic generate resolve --all --forget
    """
    chosen = [name for name, on in (("--resubmit", resubmit), ("--forget", forget), ("--adopt", adopt is not None))
              if on]
    if len(chosen) != 1:
        raise InputError("say what to do with the job(s): exactly one of --resubmit, --forget, --adopt SESSION_ID")
    if bool(job) == every:
        raise InputError("name the job(s) to resolve (ids as `generate progress` prints them), or pass --all")
    if adopt is not None and (every or len(job or []) != 1):
        raise InputError("--adopt SESSION_ID resolves one job: name exactly one job id")
    runner = _runner(workdir, None, "glb", 60.0, 30.0, must_exist=True)
    with runner:
        ids = [r.job_id for r in runner.needs_user()] if every else list(job or [])
        if not ids:
            typer.echo("no unconfirmed jobs; nothing to resolve", err=True)
            return
        for job_id in ids:  # all of them checked before any is changed
            runner.unconfirmed_job(job_id)
        action = chosen[0].lstrip("-")
        for job_id in ids:
            typer.echo(runner.resolve(job_id, action, adopt))


@gen_app.command("eval")
def eval_command(
    workdir: Workdir = Path("gencritic-jobs"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default WORKDIR/eval)."),  # noqa: UP045
    model: Model = DEFAULT_CLIP_MODEL,
    text_metrics: str = typer.Option("clip", "--text-metrics", help="Metrics for images that have a prompt "
                                                                    "(sidecar .txt); empty to skip."),
    config: Configs = None,
    device: Device = "auto",
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
    no_cache: NoCache = False,
    per_part: bool = typer.Option(False, "--per-part", help="Also score each part of a kit on its own "
                                                            "(part_scores.csv); kits are always scored whole."),
    allow_untextured: AllowUntextured = False,
    quiet: Quiet = False,
) -> None:
    """Render every finished mesh, score it against its source image, and write a leaderboard per configuration.

    clip_i2i = CLIP image-image cosine of each rendered view to the input image, mean over views.
    Writes WORKDIR/eval/leaderboard.csv, leaderboard.md and scores.csv (one row per job). A kit is
    scored as the whole object: its assembled mesh, or all its parts drawn together (num_parts).

    Examples:

      gencritic generate eval

      gencritic generate eval --model openai/clip-vit-large-patch14 --device cuda
    """
    from rich.console import Console

    from gencritic.generate.evaluate import evaluate, to_markdown

    render = render_settings_from_cli(rig=rig, resolution=resolution, allow_untextured=allow_untextured)
    runner = _runner(workdir, None, "glb", 60.0, 30.0, must_exist=True)
    with runner:
        rows = runner.select(configs=config or [])
        known = {r.config for r in runner.tracker.all()}
    unknown = [c for c in config or [] if c not in known]
    if unknown:
        raise InputError(f"no jobs for configuration(s) {', '.join(unknown)} in {workdir}; "
                         f"known: {', '.join(sorted(known)) or 'none'}")
    result = evaluate(rows, out or workdir / "eval", model, split_list(text_metrics), device=device,
                      render=render_options(render), cache_dir=cache_root(None, no_cache), progress=not quiet,
                      per_part=per_part)
    Console().print(to_markdown(result.leaderboard, result.leaderboard_columns, "leaderboard"), markup=False)
    typer.echo(f"-> {result.out_dir / 'leaderboard.csv'}, {result.out_dir / 'leaderboard.md'}, "
               f"{result.out_dir / 'scores.csv'}" + (f", {result.out_dir / 'part_scores.csv'}" if per_part else ""),
               err=True)
