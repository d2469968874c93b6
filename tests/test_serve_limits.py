"""One size check for every endpoint and tool (bytes, pixels from the header, frames), and clear
4xx answers, the same line over HTTP and MCP, for inputs the service cannot decode."""

from __future__ import annotations

import asyncio
import io
import struct
import zlib
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
MAX_PIXELS = 20_000
MAX_FRAMES = 6
MAX_BYTES = 60_000


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a few hundred bytes: the decompression-bomb shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def animated_gif(frames: int, size: int) -> bytes:
    images = [Image.new("RGB", (size, size), (40 * i % 255, 90, 30)) for i in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=40, loop=0)
    return buf.getvalue()


def corrupt_gif() -> bytes:
    """Five frames whose later ones are broken: the first decodes, frame 3 does not."""
    data = bytearray(animated_gif(5, 32))
    cut = len(data) * 2 // 3
    data[cut:cut + 40] = b"\xff" * 40
    return bytes(data)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("limits_root")
    make_image(folder / "small.png", size=48)  # 2,304 pixels
    Image.new("RGB", (200, 200), (200, 40, 40)).save(folder / "wide.png")  # 40,000 pixels: over MAX_PIXELS
    (folder / "bomb.png").write_bytes(png_header_only(12000, 12000))
    (folder / "huge_header.png").write_bytes(png_header_only(20000, 20000))  # over Pillow's own bomb limit
    (folder / "many_frames.gif").write_bytes(animated_gif(MAX_FRAMES + 2, 16))  # few pixels, too many frames
    (folder / "heavy_frames.gif").write_bytes(animated_gif(5, 64))  # 5 x 4,096: each frame fits, together not
    (folder / "corrupt.gif").write_bytes(corrupt_gif())
    rng = np.random.default_rng(0)
    fat = io.BytesIO()  # few pixels, many bytes: a PNG of noise with text chunks
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(fat, format="PNG")
    (folder / "fat.png").write_bytes(fat.getvalue() + b"\0" * MAX_BYTES)
    for i in range(MAX_FRAMES + 1):
        make_image(folder / "frames" / f"{i:03d}.png", (20 * i, 100, 100), size=16)
    for i in range(3):
        make_image(folder / "big_views" / f"{i:03d}.png", (20 * i, 100, 100), size=100)  # 3 x 10,000 pixels
    return folder


@pytest.fixture(scope="module")
def service(tiny_clip_dir: Path, root: Path) -> Iterator[ScoringService]:
    config = ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root],
                           max_upload_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    config.max_frames = MAX_FRAMES  # set apart: the fixture then also builds the service of before the check
    svc = ScoringService(config)
    svc.warm_up()
    yield svc
    svc.close()


@pytest.fixture(scope="module")
def client(service: ScoringService) -> TestClient:
    return TestClient(create_app(service), client=LOCAL, raise_server_exceptions=False)


@pytest.mark.parametrize(("path", "words"), [
    ("wide.png", ["200x200", "40,000 pixels", f"{MAX_PIXELS:,} pixels", "--max-pixels"]),
    ("bomb.png", ["12,000x12,000", "--max-pixels"]),
    ("huge_header.png", ["more than Pillow opens", "--max-pixels"]),
    ("many_frames.gif", [f"{MAX_FRAMES + 2} frames", f"{MAX_FRAMES} frames", "--max-frames"]),
    ("heavy_frames.gif", ["64x64 pixels x 5 frames", "--max-pixels"]),
    ("fat.png", ["bytes", "--max-upload-mb"]),
    ("frames", [f"{MAX_FRAMES + 1} images", "--max-frames"]),
])
def test_diagnose_by_path_applies_the_limits(client: TestClient, path: str, words: list[str]) -> None:
    """The hole of the issue: diagnose by path decoded whatever it was given (12 GB for a 420 KB PNG)."""
    resp = client.post("/v1/diagnose", data={"path": path})
    assert resp.status_code == 413, resp.text
    detail = resp.json()["detail"]
    for word in words:
        assert word in detail, detail
    assert path in detail


