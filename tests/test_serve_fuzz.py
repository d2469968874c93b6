"""Schemathesis against the HTTP API: generated valid and invalid requests to every endpoint,
with the five response checks and none excluded. A 5xx, a status, content type, body or header
the schema does not document, is a failure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gencritic.serve.http import create_app
from gencritic.serve.service import ScoringService, ServiceConfig
from tests.conftest import make_image

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES_PER_OPERATION = 25  # x 6 operations x 2 modes + 1: about 300 requests, seconds with the tiny model


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Iterator[ScoringService]:
    root = tmp_path_factory.mktemp("fuzz_root")
    make_image(root / "img.png")
    for i in range(2):
        make_image(root / "views" / f"{i:03d}.png", (40 * i, 90, 200))
    svc = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root],
                                       max_upload_bytes=200_000, render={"rig": "toys4k8", "resolution": 32}))
    svc.warm_up()
    yield svc
    svc.close()


OPERATIONS = [("GET", "/health"), ("GET", "/v1/status"), ("GET", "/v1/metrics"), ("GET", "/v1/profiles"),
              ("POST", "/v1/score/image"), ("POST", "/v1/score/asset"), ("POST", "/v1/diagnose")]


class Counted:
    """The app, counting the requests schemathesis sends to each operation."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[tuple[str, str]] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls[(scope["method"], scope["path"])] += 1
        await self.app(scope, receive, send)


@pytest.fixture(scope="module")
def counted(service: ScoringService) -> Counted:
    return Counted(create_app(service))


@pytest.fixture(scope="module")
def api_schema(counted: Counted) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", counted)


def test_every_operation_is_fuzzed(api_schema: Any) -> None:
    """The list below is the schema's: a new endpoint cannot escape the fuzzing."""
    found = sorted((op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations())
    assert found == sorted(OPERATIONS)


CASES = [(method, path, mode) for method, path in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if not (path == "/health" and mode == GenerationMode.NEGATIVE)]  # no inputs: nothing to make invalid


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES])
def test_api_conforms_to_its_schema(api_schema: Any, counted: Counted, method: str, path: str, mode: Any) -> None:
    from hypothesis import given

    operation = api_schema[path][method]
    before = counted.calls[(method, path)]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    run()
    sent = counted.calls[(method, path)] - before
    print(f"{method} {path} {mode.value}: {sent} requests")
    assert sent >= 1
