"""A vision-language model behind an OpenAI-compatible chat API (vLLM, Ollama, llama.cpp, hosted APIs).

Spec: ``http://127.0.0.1:8000/v1#Qwen/Qwen2-VL-2B-Instruct``: the base URL, and after ``#`` the
model name the server expects. Without ``#model`` the server's ``GET /models`` is asked and its
only model used (a server listing several must be told which: the error lists them).

Each (image, prompt) is one ``POST /chat/completions`` with the image as a PNG data URI,
``temperature: 0`` and a fixed ``seed``: the closest an API comes to greedy decoding (a server
that batches requests on a GPU may still vary in the last bits; the answer cache then keeps the
first answer). First-token probabilities come from ``logprobs``/``top_logprobs`` at the first
reply position: a token the server did not list has no probability here (None), never a guess.

The key is read from an environment variable (``GENCRITIC_VLM_API_KEY`` unless told otherwise),
sent only as the ``Authorization`` header, and never written or logged: it lives in an
:class:`~gencritic.remote.keys.ApiKey` and every message built from a server answer is redacted.
Transient failures (429, 5xx, timeouts, resets) are retried with the project's bounded backoff
(:mod:`gencritic.remote.retry`: 2, 4, 8 s, three retries, ``Retry-After`` honoured); anything else
fails that request at once with the server's own message.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import random
from collections.abc import Sequence
from typing import Any

import httpx
from PIL import Image

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.models.vlm_base import DEFAULT_MAX_SIDE, SEED, VLMRequestError, prepare_image
from gencritic.remote.clock import Clock, SystemClock
from gencritic.remote.exchange import exchange
from gencritic.remote.keys import ApiKey, redact
from gencritic.remote.retry import (
    ApiError,
    RetriesExhausted,
    RetryPolicy,
    call_with_retry,
)
from gencritic.version import __version__

log = logging.getLogger("gencritic.vlm")

DEFAULT_KEY_ENV = "GENCRITIC_VLM_API_KEY"
TOP_LOGPROBS = 20  # OpenAI's maximum; vLLM allows more with --max-logprobs


def png_data_uri(image: Image.Image) -> str:
    """The image as ``data:image/png;base64,...`` (lossless, and the same bytes every time)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class EndpointVLM:
    """:class:`~gencritic.models.vlm.VisionLanguageModel` over an OpenAI-compatible server."""

    preferred_batch = 1  # one request per (image, prompt): a failure then fails one item

    def __init__(self, base_url: str, model_name: str, key: ApiKey | None, *, key_env: str = DEFAULT_KEY_ENV,
                 max_side: int | None = DEFAULT_MAX_SIDE, clock: Clock | None = None,
                 policy: RetryPolicy | None = None, timeout_s: float = 120.0,
                 transport: httpx.BaseTransport | None = None, top_logprobs: int = TOP_LOGPROBS) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.model_id = f"{self.base_url}#{model_name}"
        self.key = key
        self.key_env = key_env
        self.max_side = max_side
        self.clock = clock or SystemClock()
        self.policy = policy or RetryPolicy()
        self.rng = random.Random(SEED)  # jitter of the backoff: seeded, so a run's waits repeat
        self.top_logprobs = top_logprobs
        self.requests = 0  # HTTP requests sent (tests assert cache hits and bounded retries with it)
        headers = {"User-Agent": f"gencritic/{__version__}", "Accept": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key.reveal()}"
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout_s, connect=10.0),
                                  transport=transport, headers=headers)

    def close(self) -> None:
        self._http.close()

    def settings(self) -> dict[str, Any]:
        return {"backend": "openai-compatible", "max_side": self.max_side, "temperature": 0, "seed": SEED,
                "top_logprobs": self.top_logprobs}

    def _redact(self, text: str) -> str:
        return self.key.redact(text) if self.key is not None else text

    # -- one exchange, classified -----------------------------------------------------------
    def _once(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests += 1

        def refused(message: str, _status: int) -> Exception:
            return ModelUnavailableError(f"the VLM endpoint {self.base_url} refused the request ({message}); set "
                                         f"{self.key_env} to a key it accepts")

        return exchange(self._http, method, path, clock=self.clock, redact=self._redact, refused=refused,
                        server="the server", message_keys=("error", "message", "detail"), **kwargs)

    def _call(self, what: str, method: str, path: str, **kwargs: Any) -> Any:
        try:
            return call_with_retry(lambda: self._once(method, path, **kwargs), what=what, clock=self.clock,
                                   policy=self.policy, rng=self.rng)
        except (ApiError, RetriesExhausted) as exc:
            raise VLMRequestError(self._redact(f"{self.model_id}: {exc}")) from None

    def _chat(self, image: Image.Image, prompt: str, max_tokens: int, logprobs: bool) -> dict[str, Any]:
        content = [{"type": "image_url", "image_url": {"url": png_data_uri(prepare_image(image, self.max_side))}},
                   {"type": "text", "text": prompt}]
        body: dict[str, Any] = {"model": self.model_name, "messages": [{"role": "user", "content": content}],
                                "max_tokens": max_tokens, "temperature": 0, "seed": SEED, "n": 1, "stream": False}
        if logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        log.debug("POST %s/chat/completions (model %s, %d prompt characters)", self.base_url, self.model_name,
                  len(prompt))
        data = self._call("VLM request", "POST", "/chat/completions", json=body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise VLMRequestError(f"{self.model_id}: the answer has no 'choices' (not an OpenAI-compatible reply)")
        return choices[0]

    # -- VisionLanguageModel --------------------------------------------------------------------
    def first_token_logprobs(self, images: Sequence[Image.Image], prompts: Sequence[str],
                             answers: Sequence[str]) -> list[list[float | None]]:
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            choice = self._chat(image, prompt, max_tokens=1, logprobs=True)
            content = (choice.get("logprobs") or {}).get("content") if isinstance(choice.get("logprobs"), dict) \
                else None
            if not isinstance(content, list) or not content:
                raise VLMRequestError(
                    f"{self.model_id} returned no logprobs; first-token probabilities need a server that answers "
                    f"'logprobs' (vLLM, llama.cpp's server, recent Ollama, OpenAI)")
            first = content[0]
            listed: dict[str, float] = {}
            for entry in [first, *(first.get("top_logprobs") or [])]:
                if isinstance(entry, dict) and isinstance(entry.get("token"), str) and \
                        isinstance(entry.get("logprob"), (int, float)):
                    listed.setdefault(entry["token"], float(entry["logprob"]))
            out.append([listed.get(a) for a in answers])
        return out

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            message = self._chat(image, prompt, max_tokens=max_new_tokens, logprobs=False).get("message")
            text = message.get("content") if isinstance(message, dict) else None
            if not isinstance(text, str):
                raise VLMRequestError(f"{self.model_id}: the answer has no message content")
            out.append(text.strip())
        return out


def connect_endpoint(spec: str, *, api_key_env: str = DEFAULT_KEY_ENV, max_side: int | None = DEFAULT_MAX_SIDE,
                     **options: Any) -> EndpointVLM:
    """An :class:`EndpointVLM` for ``URL[#model]``; without a model name the server's only model."""
    url, _, model_name = spec.strip().partition("#")
    if not url.startswith(("http://", "https://")):
        raise InputError(f"VLM endpoint {spec!r} must start with http:// or https://")
    raw_key = os.environ.get(api_key_env, "").strip()
    key = ApiKey(raw_key) if raw_key else None
    vlm = EndpointVLM(url, model_name.strip() or "?", key, key_env=api_key_env, max_side=max_side, **options)
    if model_name.strip():
        return vlm
    try:
        data = vlm._call("list models", "GET", "/models")
    except VLMRequestError as exc:
        vlm.close()
        raise ModelUnavailableError(f"cannot reach the VLM endpoint {url}: {exc}; start the server or fix the URL, "
                                    f"or name the model as {url}#MODEL") from None
    ids = [m.get("id") for m in (data.get("data") or [])] if isinstance(data, dict) else []
    ids = [i for i in ids if isinstance(i, str)]
    if len(ids) != 1:
        vlm.close()
        listed = ", ".join(ids) if ids else "none"
        raise InputError(f"the VLM endpoint {url} serves {len(ids)} models ({redact(listed, raw_key)}); name one as "
                         f"{url}#MODEL")
    vlm.model_name = ids[0]
    vlm.model_id = f"{vlm.base_url}#{ids[0]}"
    return vlm
