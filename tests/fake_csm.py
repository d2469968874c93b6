"""A fake CSM.ai v3 sessions API on 127.0.0.1 for the generation tests.

It implements what gencritic uses, with the documented shapes: ``POST /v3/sessions/``
(image_to_3d, image_to_kit, chat_to_3d; ``x-api-key``; validation -> 400/422),
``GET /v3/sessions/{id}`` (``status`` incomplete -> complete/failed, ``output.meshes[].data.
glb_url/obj_url``, ``output.part_meshes`` for kits, chat ``messages`` that grow an
``image_generation`` asset), ``GET /v3/sessions/`` (recent sessions, newest first), and the
files behind the URLs. Faults are scripted per route, in order, so a test says exactly
what the next requests meet: a 429 burst with or without ``Retry-After``, 500s, a hung
connection (optionally after the session was created), a truncated body.

Modes for the kill tests: ``listing=False`` is an API without ``GET /v3/sessions/`` (as the
API reference documents none: it answers 404, like an undeclared route); ``throttle_rate``
answers that share of POSTs 429 with ``Retry-After`` (seeded); ``on_request`` is called at
each request's ``received``, ``created`` (a POST's session exists, its answer not sent) and
``answered`` moments (with the status answered, 0 before that), which is where a test can
kill its client; ``paid_per_job`` counts
the sessions created per job, i.e. what was paid for.
"""

from __future__ import annotations

import functools
import hashlib
import io
import itertools
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from gencritic.generate.runner import GenerateSettings, Runner, backend_factory
from gencritic.remote.keys import ApiKey
from gencritic.remote.retry import RetryPolicy

GEOMETRY = {"base", "turbo"}
TEXTURE = {"none", "baked", "pbr"}


@functools.lru_cache(maxsize=32)
def make_glb(kind: str = "box", scale: float = 1.0) -> bytes:
    """A small real GLB made with trimesh (a box, a sphere or a cylinder)."""
    import trimesh

    if kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=1, radius=0.5 * scale)
    elif kind == "cylinder":
        mesh = trimesh.creation.cylinder(radius=0.3 * scale, height=scale, sections=12)
    else:
        mesh = trimesh.creation.box(extents=(scale, 0.6 * scale, 0.4 * scale))
    mesh.visual.face_colors = [200, 60, 40, 255]
    buf = io.BytesIO()
    mesh.export(buf, file_type="glb")
    return buf.getvalue()


def make_part_glb(kind: str, offset: tuple[float, float, float], colour: tuple[int, int, int],
                  glowing: bool = False) -> bytes:
    """A kit part as a decomposing API delivers it: the part's geometry at the origin, placed in the
    kit's frame by its node's transform (so only a loader that applies transforms puts it right).
    ``glowing``: its colour is a material's, which is also emissive."""
    import numpy as np
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=1, radius=0.5) if kind == "sphere" else \
        trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    if glowing:
        mesh.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
            name="glow", baseColorFactor=[*colour, 255], emissiveFactor=[1.0, 1.0, 1.0]))
    else:
        mesh.visual.face_colors = [*colour, 255]
    placement = np.eye(4)
    placement[:3, 3] = offset
    scene = trimesh.Scene()
    scene.add_geometry(mesh, node_name=f"{kind}-part", transform=placement)
    buf = io.BytesIO()
    scene.export(buf, file_type="glb")
    return buf.getvalue()


@dataclass
class Fault:
    """One scripted answer: an HTTP status (+ headers/body), a hang, or a truncated body."""

    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    hang_s: float = 0.0
    after_create: bool = False  # POST only: create the session, then misbehave
    truncate: bool = False  # files only: send half the body with the full Content-Length


