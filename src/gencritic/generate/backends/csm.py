"""CSM.ai v3 sessions API: ``POST /v3/sessions/``, ``GET /v3/sessions/{id}``, ``x-api-key``.

Request shapes (one per configuration type)::

    image_to_3d  {"type": "image_to_3d", "input": {"image": <data URI | asset id>, "model": "sculpt",
                  "settings": {"geometry_model": ..., "texture_model": ..., "resolution": ...}}}
    image_to_kit same, with "input.decomposition_model"; the answer adds output.part_meshes
    chat_to_3d   {"type": "chat_to_3d", "messages": [{"type": "user_prompt", "message": <prompt>,
                  "images": [<data URI>]}]}; the answer grows a message of type "image_generation"
                  whose images[].asset is then sent to image_to_3d (the job's second stage)

Every POST carries ``metadata.gencritic_token`` and an ``Idempotency-Key`` header with the
job's client token, and is preceded by ``request.before_send()`` (the job's durable "sent"
mark); a 429 answer to a POST nobody is in doubt about calls ``request.not_sent()``. After a
crash, or after a POST whose answer was lost (timeout, reset, 5xx), the recent sessions are
listed (``GET /v3/sessions/``) and one carrying the token is adopted instead of posting
again. A deployment without that listing cannot answer the question; the runner then asks
the user (the job becomes ``unconfirmed``) rather than guessing either way.

The key is sent only to the API host, never to download URLs (those are often signed
storage links on another host), and every message built from a server answer is redacted.
"""

from __future__ import annotations

import base64
import mimetypes
import random
from collections.abc import Callable
from typing import Any

import httpx

from gencritic import __version__
from gencritic.generate.backends.base import RemoteOutput, RemoteState, StageRequest
from gencritic.remote.clock import Clock
from gencritic.remote.exchange import exchange
from gencritic.remote.keys import ApiKey
from gencritic.remote.retry import (
    ApiError,
    RetryableError,
    RetryPolicy,
    Unconfirmed,
    call_with_retry,
)

DEFAULT_API_URL = "https://api.csm.ai"
MESH_FORMATS = ("glb", "obj", "fbx", "usdz")
TOKEN_FIELD = "gencritic_token"
LOOKUP_PAGE = 100
LOOKUP_MAX_PAGES = 5


class AuthError(ApiError):
    """401/403: the key is wrong or lacks access. Run-level: every job would fail the same way."""


def image_data_uri(data: bytes, name: str) -> str:
    """An image file as ``data:<mime>;base64,...`` (the API accepts it in place of a URL)."""
    mime = mimetypes.guess_type(name)[0] or "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def build_body(request: StageRequest, image_uri: Callable[[], str]) -> dict[str, Any]:
    """The JSON body for one stage (pure: the image is read lazily by ``image_uri``)."""
    config = request.config
    metadata = {TOKEN_FIELD: request.token, "client": f"gencritic/{__version__}", "configuration": config.name}
    if request.stage == "chat":
        return {"type": "chat_to_3d",
                "messages": [{"type": "user_prompt", "message": config.prompt, "images": [image_uri()]}],
                "metadata": metadata}
    if config.type == "chat_to_3d":  # second stage: mesh from the chat's generated image
        if not request.stage_input:
            raise ApiError("chat-to-3D: the chat stage produced no image to turn into 3D")
        image, kind = request.stage_input, "image_to_3d"
    else:
        image, kind = image_uri(), config.type
    inp: dict[str, Any] = {"image": image, "model": "sculpt", "settings": dict(config.settings)}
    if kind == "image_to_kit" and config.decomposition_model:
        inp["decomposition_model"] = config.decomposition_model
    return {"type": kind, "input": inp, "metadata": metadata}


