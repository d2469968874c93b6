"""The HTTP API (FastAPI): a thin shell over :class:`~gencritic.serve.service.ScoringService`.

Endpoints (all JSON; the schema is at ``/openapi.json``):

* ``GET  /health``                      liveness (no key needed; tells nothing private)
* ``GET  /v1/metrics``                  the metric registry
* ``POST /v1/score/image``              multipart: ``file`` (upload) *or* ``path`` (under a root),
  ``prompt``, ``metrics``; concurrent calls are micro-batched into one encoder call
* ``POST /v1/score/asset``              JSON ``{path, prompt, metrics}``: a mesh or views folder
* ``POST /v1/diagnose``                 multipart: ``file`` or ``path``, ``profile``, ``prompt``
* ``GET  /v1/profiles``                 diagnose profiles

Errors are ``{"detail": "..."}`` with 400 (bad request), 401/403 (auth, paths outside the
roots), 404, 413 (too large), 415 (not an image), 422 (the item could not be scored),
501 (feature not installed), 503 (model unavailable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gencritic.errors import GencriticError, InputError, ModelUnavailableError
from gencritic.jsonio import dumps_strict
from gencritic.serve.security import AccessDenied, check_client
from gencritic.serve.service import (
    ImageJob,
    NotAvailable,
    ScoringService,
    TooLarge,
    UnsupportedMedia,
)

API_KEY_HEADER = "X-API-Key"
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and small fields around an upload


class StrictJSONResponse(JSONResponse):
    """Every response body is strict JSON: a NaN or ±inf (a score that did not compute, PSNR of
    identical images) is null, where Starlette's own would fail the request with a 500."""

    def render(self, content: Any) -> bytes:
        return dumps_strict(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class BodyLimit:
    """ASGI middleware: refuse bodies over ``limit`` bytes with 413 before the app reads them.

    The body is counted as it arrives (a client may send no Content-Length, or lie in it);
    a declared length over the limit is refused without reading anything.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, int(declared), self.limit)
            return
        chunks: list[Message] = []
        total = 0
        while True:
            message = await receive()
            chunks.append(message)
            if message["type"] != "http.request":
                break
            total += len(message.get("body", b""))
            if total > self.limit:
                await _too_large(send, total, self.limit)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return chunks.pop(0) if chunks else await receive()

        await self.app(scope, replay, send)


async def _too_large(send: Send, size: int, limit: int) -> None:
    body = dumps_strict({"detail": f"request body of {size}+ bytes is over this server's {limit}-byte limit "
                                 f"(--max-upload-mb)"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class AssetRequest(BaseModel):
    """Score a 3D asset under an allowed root: a mesh file or a folder of rendered views."""

    path: str = Field(..., description="Mesh file or views folder, absolute or relative to the first --root")
    prompt: str | None = Field(None, description="Text the asset should match")
    metrics: str | None = Field(None, description="Comma-separated metric specs (default: clip)")


class ItemFailed(Exception):
    """The request was valid but the pipeline failed its item (no prompt, corrupt pixels)."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("error") or "item could not be scored")
        self.result = result


STATUS_FOR: list[tuple[type[BaseException], int]] = [
    (TooLarge, 413), (UnsupportedMedia, 415), (ModelUnavailableError, 503), (InputError, 400),
    (GencriticError, 400), (NotAvailable, 501),
]


def _error_response(exc: BaseException) -> JSONResponse:
    if isinstance(exc, AccessDenied):
        return StrictJSONResponse({"detail": str(exc)}, status_code=exc.status)
    for cls, status in STATUS_FOR:
        if isinstance(exc, cls):
            return StrictJSONResponse({"detail": str(exc)}, status_code=status)
    return StrictJSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)