class _QuietServer(ThreadingHTTPServer):
    """A client killed mid-request is expected here: no traceback for its reset connection."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


class FakeCsm:
    """The server and its state. ``url`` is the base URL; ``posts`` counts POSTs."""

    def __init__(self, api_key: str = "sk-test-0123456789abcdef", polls_to_complete: int = 1,
                 listing: bool = True, seed: int = 0) -> None:
        self.api_key = api_key
        self.polls_to_complete = polls_to_complete
        self.listing = listing  # False: no GET /v3/sessions/ (404), so a lost answer cannot be looked up
        self.throttle_rate = 0.0  # share of POSTs answered 429 + Retry-After before anything is created
        self.throttle_retry_after = "0.2"
        self.rng = random.Random(seed)
        self.on_request: Callable[[str, str, str, int], None] | None = None  # (method, path, phase, status)
        self.sessions: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, list[Fault]] = {}
        self.log: list[tuple[str, str, int]] = []  # (method, path, status answered)
        self.requests: list[tuple[str, dict[str, str]]] = []  # (path, headers) of every request
        self.post_delay_s = 0.0  # latency of every POST (lets two clients overlap)
        self.fail_sessions: set[str] = set()  # configuration names whose sessions fail remotely
        # kits answered with output.part_meshes only, no assembled mesh (what seed-style harnesses get)
        self.kit_parts_only = False
        self.parts_per_kit = 3
        self.mesh_for: Callable[[dict[str, Any], int, str], bytes] = lambda s, i, kind: make_glb(
            ("box", "sphere", "cylinder")[i % 3])
        self.lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stop = threading.Event()
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    # -- control ----------------------------------------------------------------------------
    def start(self) -> FakeCsm:
        for kind in ("box", "sphere", "cylinder"):  # build meshes up front: trimesh's import is slow
            make_glb(kind)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def script(self, route: str, *faults: Fault) -> None:
        """Queue faults for a route: 'POST sessions', 'GET session', 'GET list', 'GET file'."""
        with self.lock:
            self.faults.setdefault(route, []).extend(faults)

    @property
    def posts(self) -> int:
        return sum(1 for m, p, s in self.log if m == "POST" and s in (200, 201))

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p, _ in self.log if m == method and p.startswith(prefix))

    def paid_per_job(self) -> Counter[tuple[str, str, str]]:
        """Sessions created per (configuration, stage type, input image digest): each one is paid.

        The key is what the client's job identity amounts to on the wire, independent of the
        token, so a job re-sent under a new token still counts as a duplicate.
        """
        out: Counter[tuple[str, str, str]] = Counter()
        with self.lock:
            for s in self.sessions.values():
                image = (s["input"].get("image") if s["type"] != "chat_to_3d"
                         else s["messages"][0]["images"][0])
                digest = hashlib.sha256(str(image).encode()).hexdigest()[:16]
                out[(str(s["metadata"].get("configuration")), s["type"], digest)] += 1
        return out

    def _event(self, method: str, path: str, phase: str, status: int = 0) -> None:
        hook = self.on_request
        if hook is not None:
            hook(method, path, phase, status)

    def finish_all(self) -> None:
        """Make every session complete at its next poll."""
        with self.lock:
            for s in self.sessions.values():
                s["_polls_left"] = 0

    # -- behaviour --------------------------------------------------------------------------
    def _new_id(self) -> str:
        return f"SESSION_{1700000000 + next(self._ids)}_{next(self._ids):07d}"

    def _validate(self, body: Any) -> str | None:
        if not isinstance(body, dict):
            return "body must be a JSON object"
        kind = body.get("type")
        if kind not in ("image_to_3d", "image_to_kit", "chat_to_3d"):
            return f"type must be one of image_to_3d, image_to_kit, chat_to_3d (got {kind!r})"
        if kind == "chat_to_3d":
            msgs = body.get("messages")
            if not isinstance(msgs, list) or not msgs or not msgs[0].get("message"):
                return "chat_to_3d needs messages[0].message"
            return None
        inp = body.get("input") or {}
        image = inp.get("image")
        if not isinstance(image, str) or not (image.startswith(("data:image/", "http")) or image.startswith("ASSET_")):
            return "input.image must be a URL, a data URI or an asset id"
        if image.startswith("ASSET_") and not any(
                m.get("type") == "image_generation" and any(i["asset"]["_id"] == image for i in m.get("images", []))
                for s in self.sessions.values() for m in s.get("messages", [])):
            return f"asset {image} not found"
        settings = inp.get("settings") or {}
        if settings.get("geometry_model", "base") not in GEOMETRY:
            return f"settings.geometry_model must be base or turbo (got {settings.get('geometry_model')!r})"
        if settings.get("texture_model", "none") not in TEXTURE:
            return "settings.texture_model must be none, baked or pbr"
        res = settings.get("resolution", 200000)
        if not isinstance(res, int) or not 1000 <= res <= 2_000_000:
            return "settings.resolution must be an integer between 1000 and 2000000"
        if kind == "image_to_kit" and inp.get("decomposition_model") not in ("pro", "base", None):
            return "input.decomposition_model must be pro or base"
        return None

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        sid = self._new_id()
        config = (body.get("metadata") or {}).get("configuration")
        session: dict[str, Any] = {
            "_id": sid, "type": body["type"], "status": "incomplete", "created_at": time.time(),
            "metadata": body.get("metadata") or {}, "input": body.get("input") or {},
            "_polls_left": self.polls_to_complete, "_fail": config in self.fail_sessions,
        }
        if body["type"] == "chat_to_3d":
            session["messages"] = [dict(body["messages"][0])]
        self.sessions[sid] = session
        self.order.append(sid)
        return session

    def _advance(self, s: dict[str, Any]) -> None:
        if s["status"] != "incomplete":
            return
        if s["_polls_left"] > 0:
            s["_polls_left"] -= 1
            return
        if s["_fail"]:
            s["status"] = "failed"
            s["error"] = "geometry generation failed: the object could not be segmented from the background"
            return
        sid = s["_id"]
        if s["type"] == "chat_to_3d":
            asset = f"ASSET_{sid.split('_', 1)[1]}"
            self.files[f"/files/{sid}/chat.png"] = b"\x89PNG fake"
            s["messages"].append({"type": "image_generation", "images": [
                {"asset": {"_id": asset, "status": "complete", "data": {"image_url": f"{self.url}/files/{sid}/chat.png"}}}]})
            s["status"] = "complete"
            return
        meshes = []
        n_main = 0 if s["type"] == "image_to_kit" and self.kit_parts_only else 1
        for i in range(n_main):
            path = f"/files/{sid}/mesh_{i}.glb"
            self.files[path] = self.mesh_for(s, i, "mesh")
            meshes.append({"_id": f"MESH_{sid}_{i}", "status": "complete",
                           "data": {"glb_url": self.url + path, "obj_url": f"{self.url}/files/{sid}/mesh_{i}.obj"}})
        output: dict[str, Any] = {"meshes": meshes}
        if s["type"] == "image_to_kit":
            parts = []
            for i in range(self.parts_per_kit):
                path = f"/files/{sid}/part_{i}.glb"
                self.files[path] = self.mesh_for(s, i, "part")
                parts.append({"_id": f"PART_{sid}_{i}", "status": "complete", "data": {"glb_url": self.url + path}})
            output["part_meshes"] = parts
        s["output"] = output
        s["status"] = "complete"

    @staticmethod
    def public(s: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in s.items() if not k.startswith("_") or k == "_id"}

    # -- HTTP -------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _send(self, status: int, payload: Any = None, headers: dict[str, str] | None = None,
                      raw: bytes | None = None, truncate: bool = False) -> None:
                body = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if raw is None else "model/gltf-binary")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if truncate:
                    self.send_header("Connection", "close")
                self.end_headers()
                try:
                    self.wfile.write(body[: len(body) // 2] if truncate else body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if truncate:
                    self.close_connection = True
                with fake.lock:
                    fake.log.append((self.command, urlparse(self.path).path, status))
                fake._event(self.command, urlparse(self.path).path, "answered", status)

            def _fault(self, route: str) -> Fault | None:
                with fake.lock:
                    queue = fake.faults.get(route)
                    return queue.pop(0) if queue else None

            def _hang(self, fault: Fault) -> None:
                fake._stop.wait(fault.hang_s)
                self.close_connection = True
                with fake.lock:
                    fake.log.append((self.command, urlparse(self.path).path, 0))

            def _play(self, fault: Fault) -> None:
                if fault.hang_s:
                    self._hang(fault)
                else:
                    body = fault.body if fault.body is not None else {"message": f"scripted {fault.status}"}
                    self._send(fault.status, body, fault.headers)

            def _auth(self) -> bool:
                given = self.headers.get("x-api-key")
                if given != fake.api_key:
                    # Real APIs do echo what they were given; the client must redact it.
                    self._send(401, {"message": f"Invalid API key: {given}", "statusCode": 401})
                    return False
                return True

            def _record(self) -> None:
                with fake.lock:
                    fake.requests.append((urlparse(self.path).path, {k.lower(): v for k, v in self.headers.items()}))

            def do_POST(self) -> None:
                self._record()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = urlparse(self.path).path
                if path != "/v3/sessions/":
                    self._send(404, {"message": f"no route POST {path}"})
                    return
                if not self._auth():
                    return
                fake._event("POST", path, "received")
                fault = self._fault("POST sessions")
                if fault is not None and not fault.after_create:
                    self._play(fault)
                    return
                with fake.lock:
                    throttled = fake.throttle_rate > 0 and fake.rng.random() < fake.throttle_rate
                if throttled:
                    self._send(429, {"message": "Too many requests"}, {"Retry-After": fake.throttle_retry_after})
                    return
                if fake.post_delay_s:
                    fake._stop.wait(fake.post_delay_s)
                try:
                    body = json.loads(raw or b"null")
                except json.JSONDecodeError:
                    self._send(400, {"message": "body is not JSON"})
                    return
                with fake.lock:
                    problem = fake._validate(body)
                    session = None if problem else fake._create(body)
                if problem:
                    self._send(422 if "settings" in problem else 400, {"message": problem, "statusCode": 400})
                    return
                fake._event("POST", path, "created")
                if fault is not None:  # after_create: the session exists, the answer is lost
                    self._play(fault)
                    return
                assert session is not None
                self._send(201, fake.public(session))

            def do_GET(self) -> None:
                self._record()
                url = urlparse(self.path)
                path = url.path
                fake._event("GET", path, "received")
                if path.startswith("/files/"):
                    fault = self._fault("GET file")
                    if fault is not None and not fault.truncate:
                        self._play(fault)
                        return
                    data = fake.files.get(path)
                    if data is None:
                        self._send(404, {"message": "no such file"})
                        return
                    self._send(200, raw=data, truncate=fault is not None and fault.truncate)
                    return
                if not self._auth():
                    return
                if path == "/v3/sessions/" and not fake.listing:
                    self._send(404, {"message": f"Cannot GET {path}", "statusCode": 404})
                    return
                if path == "/v3/sessions/":
                    fault = self._fault("GET list")
                    if fault is not None:
                        self._play(fault)
                        return
                    q = parse_qs(url.query)
                    limit = int(q.get("limit", ["20"])[0])
                    offset = int(q.get("offset", ["0"])[0])
                    with fake.lock:
                        ids = list(reversed(fake.order))
                        page = [fake.public(fake.sessions[i]) for i in ids[offset:offset + limit]]
                    self._send(200, {"results": page, "total": len(ids)})
                    return
                m = re.fullmatch(r"/v3/sessions/([A-Za-z0-9_]+)", path)
                if not m:
                    self._send(404, {"message": f"no route GET {path}"})
                    return
                fault = self._fault("GET session")
                if fault is not None:
                    self._play(fault)
                    return
                with fake.lock:
                    s = fake.sessions.get(m.group(1))
                    if s is not None:
                        fake._advance(s)
                        doc = fake.public(s)
                if s is None:
                    self._send(404, {"message": f"session {m.group(1)} not found"})
                    return
                self._send(200, doc)

        return Handler


# -- test wiring: an instant clock and a runner pointed at the fake ----------------------

class FakeClock:
    """Advances instantly; ``sleeps`` is the exact schedule the code asked for."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class ZeroRandom(random.Random):
    """rng.random() == 0: backoff without jitter, so the schedule is exactly 2, 4, 8."""

    def random(self) -> float:
        return 0.0


def make_runner(workdir: Path, api_url: str, key: str, clock: FakeClock, timeout_s: float = 0.5,
                formats: tuple[str, ...] = ("glb",)) -> Runner:
    settings = GenerateSettings(workdir=workdir, api_url=api_url, request_timeout_s=timeout_s,
                                download_timeout_s=timeout_s, poll_interval_s=30.0, formats=formats,
                                policy=RetryPolicy())
    return Runner(settings, clock, backend_factory(settings, clock, lambda: ApiKey(key), ZeroRandom()),
                  rng=ZeroRandom())
