"""gencritic as an MCP server (official ``mcp`` SDK, v2 ``MCPServer``): the asset evaluator of
an agent loop (script generator -> Blender executor -> evaluator).

Tools, each with a JSON schema derived from the typed signature below:

* ``evaluate_image(path, prompt, metrics)``  scores of one image
* ``evaluate_asset(path, prompt, metrics)``  scores of a mesh (rendered) or a views folder, per view too
* ``diagnose(path, profile, prompt, reference)``  the diagnose JSON (passed, overall, scores,
  diagnostics, suggested_parameters): what the agent acts on
* ``compare(paths, prompt, metrics)``  several candidates for one prompt, ranked best first
* ``list_metrics()``  the registry

Every tool result is strict JSON (:func:`gencritic.jsonio.to_jsonable`: NaN and ±inf are null),
since the SDK would otherwise send bare NaN/Infinity, which JSON-RPC clients reject.

Like the HTTP service it is a shell over :class:`ScoringService`: the same model pool,
micro-batcher and path confinement. Paths are confined to ``roots`` (the current folder
when none are given, since a stdio server runs on the user's own machine for the user).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from gencritic.jsonio import to_jsonable
from gencritic.serve.errors import AccessDenied, describe, label
from gencritic.serve.service import ImageJob, ScoringService

MAX_COMPARE = 64


@contextmanager
def _tool_errors() -> Iterator[None]:
    """Every failure reaches the agent as the one line the HTTP service would send (the SDK
    replaces anything but a ToolError by "Error executing tool NAME", with no reason)."""
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        yield
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(describe(exc)[1]) from None


def build_mcp(service: ScoringService) -> Any:
    """An ``MCPServer`` whose tools call ``service`` (models loaded once, shared by all calls)."""
    from mcp.server.mcpserver import MCPServer

    import gencritic

    mcp = MCPServer("gencritic", version=gencritic.__version__,
                    instructions="Evaluate generated images and 3D assets: CLIP scores against a prompt, "
                                 "diagnostics with suggested parameter changes, ranked comparisons. Paths must lie "
                                 f"under: {', '.join(str(r) for r in service.roots.paths)}.")

    def image_path(path: str) -> Path:
        return service.image_at(path)  # under a root, within the limits

    @mcp.tool(description="Score one image against a prompt (CLIP score raw and x100 by default). "
                          "Returns {scores, success, error, model, settings_id}.")
    async def evaluate_image(
        path: Annotated[str, Field(description="Image file, absolute or relative to the first root")],
        prompt: Annotated[str, Field(description="Text the image should match", min_length=1)],
        metrics: Annotated[str, Field(description="Comma-separated metric specs, see list_metrics")] = "clip",
    ) -> dict[str, Any]:
        with _tool_errors():
            specs = service.parse_metrics(metrics)
            return to_jsonable(await service.score_image(ImageJob(image_path(path), prompt, label(path)), specs))

    @mcp.tool(description="Score a 3D asset: a mesh file (rendered with the server's camera rig) or a folder "
                          "of rendered views. Returns the mean over views and every view's score.")
    def evaluate_asset(
        path: Annotated[str, Field(description="Mesh file (.glb/.obj/.ply/...) or folder of views")],
        prompt: Annotated[str, Field(description="Text the asset should match", min_length=1)],
        metrics: Annotated[str, Field(description="Comma-separated metric specs")] = "clip",
    ) -> dict[str, Any]:
        with _tool_errors():
            return to_jsonable(service.score_asset(path, prompt, service.parse_metrics(metrics)))

    @mcp.tool(description="Diagnose an image or frame sequence against a profile: returns {passed, overall, "
                          "scores, diagnostics, suggested_parameters, ...} to drive the next generation step.")
    def diagnose(
        path: Annotated[str, Field(description="Image, GIF/MP4 or folder of frames under a root")],
        profile: Annotated[str | None, Field(description="Profile name (default: the diagnose default)")] = None,
        prompt: Annotated[str | None, Field(description="Text it should match (enables CLIP checks)")] = None,
        reference: Annotated[str | None, Field(description="Reference image under a root")] = None,
    ) -> dict[str, Any]:
        with _tool_errors():
            return to_jsonable(service.diagnose_input(path, None, None, profile, prompt, reference))

    @mcp.tool(description="Rank several candidate images for one prompt, best first by the first metric's "
                          "primary column (direction from the metric's declaration).")
    def compare(
        paths: Annotated[list[str], Field(description="Candidate images", min_length=1, max_length=MAX_COMPARE)],
        prompt: Annotated[str, Field(description="Text the candidates should match", min_length=1)],
        metrics: Annotated[str, Field(description="Comma-separated metric specs")] = "clip",
    ) -> dict[str, Any]:
        from gencritic.metrics.registry import create_metric

        with _tool_errors():
            specs = service.parse_metrics(metrics)
            jobs = [ImageJob(image_path(p), prompt, label(p)) for p in paths]
            results = service.score_images_now(jobs, specs)
            head = create_metric(specs[0])
        column = head.info.columns[0]
        scored = [r for r in results if r["success"] and r["scores"].get(column) is not None]
        ranked = sorted(scored, key=lambda r: r["scores"][column], reverse=head.info.higher_is_better)
        return to_jsonable({"prompt": prompt, "ranked_by": column, "higher_is_better": head.info.higher_is_better,
                            "ranking": [r["input"] for r in ranked], "results": results,
                            "failed": [r["input"] for r in results if r not in scored]})

    @mcp.tool(description="List every metric: name, inputs, output columns, range, direction, default model, paper.")
    def list_metrics() -> dict[str, Any]:
        return to_jsonable({"metrics": service.list_metrics()})  # open ranges: null, not -Infinity

    return mcp


def streamable_http_app(service: ScoringService, mcp: Any) -> Any:
    """The streamable-HTTP ASGI app, behind the same key/loopback check as the HTTP service."""
    from starlette.responses import JSONResponse

    from gencritic.serve.security import check_headers

    inner = mcp.streamable_http_app(streamable_http_path="/mcp", max_request_body_size=service.config.max_upload_bytes)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":  # checked from the headers, before any of the body is read
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
            client = scope.get("client")
            try:
                check_headers(client[0] if client else None, headers, service.config.api_key)
            except AccessDenied as exc:
                await JSONResponse({"detail": str(exc)}, status_code=exc.status)(scope, receive, send)
                return
        await inner(scope, receive, send)

    return app
