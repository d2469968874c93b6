"""Models and heads through the service are the operator's choice: an allow-list and the roots,
403 alike whether or not a file exists elsewhere, and a bounded pool of loaded models."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from gencritic.models import ModelPool
from gencritic.scoring import ScoreOptions, score
from gencritic.serve.http import create_app
from gencritic.serve.service import ScoringService, ServiceConfig
from tests.conftest import make_image

LOCAL = ("127.0.0.1", 50000)
N_MODELS = 6


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("outside")
    (folder / "weights.pt").write_bytes(b"junk that is no checkpoint")
    (folder / "rungs.txt").write_text("small\nlarge\n")
    (folder / "head").mkdir()
    return folder


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory, tiny_clip_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("models_root")
    make_image(folder / "red.png", (220, 20, 20))
    for i in range(N_MODELS):  # distinct paths of one tiny model: distinct entries of the pool
        shutil.copytree(tiny_clip_dir, folder / "models" / f"m{i}")
    (folder / "rungs.txt").write_text("a faint glow\na bright fire\n")
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


def _post(client: TestClient, metrics: str) -> tuple[int, str]:
    resp = client.post("/v1/score/image", data={"path": "red.png", "prompt": "a red square", "metrics": metrics})
    body = resp.json()
    return resp.status_code, body.get("detail", "") if isinstance(body, dict) else ""


@pytest.mark.parametrize("template", ["clip:model={}", "aesthetic:head={}", "learned:{}", "ladder:prompts_file={}",
                                      "lpips:weights={}", "pickscore:processor={}"])
def test_options_naming_files_outside_the_roots_are_refused_alike(client: TestClient, outside: Path,
                                                                  template: str) -> None:
    """Before: 'no such file' for one path, 'unsupported weights file type' for another, and the
    model was loaded from anywhere."""
    answers = {}
    for target in (outside / "weights.pt", outside / "rungs.txt", outside / "head", outside / "missing",
                   Path("/etc/hostname")):
        status, detail = _post(client, template.format(target))
        assert status == 403, (target, detail)
        answers[target] = detail.replace(str(target), "PATH")
    assert len(set(answers.values())) == 1, answers  # the same words whether the file exists or not
    detail = next(iter(answers.values()))
    assert "--allow-model" in detail and "roots" in detail
    for hint in ("no such", "not found", "unsupported", "not a file", "not a folder", "JSON", "state dict", "exist"):
        assert hint not in detail


def test_hub_ids_the_operator_did_not_allow_are_refused(client: TestClient) -> None:
    status, detail = _post(client, "clip:model=openai/clip-vit-large-patch14")
    assert status == 403 and "not allowed on this server" in detail


def test_models_under_the_roots_and_allowed_models_load(client: TestClient, root: Path, service: ScoringService,
                                                         tiny_clip_dir: Path, tmp_path: Path) -> None:
    resp = client.post("/v1/score/image", data={"path": "red.png", "prompt": "a red square",
                                               "metrics": "clip:model=models/m0"})  # relative to the first root
    assert resp.status_code == 200, resp.text
    expected = score(root / "red.png", prompt="a red square", options=ScoreOptions(
        model=str(root / "models" / "m0"), device="cpu", dtype="fp32", cache_dir=None, progress=False),
        pool=ModelPool("cpu", "fp32")).rows[0]["clip_score"]
    assert resp.json()["scores"]["clip_score"] == expected
    elsewhere = shutil.copytree(tiny_clip_dir, tmp_path / "operator_model")
    allowed = ScoringService(ServiceConfig(model=str(tiny_clip_dir), device="cpu", dtype="fp32", roots=[root],
                                           allow_models=[str(elsewhere)]), pool=service.pool)
    try:
        status, detail = _post(TestClient(create_app(allowed), client=LOCAL), f"clip:model={elsewhere}")
        assert status == 200, detail
    finally:
        allowed.close()


def test_a_head_chooses_only_an_allowed_backbone(client: TestClient, root: Path) -> None:
    from gencritic.models.assessment_heads import AssessmentHead, save_head

    config = {"kind": "linear", "image_dim": 16, "text_dim": 0, "n_scores": 0, "n_tasks": 1, "hidden": 0,
              "d_model": 16, "layers": 1, "heads": 2, "dropout": 0.0}
    torch.manual_seed(0)
    save_head(root / "heads" / "h", AssessmentHead(config).eval(),
              {"name": "h", "tasks": ["q"], "backbone": "someone/unlisted-clip", "features": "image",
               "target_mean": [0.0], "target_std": [1.0]})
    status, detail = _post(client, "learned:heads/h")
    assert status == 403, detail
    assert "someone/unlisted-clip" in detail and "not allowed" in detail


def test_the_model_pool_is_bounded(client: TestClient, service: ScoringService, tiny_clip_dir: Path) -> None:
    """Before: every distinct model stayed loaded (10 requests: 1 -> 11 models)."""
    for i in range(N_MODELS):
        status, detail = _post(client, f"clip:model=models/m{i}")
        assert status == 200, detail
    loaded = client.get("/v1/status").json()["models_loaded"]
    assert len(loaded) <= 4, loaded
    assert ["clip", str(tiny_clip_dir)] in loaded  # the service's own model is never evicted


def test_bounded_pool_evicts_the_least_recently_used() -> None:
    from gencritic.serve.models import BoundedModelPool

    pool = BoundedModelPool("cpu", "fp32", capacity=3)
    pool.pin(("k", "pinned"))
    made: list[str] = []

    def get(name: str) -> object:
        return pool.get(("k", name), lambda: made.append(name) or name)

    for name in ("pinned", "a", "b", "a", "c", "a"):
        get(name)
    assert made == ["pinned", "a", "b", "c"]  # "a" was used again, so "b" went first
    assert {k[1] for k in pool.loaded()} == {"pinned", "a", "c"}
    for name in ("d", "e", "f"):
        get(name)
    assert len(pool.loaded()) == 3 and ("k", "pinned") in pool.loaded()


def test_mcp_refuses_with_the_same_line(service: ScoringService, client: TestClient) -> None:
    pytest.importorskip("mcp")
    from mcp.server.mcpserver.exceptions import ToolError

    from gencritic.serve.mcp_server import build_mcp

    _, http = _post(client, "clip:model=/etc/hostname")
    with pytest.raises(ToolError) as info:
        asyncio.run(build_mcp(service).call_tool("evaluate_image", {"path": "red.png", "prompt": "x",
                                                                    "metrics": "clip:model=/etc/hostname"}))
    assert str(info.value) == f"Error executing tool evaluate_image: {http}"


def test_every_option_is_a_setting_or_checked_as_a_file(service: ScoringService, root: Path) -> None:
    """Each option of each metric's schema: plain settings pass the allow-list untouched; any other
    (model=, head=, weights=, range=, ...) naming a file outside the roots is refused."""
    from gencritic.metrics.registry import all_metrics
    from gencritic.serve.errors import AccessDenied
    from gencritic.serve.models import PLAIN_OPTIONS

    checked = 0
    for name, cls in all_metrics().items():
        for option in cls.options_schema.model_fields:
            spec = f"{name}:{option}=/etc/hostname"
            if option in PLAIN_OPTIONS:
                assert service.policy.check_spec(f"{name}:{option}=x") == f"{name}:{option}=x"
                continue
            with pytest.raises(AccessDenied) as info:
                service.policy.check_spec(spec)
            assert info.value.status == 403, spec
            checked += 1
    assert checked >= 20
    # both spellings of a learned head under a root are made absolute, as the metric opens them
    (root / "heads" / "g").mkdir(parents=True, exist_ok=True)
    real = (root / "heads" / "g").resolve()
    assert service.policy.check_spec("learned:heads/g") == f"learned:{real}"
    assert service.policy.check_spec("learned:head=heads/g") == f"learned:head={real}"


def test_set_metrics_are_refused_before_their_reference_set_is_opened(client: TestClient, root: Path,
                                                                      outside: Path, service: ScoringService) -> None:
    """A set metric has no value for one request (clip_diversity answered 200 with no score), and
    its ref= manifest, itself under a root, could list files anywhere: both refused with 400 before
    any file is read, over HTTP and MCP alike."""
    (outside / "a.png").write_bytes(b"not read")
    (root / "refs.csv").write_text(f"image,prompt\n{outside / 'a.png'},x\n{outside / 'b.png'},x\n")
    for metrics in ("clip_diversity", "fd_incep:ref=refs.csv", f"kd_dinov2:ref={outside}", "clip,fd_dinov2:ref=x"):
        status, detail = _post(client, metrics)
        assert status == 400 and "is a set metric" in detail and "gencritic score" in detail, (metrics, detail)
    status, _ = _post(client, "clip")
    assert status == 200
    pytest.importorskip("mcp")
    from mcp.server.mcpserver.exceptions import ToolError

    from gencritic.serve.mcp_server import build_mcp

    with pytest.raises(ToolError, match="is a set metric"):
        asyncio.run(build_mcp(service).call_tool("evaluate_image", {"path": "red.png", "prompt": "x",
                                                                    "metrics": "fd_incep:ref=refs.csv"}))