def test_every_endpoint_applies_the_same_limits(client: TestClient, root: Path) -> None:
    for data in ({"path": "wide.png", "prompt": "x"}, {"path": "fat.png", "prompt": "x"}):
        resp = client.post("/v1/score/image", data=data)
        assert resp.status_code == 413, resp.text
    resp = client.post("/v1/score/image", files={"file": ("b.png", (root / "bomb.png").read_bytes(), "image/png")},
                       data={"prompt": "x"})
    assert resp.status_code == 413 and "12,000x12,000" in resp.json()["detail"]
    resp = client.post("/v1/score/asset", json={"path": "big_views", "prompt": "x"})  # 30,000 pixels of views
    assert resp.status_code == 413 and "--max-pixels" in resp.json()["detail"], resp.text
    resp = client.post("/v1/diagnose", data={"path": "small.png", "reference": "wide.png"})
    assert resp.status_code == 413 and "wide.png" in resp.json()["detail"], resp.text
    resp = client.post("/v1/diagnose", files={"file": ("b.png", (root / "bomb.png").read_bytes(), "image/png")})
    assert resp.status_code == 413, resp.text
    # and what is within the limits is served
    resp = client.post("/v1/score/image", data={"path": "small.png", "prompt": "a red square"})
    assert resp.status_code == 200, resp.text


def test_a_video_is_held_to_the_frame_limit_from_its_header(client: TestClient, root: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(root / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (16, 16))
    if not writer.isOpened():
        pytest.skip("this OpenCV build writes no MP4")
    for i in range(MAX_FRAMES + 4):
        writer.write(np.full((16, 16, 3), 20 * i % 255, np.uint8))
    writer.release()
    resp = client.post("/v1/diagnose", data={"path": "clip.mp4"})
    assert resp.status_code == 413, resp.text
    assert f"{MAX_FRAMES + 4} frames" in resp.json()["detail"] and "--max-frames" in resp.json()["detail"]


def test_corrupt_and_oversized_inputs_are_4xx_with_the_reason(client: TestClient, root: Path) -> None:
    """Both answered 500 (and reset keep-alive) before."""
    resp = client.post("/v1/diagnose", data={"path": "corrupt.gif"})
    assert resp.status_code == 400, resp.text
    detail = resp.json()["detail"]
    assert "frame 3 of corrupt.gif cannot be decoded" in detail and "re-export" in detail
    assert str(root) not in detail  # the client's name, not the server's path
    resp = client.post("/v1/diagnose", data={"path": "huge_header.png"})
    assert resp.status_code == 413


def _tool_error(service: ScoringService, tool: str, args: dict[str, Any]) -> str:
    from mcp.server.mcpserver.exceptions import ToolError

    from gencritic.serve.mcp_server import build_mcp

    mcp = build_mcp(service)
    with pytest.raises(ToolError) as info:
        asyncio.run(mcp.call_tool(tool, args))
    return str(info.value)


@pytest.mark.parametrize(("args", "path"), [({"path": "corrupt.gif"}, "corrupt.gif"),
                                            ({"path": "bomb.png"}, "bomb.png"),
                                            ({"path": "frames"}, "frames"),
                                            ({"path": "small.png", "reference": "wide.png"}, None)])
def test_mcp_diagnose_says_the_same_line(service: ScoringService, client: TestClient, args: dict[str, str],
                                         path: str | None) -> None:
    """MCP said only "Error executing tool diagnose"; it now carries the HTTP service's line."""
    pytest.importorskip("mcp")
    http = client.post("/v1/diagnose", data=args).json()["detail"]
    message = _tool_error(service, "diagnose", args)
    assert message == f"Error executing tool diagnose: {http}"


def test_mcp_tools_apply_the_limits(service: ScoringService) -> None:
    pytest.importorskip("mcp")
    assert "--max-pixels" in _tool_error(service, "evaluate_image", {"path": "wide.png", "prompt": "x"})
    assert "--max-pixels" in _tool_error(service, "compare", {"paths": ["small.png", "bomb.png"], "prompt": "x"})
    assert "--max-pixels" in _tool_error(service, "evaluate_asset", {"path": "big_views", "prompt": "x"})


def test_header_checks_decode_nothing(root: Path) -> None:
    """The check reads headers: a 144-Mpixel PNG header is judged in milliseconds, in kilobytes."""
    import resource
    import time

    from gencritic.serve.errors import TooLarge
    from gencritic.serve.limits import Limits, check_input

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    with pytest.raises(TooLarge):
        check_input(root / "bomb.png", "bomb.png", Limits(max_pixels=MAX_PIXELS), all_frames=True)
    assert time.perf_counter() - started < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB
