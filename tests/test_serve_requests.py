"""How the HTTP service treats a request before and after scoring: who may send (proxies, the key
before the body), what it says back (the client's names, never the server's temp paths; long
names cut), the statuses its schema documents, and the upload folders it leaves behind."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from gencritic.serve.http import create_app
from gencritic.serve.service import ScoringService, ServiceConfig
from tests.conftest import make_image

LOCAL = ("127.0.0.1", 50000)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("requests_root")
    make_image(folder / "red.png", (220, 20, 20))
    return folder


@pytest.fixture(scope="module")
def service(tiny_clip_dir: Path, root: Path) -> Iterator[ScoringService]:
    svc = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root]))
    svc.warm_up()
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(service: ScoringService) -> TestClient:
    return TestClient(create_app(service), client=LOCAL, raise_server_exceptions=False)


@pytest.mark.parametrize("headers", [{"Forwarded": "for=203.0.113.9;proto=https"},
                                     {"Forwarded": 'for="[2001:db8::1]:4711"'},
                                     {"Forwarded": "for=unknown"},
                                     {"X-Real-IP": "203.0.113.9"},
                                     {"X-Forwarded-For": "127.0.0.1, 198.51.100.7"}])
def test_a_client_a_proxy_names_is_remote_whatever_the_header(client: TestClient, headers: dict[str, str]) -> None:
    """Only X-Forwarded-For counted before: behind a proxy sending Forwarded or X-Real-IP, every
    remote client looked local and the keyless service served them."""
    resp = client.get("/v1/metrics", headers=headers)
    assert resp.status_code == 403, resp.text
    assert "not on loopback" in resp.json()["detail"]


def test_the_mcp_http_app_applies_the_same_rule(service: ScoringService) -> None:
    pytest.importorskip("mcp")
    from gencritic.serve.mcp_server import build_mcp, streamable_http_app

    mcp_app = TestClient(streamable_http_app(service, build_mcp(service)), client=LOCAL)
    for headers in ({"Forwarded": "for=203.0.113.9"}, {"X-Real-IP": "203.0.113.9"}):
        resp = mcp_app.post("/mcp", json={}, headers=headers)
        assert resp.status_code == 403 and "not on loopback" in resp.json()["detail"]


def test_a_local_client_through_a_local_proxy_is_served(client: TestClient) -> None:
    for headers in ({"X-Forwarded-For": "127.0.0.1"}, {"Forwarded": "for=127.0.0.1"}, {"X-Real-IP": "::1"}):
        assert client.get("/v1/metrics", headers=headers).status_code == 200


def test_forwarded_clients_parses_every_header() -> None:
    from gencritic.serve.security import forwarded_clients

    got = forwarded_clients({"forwarded": 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"',
                             "x-forwarded-for": "10.0.0.1, 127.0.0.1", "x-real-ip": "198.51.100.1"})
    assert got == ["192.0.2.60", "[2001:db8:cafe::17]:4711", "10.0.0.1", "127.0.0.1", "198.51.100.1"]
    assert forwarded_clients({}) == []


def test_the_key_is_checked_before_the_body_is_read(service: ScoringService, tiny_clip_dir: Path,
                                                    root: Path) -> None:
    """A stranger's upload was buffered whole (up to the body limit) before the 401."""
    keyed = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root],
                                         api_key="s3cret"), pool=service.pool)
    app = create_app(keyed)
    reads = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 65536, "more_body": reads < 100}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/v1/score/image", "raw_path": b"/v1/score/image", "query_string": b"",
             "root_path": "", "headers": [(b"content-type", b"multipart/form-data; boundary=x")],
             "client": ("10.9.8.7", 5000), "server": ("testserver", 80)}
    try:
        asyncio.run(app(scope, receive, send))
    finally:
        keyed.close()
    assert sent[0]["status"] == 401
    assert reads == 0


def test_errors_name_the_clients_file_never_the_servers(client: TestClient, service: ScoringService) -> None:
    """A truncated JPEG passes the header check and fails in the pipeline: its 422 said
    "cannot decode image /tmp/gencritic-serve-.../1f3a....jpg"."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    truncated = buf.getvalue()[: len(buf.getvalue()) // 2]
    resp = client.post("/v1/score/image", files={"file": ("holiday.jpg", truncated, "image/jpeg")},
                       data={"prompt": "a green square"})
    assert resp.status_code == 422, resp.text
    text = resp.text
    assert "holiday.jpg" in resp.json()["detail"] and "holiday.jpg" in resp.json()["result"]["error"]
    assert "gencritic-serve-" not in text and str(service.uploads.path) not in text


def test_long_names_are_cut(client: TestClient) -> None:
    """A 5,000-character path was echoed back whole."""
    long = "a/" * 2500 + "x.png"
    resp = client.post("/v1/score/image", data={"path": long, "prompt": "x"})
    assert 400 <= resp.status_code < 500
    detail = resp.json()["detail"]
    assert len(detail) < 400 and f"({len(long)} characters)" in detail
    resp = client.post("/v1/score/image", data={"path": "red.png", "prompt": "x", "metrics": "n" * 5000})
    assert resp.status_code == 400 and len(resp.json()["detail"]) < 400


def test_the_schema_lists_every_status(client: TestClient) -> None:
    """Only 200 and 422 were documented, so schemathesis' conformance checks could not pass."""
    schema = client.get("/openapi.json").json()
    for path in ("/v1/score/image", "/v1/score/asset", "/v1/diagnose"):
        statuses = set(schema["paths"][path]["post"]["responses"])
        assert {"200", "400", "401", "403", "404", "413", "415", "422", "501", "503"} <= statuses, path
        ref = schema["paths"][path]["post"]["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/ItemFailedBody")
    for path in ("/v1/metrics", "/v1/status", "/v1/profiles"):
        assert {"200", "401", "403"} <= set(schema["paths"][path]["get"]["responses"]), path


def test_a_request_the_schema_refuses_is_400_with_one_line(client: TestClient) -> None:
    resp = client.post("/v1/score/asset", json={"prompt": "x"})
    assert resp.status_code == 400
    assert resp.json() == {"detail": "invalid request: path: Field required"}
    resp = client.post("/v1/score/asset", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and isinstance(resp.json()["detail"], str)


def test_upload_folders_of_dead_services_are_removed_at_start(tmp_path: Path, tiny_clip_dir: Path, root: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A service killed with -9 left /tmp/gencritic-serve-* with its uploads in flight for ever."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    stale = tmp_path / f"gencritic-serve-{int(dead.stdout)}-abcd1234"
    stale.mkdir()
    (stale / "upload.png").write_bytes(b"in flight")
    live = tmp_path / f"gencritic-serve-{os.getppid()}-live0000"  # a running process: kept
    live.mkdir()
    svc = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root]),
                         pool=object())  # type: ignore[arg-type]
    try:
        assert not stale.exists()
        assert live.exists()
        own = [p for p in tmp_path.iterdir() if p.name.startswith(f"gencritic-serve-{os.getpid()}-")]
        assert len(own) == 1
    finally:
        svc.close()
    assert not own[0].exists()