def create_app(service: ScoringService) -> FastAPI:
    """Build the app around a ready service (models are shared by every request)."""
    import gencritic

    app = FastAPI(title="gencritic", version=gencritic.__version__,
                  description="Score images and 3D assets against prompts, run diagnostics, list metrics. "
                              "Every number comes from the gencritic Python API.",
                  default_response_class=StrictJSONResponse)
    app.state.service = service
    app.add_middleware(BodyLimit, limit=service.config.max_upload_bytes + MULTIPART_OVERHEAD)
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="Required when the server has an API key (always beyond loopback).")

    async def authorise(request: Request, key: str | None = Depends(key_header)) -> None:
        if key is None:
            auth = request.headers.get("authorization", "")
            if auth.lower().startswith("bearer "):
                key = auth[7:].strip()
        check_client(request.client.host if request.client else None, key, service.config.api_key)

    for exc_cls in (AccessDenied, GencriticError, NotAvailable, ItemFailed):
        app.add_exception_handler(exc_cls, _handler)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness: status and version only (details need auth, at /v1/status)."""
        return {"status": "ok", "version": gencritic.__version__}

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorise)])

    @api.get("/status", tags=["service"])
    def status() -> dict[str, Any]:
        """Loaded models, batching counters, allowed roots."""
        return service.health()

    @api.get("/metrics", tags=["metrics"])
    def metrics() -> list[dict[str, Any]]:
        """Every registered metric with its declared metadata."""
        return service.list_metrics()

    @api.post("/score/image", tags=["score"])
    async def score_image(
        file: UploadFile | None = File(None, description="The image (PNG, JPEG, WebP, BMP, TIFF, GIF)"),
        path: str | None = Form(None, description="Or: an image under an allowed root"),
        prompt: str | None = Form(None, description="Text the image should match"),
        metrics: str | None = Form(None, description="Comma-separated metric specs (default: clip)"),
    ) -> dict[str, Any]:
        """Score one image; concurrent requests are batched into one model call."""
        specs = service.parse_metrics(metrics)
        upload: Path | None = None
        try:
            if (file is None) == (path is None):
                raise InputError("send exactly one of 'file' (an upload) or 'path' (a file under an allowed root)")
            if file is not None:
                data = await file.read(service.config.max_upload_bytes + 1)
                upload = service.save_upload(data, file.filename)
                job = ImageJob(upload, prompt, file.filename or "upload")
            else:
                job = ImageJob(service.image_at(str(path)), prompt, str(path))
            result = await service.score_image(job, specs)
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)
        return _checked(result)

    @api.post("/score/asset", tags=["score"])
    def score_asset(req: AssetRequest) -> dict[str, Any]:
        """Score a mesh (rendered with the server's rig) or a folder of views; per-view scores included."""
        return _checked(service.score_asset(req.path, req.prompt, service.parse_metrics(req.metrics)))

    @api.post("/diagnose", tags=["diagnose"])
    async def diagnose(
        file: UploadFile | None = File(None, description="An image to diagnose"),
        path: str | None = Form(None, description="Or: an image, mesh or views folder under an allowed root"),
        profile: str | None = Form(None, description="Diagnose profile (see /v1/profiles)"),
        prompt: str | None = Form(None, description="Text the input should match"),
        reference: str | None = Form(None, description="Reference image under an allowed root"),
    ) -> dict[str, Any]:
        """Diagnostics JSON (passed, overall, scores, diagnostics, suggested_parameters)."""
        from starlette.concurrency import run_in_threadpool

        service.profiles()  # 501 early when diagnose is not installed
        upload: Path | None = None
        try:
            if (file is None) == (path is None):
                raise InputError("send exactly one of 'file' (an upload) or 'path' (under an allowed root)")
            if file is not None:
                upload = service.save_upload(await file.read(service.config.max_upload_bytes + 1), file.filename)
                target = upload
            else:
                target = service.confine(str(path))
            ref = service.image_at(reference) if reference else None
            return await run_in_threadpool(service.diagnose, target, profile, prompt, ref)
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)

    @api.get("/profiles", tags=["diagnose"])
    def profiles() -> list[dict[str, Any]]:
        """Diagnose profiles known to this installation."""
        return [{k: v for k, v in p.items() if k != "path"} if isinstance(p, dict) else {"name": str(p)}
                for p in service.profiles()]

    app.include_router(api)
    return app


def _checked(result: dict[str, Any]) -> dict[str, Any]:
    """An item the pipeline could not score is the caller's problem (422), not a 200 with no score."""
    if not result.get("success"):
        raise ItemFailed(result)
    return result


async def _handler(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ItemFailed):
        return StrictJSONResponse({"detail": f"could not score: {exc}", "result": exc.result}, status_code=422)
    return _error_response(exc)
