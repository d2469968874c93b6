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
roots, models the operator did not allow), 404, 413 (too large), 415 (not an image), 422 (the
item could not be scored), 501 (feature not installed), 503 (model unavailable); the schema
lists every status each endpoint answers. Who may send is decided from the headers before a
byte of the body is read (:class:`Gate`), and the body is then counted as it arrives.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gencritic.errors import GencriticError, InputError
from gencritic.jsonio import dumps_strict
from gencritic.serve.errors import AccessDenied, NotAvailable, describe, label, one_line
from gencritic.serve.security import check_headers
from gencritic.serve.service import ImageJob, ScoringService

API_KEY_HEADER = "X-API-Key"
MULTIPART_OVERHEAD = 64 * 1024  # form boundaries and small fields around an upload
SPOOL_IN_MEMORY = 1024 * 1024
REPLAY_CHUNK = 64 * 1024


class StrictJSONResponse(JSONResponse):
    """Every response body is strict JSON: a NaN or ±inf (a score that did not compute, PSNR of
    identical images) is null, where Starlette's own would fail the request with a 500."""

    def render(self, content: Any) -> bytes:
        return dumps_strict(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class ErrorBody(BaseModel):
    """Every refusal and failure: one line saying what is wrong and, where there is one, the fix."""

    detail: str


class ItemFailedBody(BaseModel):
    """422: the request was valid but its item could not be scored; ``result`` says why."""

    detail: str
    result: dict[str, Any]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    what = {400: "Bad request (unknown metric or profile, malformed fields)", 401: "Missing or wrong API key",
            403: "Remote client without a key, path outside the roots, or a model the operator did not allow",
            404: "No such file under the roots", 413: "Body, file, pixels or frames over this server's limits",
            415: "Not an image (or asset) this server reads", 422: "The item could not be scored",
            501: "Feature not installed here", 503: "Model unavailable"}
    return {code: {"model": ItemFailedBody if code == 422 else ErrorBody, "description": what[code]}
            for code in codes}


AUTH_ERRORS = (401, 403)
INPUT_ERRORS = (400, 401, 403, 404, 413, 415, 422, 501, 503)


def _json_error(status: int, detail: str) -> tuple[Message, Message]:
    body = dumps_strict({"detail": detail}).encode()
    return ({"type": "http.response.start", "status": status,
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]},
            {"type": "http.response.body", "body": body})


class Gate:
    """ASGI middleware, outermost: who may send, then how much.

    The key / loopback / proxy check is made from the headers alone, before the body is read
    (a stranger's 20 MB upload is never received), for every ``/v1`` path. The body is then
    counted as it arrives (no trust in ``Content-Length``, chunked bodies included) and refused
    with 413 past ``limit`` before the app sees any of it; a declared length over the limit is
    refused unread. It is held in a spooled file meanwhile (memory up to 1 MiB, then disk), so
    many large uploads at once do not each hold their bytes in memory twice.
    """

    def __init__(self, app: ASGIApp, service: ScoringService, limit: int) -> None:
        self.app = app
        self.service = service
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        if str(scope.get("path", "")).startswith("/v1"):
            client = scope.get("client")
            try:
                check_headers(client[0] if client else None, headers, self.service.config.api_key)
            except AccessDenied as exc:
                await _send_all(send, _json_error(*describe(exc)))
                return
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await _send_all(send, _json_error(413, _too_large(int(declared), self.limit)))
            return
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            total = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                total += len(chunk)
                if total > self.limit:
                    await _send_all(send, _json_error(413, _too_large(total, self.limit)))
                    return
                spool.write(chunk)
                if not message.get("more_body", False):
                    break
            spool.seek(0)
            left = total

            async def replay() -> Message:
                nonlocal left
                if left <= 0:
                    return await receive()  # the body is told; what comes next is a disconnect
                chunk = spool.read(min(left, REPLAY_CHUNK))
                left -= len(chunk)
                return {"type": "http.request", "body": chunk, "more_body": left > 0}

            await self.app(scope, replay, send)


async def _send_all(send: Send, messages: tuple[Message, ...]) -> None:
    for message in messages:
        await send(message)


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size:,}+ bytes is over this server's limit of {limit:,} bytes (--max-upload-mb)"


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


