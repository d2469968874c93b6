"""Real sockets on 127.0.0.1: the HTTP app and the MCP streamable-HTTP app under uvicorn (in a
thread), plus the commands' refusal to bind beyond loopback without a key."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.errors import InputError
from gencritic.serve.http import create_app
from gencritic.serve.mcp_server import build_mcp, streamable_http_app
from gencritic.serve.service import ScoringService, ServiceConfig
from tests.conftest import make_image


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """uvicorn on 127.0.0.1 in a thread of this process (no second interpreter to import torch into)."""

    def __init__(self, asgi_app: object) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(asgi_app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live_root")
    make_image(folder / "red.png", (220, 20, 20))
    return folder


@pytest.fixture(scope="module")
def service(root: Path, tiny_clip_dir: Path) -> Iterator[ScoringService]:
    svc = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root]))
    svc.warm_up()
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def http_server(service: ScoringService) -> Iterator[str]:
    with _Server(create_app(service)) as url:
        yield url


def test_serve_over_real_http(http_server: str, root: Path, tiny_clip_dir: Path) -> None:
    from gencritic.scoring import ScoreOptions, score

    up = httpx.post(f"{http_server}/v1/score/image", files={"file": ("r.png", (root / "red.png").read_bytes())},
                    data={"prompt": "a red square"}, timeout=60)
    by_path = httpx.post(f"{http_server}/v1/score/image", data={"path": "red.png", "prompt": "a red square"}, timeout=60)
    assert up.status_code == 200 and by_path.status_code == 200, (up.text, by_path.text)
    expected = score(root / "red.png", prompt="a red square", options=ScoreOptions(
        model=str(tiny_clip_dir), device="cpu", dtype="fp32", cache_dir=None, progress=False)).rows[0]["clip_score"]
    assert up.json()["scores"]["clip_score"] == expected == by_path.json()["scores"]["clip_score"]
    assert httpx.post(f"{http_server}/v1/score/image", data={"path": "../../etc/passwd", "prompt": "x"}).status_code == 403
    assert "/v1/score/image" in httpx.get(f"{http_server}/openapi.json").json()["paths"]
    proxied = httpx.get(f"{http_server}/v1/metrics", headers={"x-forwarded-for": "203.0.113.9"})
    assert proxied.status_code == 403  # a remote client via a local proxy is still remote


def test_serve_refuses_public_bind_without_key() -> None:
    for cmd in (["serve", "--host", "0.0.0.0"], ["mcp", "--transport", "http", "--host", "0.0.0.0"]):
        result = CliRunner().invoke(app, [*cmd, "--model", "/nonexistent"], env={"GENCRITIC_API_KEY": ""})
        assert isinstance(result.exception, InputError), result.output
        assert "API key" in str(result.exception)  # refused before any model is loaded


def test_mcp_streamable_http(service: ScoringService) -> None:
    from mcp.client import Client

    mcp = build_mcp(service)
    with _Server(streamable_http_app(service, mcp)) as url:
        async def session() -> tuple[set[str], dict]:
            async with Client(f"{url}/mcp", read_timeout_seconds=60) as client:
                tools = {t.name for t in (await client.list_tools()).tools}
                result = await client.call_tool("evaluate_image", {"path": "red.png", "prompt": "a red square"})
                assert not result.is_error, result.content
                return tools, result.structured_content or {}

        tools, body = asyncio.run(session())
        # behind a local reverse proxy the real client is remote: no key configured, so refused
        proxied = httpx.post(f"{url}/mcp", json={}, headers={"x-forwarded-for": "203.0.113.9"})
        assert proxied.status_code == 403 and "not on loopback" in proxied.json()["detail"]
    assert {"evaluate_image", "evaluate_asset", "diagnose", "compare", "list_metrics"} <= tools
    assert body["success"] is True and isinstance(body["scores"]["clip_score"], float)


def test_mcp_http_requires_key_when_set(service: ScoringService, tiny_clip_dir: Path, root: Path) -> None:
    keyed = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root],
                                         api_key="k3y"), pool=service.pool)
    with _Server(streamable_http_app(keyed, build_mcp(keyed))) as url:
        assert httpx.post(f"{url}/mcp", json={}).status_code == 401
        assert httpx.post(f"{url}/mcp", json={}, headers={"X-API-Key": "k3y"}).status_code != 401
    keyed.close()
