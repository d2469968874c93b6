"""The CSM v3 session documents and request bodies, as pure functions (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gencritic.generate.backends.base import StageRequest
from gencritic.generate.backends.csm import build_body, image_data_uri, parse_session
from gencritic.generate.matrix import load_matrix
from gencritic.remote.retry import ApiError


def request(name: str, stage: str = "mesh", stage_input: str | None = None) -> StageRequest:
    (config,) = load_matrix(None, [name])
    return StageRequest(config=config, stage=stage, image_path=Path("x.png"), stage_input=stage_input,
                        token="gc-tok", output_dir=Path("."))


def test_bodies_follow_the_v3_shapes() -> None:
    uri = "data:image/png;base64,AAAA"
    body = build_body(request("i3d-turbo-baked"), lambda: uri)
    assert body["type"] == "image_to_3d" and body["input"]["image"] == uri
    assert body["input"]["settings"] == {"geometry_model": "turbo", "texture_model": "baked", "resolution": 200000}
    assert body["metadata"]["gencritic_token"] == "gc-tok"
    kit = build_body(request("kit-pro-turbo-baked"), lambda: uri)
    assert kit["type"] == "image_to_kit" and kit["input"]["decomposition_model"] == "pro"
    chat = build_body(request("chat-i3d-turbo-pbr", "chat"), lambda: uri)
    assert chat["type"] == "chat_to_3d" and chat["messages"][0]["type"] == "user_prompt"
    assert chat["messages"][0]["images"] == [uri] and "input" not in chat
    follow = build_body(request("chat-i3d-turbo-pbr", "mesh", "ASSET_1"), lambda: pytest.fail("image re-sent"))
    assert follow["type"] == "image_to_3d" and follow["input"]["image"] == "ASSET_1"
    with pytest.raises(ApiError, match="no image"):
        build_body(request("chat-i3d-turbo-pbr", "mesh", None), lambda: uri)
    assert image_data_uri(b"\x89PNG", "a.png").startswith("data:image/png;base64,")
    assert image_data_uri(b"jpg", "a.JPG").startswith("data:image/jpeg;base64,")


def test_session_documents_map_to_states() -> None:
    assert parse_session({"_id": "S", "status": "incomplete"}, "mesh").status == "incomplete"
    assert parse_session({"_id": "S", "status": "queued"}, "mesh").raw_status == "queued"
    failed = parse_session({"_id": "S", "status": "failed", "error": "out of credits"}, "mesh")
    assert failed.status == "failed" and "out of credits" in (failed.error or "")
    empty = parse_session({"_id": "S", "status": "complete", "output": {"meshes": []}}, "mesh")
    assert empty.status == "failed" and "no mesh" in (empty.error or "")
    done = parse_session({"_id": "S", "status": "complete", "output": {
        "meshes": [{"data": {"glb_url": "http://h/m.glb", "obj_url": "http://h/m.obj"}}],
        "part_meshes": [{"data": {"glb_url": "http://h/p0.glb"}}, {"data": {}}]}}, "mesh")
    assert done.status == "complete"
    assert [(o.kind, o.index, sorted(o.urls)) for o in done.outputs] == [("mesh", 0, ["glb", "obj"]),
                                                                          ("part", 0, ["glb"])]
    waiting = parse_session({"_id": "C", "status": "incomplete", "messages": [{"type": "user_prompt"}]}, "chat")
    assert waiting.status == "incomplete"
    image = {"type": "image_generation", "images": [{"asset": {"_id": "ASSET_9", "status": "complete",
                                                               "data": {"image_url": "http://h/i.png"}}}]}
    ready = parse_session({"_id": "C", "status": "incomplete", "messages": [{"type": "user_prompt"}, image]}, "chat")
    assert ready.status == "complete" and ready.next_input == "ASSET_9"
    bad = {"type": "image_generation", "images": [{"asset": {"_id": "ASSET_9", "status": "failed"}}]}
    assert parse_session({"_id": "C", "status": "incomplete", "messages": [bad]}, "chat").status == "failed"
    silent = parse_session({"_id": "C", "status": "complete", "messages": [{"type": "user_prompt"}]}, "chat")
    assert silent.status == "failed" and "without generating an image" in (silent.error or "")
    with pytest.raises(ApiError):
        parse_session(["not", "a", "session"], "mesh")
