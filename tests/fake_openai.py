"""A fake OpenAI-compatible chat server on 127.0.0.1 for the VLM endpoint tests.

It answers what gencritic uses, with OpenAI's shapes: ``GET /v1/models`` (``data[].id``) and
``POST /v1/chat/completions`` (``choices[0].message.content``, and with ``logprobs: true`` the
first token's ``logprobs.content[0].top_logprobs``). A test decides the answers (``reply``, a
function of the request body) and scripts faults in order (``fail_next``: statuses for the next
POSTs, with a body that echoes the key, as careless servers do, to check it is redacted).
Every request is recorded (path, headers, JSON body) so tests assert what was sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """The server's answer: the message text and the first token's listed log-probabilities."""

    content: str = "Yes"
    top_logprobs: list[tuple[str, float]] = field(default_factory=lambda: [("Yes", -0.25), ("No", -1.5)])


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # a test closing its client is fine
        pass


class FakeOpenAI:
    def __init__(self, api_key: str | None = "sk-vlm-secret-0123456789", models: tuple[str, ...] = ("fake-vlm",),
                 reply: Callable[[dict[str, Any]], Reply] | None = None, logprobs: bool = True) -> None:
        self.api_key = api_key
        self.models = list(models)
        self.reply = reply or (lambda body: Reply())
        self.logprobs = logprobs  # False: a server that ignores the logprobs request
        self.requests: list[dict[str, Any]] = []
        self.fail_next: list[int] = []
        self._lock = threading.Lock()
        self._server: _QuietServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def posts(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST"]

    @staticmethod
    def prompt_of(body: dict[str, Any]) -> str:
        return next(c["text"] for c in body["messages"][0]["content"] if c["type"] == "text")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, body: Any) -> None:
                with fake._lock:
                    fake.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "body": body})

            def _authorised(self) -> bool:
                if fake.api_key is None:
                    return True
                if self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self._send(401, {"error": {"message": "invalid api key"}})
                return False

            def do_GET(self) -> None:
                self._record(None)
                if not self._authorised():
                    return
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in fake.models]})
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                self._record(body)
                if not self._authorised():
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                with fake._lock:
                    status = fake.fail_next.pop(0) if fake.fail_next else None
                if status is not None:
                    self._send(status, {"error": {"message": f"overloaded (key {fake.api_key} was used)"}})
                    return
                reply = fake.reply(body)
                choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": reply.content}}
                if body.get("logprobs") and fake.logprobs:
                    listed = reply.top_logprobs[: int(body.get("top_logprobs") or 0) or len(reply.top_logprobs)]
                    first = listed[0] if listed else (reply.content[:1], -0.1)
                    choice["logprobs"] = {"content": [{"token": first[0], "logprob": first[1], "top_logprobs": [
                        {"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in listed]}]}
                self._send(200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [choice]})

        return Handler