def session_id_of(data: Any) -> str:
    if isinstance(data, dict):
        for key in ("_id", "session_code", "id"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
    raise ApiError("the API answered without a session id (no '_id' in the response)")


def _mesh_urls(entry: Any) -> dict[str, str]:
    data = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(data, dict):
        return {}
    return {fmt: data[f"{fmt}_url"] for fmt in MESH_FORMATS if isinstance(data.get(f"{fmt}_url"), str)}


def parse_session(data: Any, stage: str) -> RemoteState:
    """Map a v3 session document onto :class:`RemoteState` (pure, unit-tested on shapes)."""
    if not isinstance(data, dict):
        raise ApiError("the API answered with something that is not a session object")
    raw = str(data.get("status", ""))
    if raw == "failed":
        error = data.get("error") or data.get("message") or (data.get("output") or {}).get("error")
        return RemoteState("failed", raw, error=f"the session failed remotely: {error or 'no reason given'}")
    if stage == "chat":
        for message in reversed(data.get("messages") or []):
            if not isinstance(message, dict) or message.get("type") != "image_generation":
                continue
            for image in message.get("images") or []:
                asset = image.get("asset") if isinstance(image, dict) else None
                if not isinstance(asset, dict):
                    continue
                if asset.get("status") == "failed":
                    return RemoteState("failed", raw, error="chat-to-3D: image generation failed remotely")
                if asset.get("status") == "complete" and asset.get("_id"):
                    url = (asset.get("data") or {}).get("image_url")
                    images = (RemoteOutput("image", 0, {"png": url}),) if isinstance(url, str) else ()
                    return RemoteState("complete", raw, images, next_input=str(asset["_id"]))
        if raw == "complete":
            return RemoteState("failed", raw, error="chat-to-3D: the chat finished without generating an image")
        return RemoteState("incomplete", raw)
    if raw != "complete":
        return RemoteState("incomplete", raw or "unknown")
    output = data.get("output") or {}
    outputs: list[RemoteOutput] = []
    for i, mesh in enumerate(output.get("meshes") or []):
        urls = _mesh_urls(mesh)
        if urls:
            outputs.append(RemoteOutput("mesh", i, urls))
    for i, part in enumerate(output.get("part_meshes") or []):
        urls = _mesh_urls(part)
        if urls:
            outputs.append(RemoteOutput("part", i, urls))
    if not outputs:
        return RemoteState("failed", raw, error="the session is complete but lists no mesh (output.meshes is empty)")
    return RemoteState("complete", raw, tuple(outputs))


class CsmBackend:
    """The CSM.ai v3 sessions API over httpx."""

    name = "csm"

    def __init__(self, api_url: str, key: ApiKey, clock: Clock, policy: RetryPolicy | None = None,
                 timeout: httpx.Timeout | float = 60.0, rng: random.Random | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not api_url.startswith(("http://", "https://")):
            from gencritic.errors import InputError

            raise InputError(f"--api-url {api_url!r} must start with http:// or https://")
        self.api_url = api_url.rstrip("/")
        self.key = key
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self._http = httpx.Client(base_url=self.api_url, timeout=timeout, transport=transport,
                                  headers={"x-api-key": key.reveal(), "User-Agent": f"gencritic/{__version__}",
                                           "Accept": "application/json"})

    def close(self) -> None:
        self._http.close()

    # -- one HTTP exchange, classified ------------------------------------------------------
    def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request. 2xx -> JSON; 429/5xx/transport -> RetryableError; other -> ApiError."""
        def refused(message: str, status: int) -> Exception:
            return AuthError(f"the API refused the key ({message}); set CSM_API_KEY to a valid key from your CSM "
                             f"profile page", status)

        return exchange(self._http, method, path, clock=self.clock, redact=self.key.redact, refused=refused,
                        **kwargs)

    def _call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        return call_with_retry(lambda: self._once(method, path, **kwargs), what=what, clock=self.clock,
                               policy=self.policy, rng=self.rng)

    # -- Backend ----------------------------------------------------------------------------
    def submit(self, request: StageRequest) -> str:
        def image_uri() -> str:
            return image_data_uri(request.image_path.read_bytes(), request.image_path.name)

        body = build_body(request, image_uri)
        headers = {"Idempotency-Key": request.token, "Content-Type": "application/json"}
        ambiguous = False

        def attempt() -> str:
            nonlocal ambiguous
            doing = "the token lookup (GET /v3/sessions/)"
            try:
                if ambiguous:  # the last POST may have landed: look before posting again
                    found = self._find_once(request.token)
                    if found is not None:
                        return found
                request.before_send()  # durable before the socket write: a kill from here on may have cost
                doing = "the next POST"
                return session_id_of(self._once("POST", "/v3/sessions/", json=body, headers=headers))
            except RetryableError as exc:
                if exc.status is None or exc.status >= 500:  # 429 means "not processed"; the rest may have been
                    ambiguous = True
                elif not ambiguous:
                    request.not_sent()  # a kill during the Retry-After wait leaves nothing in doubt
                raise
            except ApiError as exc:
                if ambiguous:  # a refusal now says nothing about the earlier POST whose answer was lost
                    raise Unconfirmed(f"the answer to an earlier try was lost, then {doing} answered {exc}") \
                        from None
                raise

        return call_with_retry(attempt, what=f"submit {request.config.name}/{request.stage}", clock=self.clock,
                               policy=self.policy, rng=self.rng)

    def _find_once(self, token: str) -> str | None:
        for page in range(LOOKUP_MAX_PAGES):
            data = self._once("GET", "/v3/sessions/", params={"limit": LOOKUP_PAGE, "offset": page * LOOKUP_PAGE})
            results = data.get("results") if isinstance(data, dict) else data
            if not isinstance(results, list):
                raise ApiError("GET /v3/sessions/: the answer has no 'results' list; cannot look up earlier "
                               "submissions")
            for session in results:
                meta = session.get("metadata") if isinstance(session, dict) else None
                if isinstance(meta, dict) and meta.get(TOKEN_FIELD) == token:
                    return session_id_of(session)
            total = data.get("total") if isinstance(data, dict) else None
            seen = (page + 1) * LOOKUP_PAGE
            if len(results) < LOOKUP_PAGE or (isinstance(total, int) and seen >= total):
                return None
        return None

    def find_by_token(self, token: str) -> str | None:
        try:
            return call_with_retry(lambda: self._find_once(token), what="look up an earlier submission",
                                   clock=self.clock, policy=self.policy, rng=self.rng)
        except AuthError:
            raise
        except ApiError as exc:  # say which request answered: the user reads this next to the job
            raise ApiError(f"looking up the token (GET /v3/sessions/) answered {exc}", exc.status) from None

    def poll(self, session_id: str, stage: str) -> RemoteState:
        data = self._call(f"poll {session_id}", "GET", f"/v3/sessions/{session_id}")
        return parse_session(data, stage)
