"""``gencritic report``, ``gencritic serve`` and ``gencritic mcp``: parse flags, call the API."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from gencritic.cli.options import (
    DEFAULT_CLIP_MODEL,
    CacheDir,
    Device,
    Dtype,
    Model,
    NoCache,
    Resolution,
    Rig,
    cache_root,
    render_options,
    render_settings_from_cli,
)
from gencritic.serve.limits import DEFAULT_MAX_FRAMES, DEFAULT_MAX_MODELS, DEFAULT_MAX_PIXELS

if TYPE_CHECKING:
    from gencritic.serve.service import ScoringService


# The options of both servers, declared once (mcp uses the network ones with --transport http).
Host = Annotated[str, typer.Option(
    "--host", help="Address to bind (mcp: with --transport http). Beyond loopback an API key is required.")]
Port = Annotated[int, typer.Option("--port", help="Port to listen on (mcp: with --transport http).")]
ApiKey = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--api-key", envvar="GENCRITIC_API_KEY",
    help="Key clients send in the X-API-Key header (or Authorization: Bearer KEY); required to bind beyond "
         "loopback.")]
MaxUploadMb = Annotated[float, typer.Option("--max-upload-mb", help="Largest file (and HTTP request body) accepted, "
                                                                    "in MB.")]
MaxPixels = Annotated[int, typer.Option(
    "--max-pixels", help="Most pixels one input may decode to: width x height, times its frames where all are "
                         "decoded (diagnose of an animation or folder, a views folder). Checked from the header "
                         "before decoding.")]
MaxFrames = Annotated[int, typer.Option("--max-frames", help="Most frames of an animation, video or folder.")]
AllowModel = Annotated[list[str], typer.Option(
    "--allow-model", help="Another model metric options may name (model=...), besides --model and each metric's own "
                          "default (repeatable). Files and folders under --root may always be named.")]
MaxModels = Annotated[int, typer.Option(
    "--max-models", help="Models and heads kept loaded (least recently used out first).")]
MaxConcurrent = Annotated[int, typer.Option(
    "--max-concurrent", help="Heavy jobs (a scoring batch, a diagnosis, an asset) run at once; each may hold an "
                             "input's pixels.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("report")(report_command)
    app.command("serve")(serve_command)
    app.command("mcp")(mcp_command)


def report_command(
    results: Path = typer.Argument(..., help="A results folder written by `gencritic score` or `gencritic compare3d` (results.csv, views.csv, "
                                             "summary.json)."),
    out: Path = typer.Option(Path("report.html"), "--out", "-o", help="The HTML file to write (one self-contained file)."),
    markdown: Optional[Path] = typer.Option(None, "--markdown", help="Markdown summary path (default: OUT with .md)."),  # noqa: UP045
    views: Optional[Path] = typer.Option(None, "--views", help="Folder of rendered views (VIEWS/<asset>/NNN.png, as "  # noqa: UP045
                                                              "written by `gencritic render --out`) for 3D thumbnails."),
    media_root: Optional[Path] = typer.Option(None, "--media-root", help="Folder that relative media paths in the "  # noqa: UP045
                                                                        "results are relative to."),
    link: bool = typer.Option(False, "--link", help="Link images by relative path instead of embedding thumbnails "
                                                    "(smaller file; the page then needs the images beside it)."),
    thumb_size: int = typer.Option(160, "--thumb-size", help="Thumbnail size in pixels (embedded JPEG)."),
    top_n: int = typer.Option(8, "--top-n", help="How many items in the best-N and worst-N galleries."),
    title: Optional[str] = typer.Option(None, "--title", help="Page title (default: the results folder name)."),  # noqa: UP045
    group_by: list[str] = typer.Option([], "--group-by", help="Column to build a leaderboard on (repeatable; "
                                                              "low-cardinality columns are offered anyway)."),
    render: bool = typer.Option(False, "--render", help="Render meshes that have no --views folder (cached under "
                                                        "RESULTS/.gencritic/report_views)."),
    rig: Rig = "toys4k8",
    resolution: Resolution = 256,
) -> None:
    """Write an HTML report (table, histograms, leaderboards, galleries, correlations) and a Markdown summary.

    Example:

      gencritic report out/ --out out/report.html --views views/
    """
    from gencritic.report.builder import ReportOptions, build_report

    settings = render_settings_from_cli(rig=rig, resolution=resolution)
    opts = ReportOptions(views_dir=views, media_root=media_root, embed=not link, thumb_size=thumb_size, top_n=top_n,
                         title=title, render=render, render_options=render_options(settings), group_by=group_by)
    md_path = markdown or out.with_suffix(".md")
    written = build_report(results, out, markdown=md_path, options=opts)
    typer.echo(f"report: {written.html} ({written.items} items, {written.thumbnails} thumbnails) and {written.markdown}")


@dataclass(frozen=True)
class _Limits:
    """The service options ``serve`` and ``mcp`` share (limits, allow-list, pool)."""

    max_upload_mb: float = 20.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    allow_model: tuple[str, ...] = ()
    max_models: int = DEFAULT_MAX_MODELS
    max_concurrent: int = 1


def _service(model: str, device: str, dtype: str, roots: list[Path], api_key: str | None, cache_dir: Path | None,
             no_cache: bool, limits: _Limits, batch_window_ms: float, max_batch: int, rig: str,
             resolution: int) -> ScoringService:
    from gencritic.serve.service import ScoringService, ServiceConfig, tune_allocator

    render = render_settings_from_cli(rig=rig, resolution=resolution)
    config = ServiceConfig(model=model, device=device, dtype=dtype, roots=roots, api_key=api_key,
                           cache_dir=cache_root(cache_dir, no_cache),
                           max_upload_bytes=int(limits.max_upload_mb * 1024 * 1024), max_pixels=limits.max_pixels,
                           max_frames=limits.max_frames, allow_models=limits.allow_model,
                           max_models=limits.max_models, max_concurrent=limits.max_concurrent,
                           batch_window_ms=batch_window_ms, max_batch=max_batch,
                           render=render_options(render))
    tune_allocator()  # large arrays in their own mappings: see its docstring
    with contextlib.suppress(ImportError):  # mesh loading is optional (gencritic[render])
        from gencritic.mesh import parallel

        parallel.prestart(limits.max_concurrent)  # forked while small, one per heavy job: see its docstring
    service = ScoringService(config)
    atexit.register(service.close)  # its temp folder of uploads goes with the process
    service.warm_up()
    return service


def _until_stopped(run: Callable[[], None], service: ScoringService, stdio: bool = False) -> None:
    """Run a server until Ctrl-C or SIGTERM, then shut down the same way for both.

    uvicorn stops gracefully on either signal and then raises it again; with the default
    SIGTERM action that killed the process before any cleanup (the upload folder, the mesh
    workers). SIGTERM is made a KeyboardInterrupt, like Ctrl-C, and both end here, cleanly.
    ``stdio``: the MCP stdio transport reads stdin on a thread that no signal wakes, so once
    everything is cleaned up the process ends at once instead of waiting for its client to
    close the pipe (it hung there for ever).
    """
    from gencritic.mesh import parallel

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    stopped = False
    try:
        run()
    except KeyboardInterrupt:
        stopped = True
        typer.echo("gencritic: stopped", err=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
        service.close()
        parallel.shutdown()
    if stdio and stopped:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def serve_command(
    host: Host = "127.0.0.1",
    port: Port = 8008,
    root: list[Path] = typer.Option([], "--root", help="Folder whose files requests may name by path (repeatable). "
                                                       "Without it, only uploads are accepted."),
    api_key: ApiKey = None,
    model: Model = DEFAULT_CLIP_MODEL,
    device: Device = "auto",
    dtype: Dtype = "auto",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    max_upload_mb: MaxUploadMb = 20.0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    max_frames: MaxFrames = DEFAULT_MAX_FRAMES,
    allow_model: AllowModel = [],  # noqa: B006 (Typer copies the default)
    max_models: MaxModels = DEFAULT_MAX_MODELS,
    max_concurrent: MaxConcurrent = 1,
    batch_window_ms: float = typer.Option(5.0, "--batch-window-ms", help="How long a request waits for others to "
                                                                         "share its model call."),
    max_batch: int = typer.Option(32, "--max-batch", help="Most requests in one model call."),
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
) -> None:
    """Run the HTTP API (FastAPI + uvicorn). OpenAPI schema at /openapi.json, docs at /docs.

    Example:

      gencritic serve --root data/ --port 8008

      curl -F file=@img.png -F prompt="a red apple" http://127.0.0.1:8008/v1/score/image
    """
    import uvicorn

    from gencritic.serve.http import create_app
    from gencritic.serve.security import check_bind

    check_bind(host, api_key)
    limits = _Limits(max_upload_mb, max_pixels, max_frames, tuple(allow_model), max_models, max_concurrent)
    service = _service(model, device, dtype, root, api_key, cache_dir, no_cache, limits, batch_window_ms,
                       max_batch, rig, resolution)
    app = create_app(service)
    _until_stopped(lambda: uvicorn.run(app, host=host, port=port, log_level="info"), service)


def mcp_command(
    transport: str = typer.Option("stdio", "--transport", help="stdio (an agent starts this process) or http "
                                                               "(streamable HTTP at /mcp)."),
    host: Host = "127.0.0.1",
    port: Port = 8009,
    root: list[Path] = typer.Option([], "--root", help="Folder tools may read (repeatable; default: the current "
                                                       "folder)."),
    api_key: ApiKey = None,
    model: Model = DEFAULT_CLIP_MODEL,
    device: Device = "auto",
    dtype: Dtype = "auto",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
    max_upload_mb: MaxUploadMb = 20.0,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    max_frames: MaxFrames = DEFAULT_MAX_FRAMES,
    allow_model: AllowModel = [],  # noqa: B006 (Typer copies the default)
    max_models: MaxModels = DEFAULT_MAX_MODELS,
    max_concurrent: MaxConcurrent = 1,
) -> None:
    """Run the MCP server: tools evaluate_image, evaluate_asset, diagnose, compare, list_metrics.

    Example (an MCP client config): command "gencritic", args ["mcp", "--root", "/data/renders"]
    """
    from gencritic.errors import InputError
    from gencritic.serve.mcp_server import build_mcp, streamable_http_app
    from gencritic.serve.security import check_bind

    if transport not in ("stdio", "http"):
        raise InputError(f"--transport {transport!r}: use stdio or http")
    if transport == "http":
        check_bind(host, api_key)
    roots = root or [Path(os.getcwd())]
    limits = _Limits(max_upload_mb, max_pixels, max_frames, tuple(allow_model), max_models, max_concurrent)
    service = _service(model, device, dtype, roots, api_key, cache_dir, no_cache, limits, 5.0, 32, rig, resolution)
    mcp = build_mcp(service)
    if transport == "stdio":
        _until_stopped(lambda: mcp.run("stdio"), service, stdio=True)
        return
    import uvicorn

    app = streamable_http_app(service, mcp)
    _until_stopped(lambda: uvicorn.run(app, host=host, port=port, log_level="info"), service)