def create_app(service: ScoringService) -> FastAPI:
    """Build the app around a ready service (models are shared by every request)."""
    import gencritic

    app = FastAPI(title="gencritic", version=gencritic.__version__,
                  description="Score images and 3D assets against prompts, run diagnostics, list metrics. "
                              "Every number comes from the gencritic Python API.",
                  default_response_class=StrictJSONResponse)
    app.state.service = service
    app.add_middleware(Gate, service=service, limit=service.config.max_upload_bytes + MULTIPART_OVERHEAD)
    key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                              description="Required when the server has an API key (always beyond loopback).")

    async def authorise(request: Request, key: str | None = Depends(key_header)) -> None:
        # the Gate has checked already, before the body; this documents the key in the schema
        check_headers(request.client.host if request.client else None,
                      {k.lower(): v for k, v in request.headers.items()}, service.config.api_key)

    for known in (AccessDenied, GencriticError, NotAvailable, ItemFailed):
        app.add_exception_handler(known, _handler)
    app.add_exception_handler(Exception, _handler)  # a bug: 500 with its one line (and logged)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)

    @app.get("/health", tags=["service"])
    def health() -> dict[str, Any]:
        """Liveness: status and version only (details need auth, at /v1/status)."""
        return {"status": "ok", "version": gencritic.__version__}

    api = APIRouter(prefix="/v1", dependencies=[Depends(authorise)])

    @api.get("/status", tags=["service"], responses=_errors(*AUTH_ERRORS))
    def status() -> dict[str, Any]:
        """Loaded models, batching counters, allowed roots and models, limits."""
        return service.health()

    @api.get("/metrics", tags=["metrics"], responses=_errors(*AUTH_ERRORS))
    def metrics() -> list[dict[str, Any]]:
        """Every registered metric with its declared metadata."""
        return service.list_metrics()

    @api.post("/score/image", tags=["score"], responses=_errors(*INPUT_ERRORS))
    async def score_image(
        file: UploadFile | None = File(None, description="The image (PNG, JPEG, WebP, BMP, TIFF, GIF)"),
        path: str | None = Form(None, description="Or: an image under an allowed root"),
        prompt: str | None = Form(None, description="Text the image should match"),
        metrics: str | None = Form(None, description="Comma-separated metric specs (default: clip)"),
    ) -> dict[str, Any]:
        """Score one image; concurrent requests are batched into one model call."""
        from starlette.concurrency import run_in_threadpool

        specs = await run_in_threadpool(service.parse_metrics, metrics)
        upload: Path | None = None
        try:
            if (file is None) == (path is None):
                raise InputError("send exactly one of 'file' (an upload) or 'path' (a file under an allowed root)")
            if file is not None:
                upload = service.save_upload(await file.read(service.config.max_upload_bytes + 1), file.filename)
                job = ImageJob(upload, prompt, label(file.filename or "upload"))
            else:
                job = ImageJob(await run_in_threadpool(service.image_at, str(path)), prompt, label(str(path)))
            result = await service.score_image(job, specs)
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)
        return _checked(result)

    @api.post("/score/asset", tags=["score"], responses=_errors(*INPUT_ERRORS))
    def score_asset(req: AssetRequest) -> dict[str, Any]:
        """Score a mesh (rendered with the server's rig) or a folder of views; per-view scores included."""
        return _checked(service.score_asset(req.path, req.prompt, service.parse_metrics(req.metrics)))

    @api.post("/diagnose", tags=["diagnose"], responses=_errors(*INPUT_ERRORS))
    async def diagnose(
        file: UploadFile | None = File(None, description="An image to diagnose"),
        path: str | None = Form(None, description="Or: an image, animation, video or folder of frames under an "
                                                  "allowed root"),
        profile: str | None = Form(None, description="Diagnose profile (see /v1/profiles)"),
        prompt: str | None = Form(None, description="Text the input should match"),
        reference: str | None = Form(None, description="Reference image under an allowed root"),
    ) -> dict[str, Any]:
        """Diagnostics JSON (passed, overall, scores, diagnostics, suggested_parameters)."""
        from starlette.concurrency import run_in_threadpool

        service.profiles()  # 501 early when diagnose is not installed
        upload: Path | None = None
        try:
            if file is not None and path is None:
                upload = service.save_upload(await file.read(service.config.max_upload_bytes + 1), file.filename)
            return await run_in_threadpool(service.diagnose_input, path, upload,
                                           None if file is None else file.filename, profile, prompt, reference)
        finally:
            if upload is not None:
                upload.unlink(missing_ok=True)

    @api.get("/profiles", tags=["diagnose"], responses=_errors(*AUTH_ERRORS, 501))
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
        return StrictJSONResponse({"detail": one_line(f"could not score: {exc}"), "result": exc.result}, status_code=422)
    status, line = describe(exc)
    return StrictJSONResponse({"detail": line}, status_code=status)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """A request the schema refuses: 400 with one line naming the fields (422 means an item failed)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    parts = [f"{'.'.join(str(x) for x in e.get('loc', ()) if x != 'body') or 'body'}: {e.get('msg', 'invalid')}"
             for e in errors[:5]]
    return StrictJSONResponse({"detail": one_line("invalid request: " + "; ".join(parts or ["malformed"]))},
                        status_code=400)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    detail = exc.detail if isinstance(exc, HTTPException) else str(exc)
    if status == 400 and detail == "There was an error parsing the body":
        detail = "malformed request body: send multipart/form-data (or JSON for /v1/score/asset)"
    return StrictJSONResponse({"detail": one_line(str(detail))}, status_code=status)
