"""Object storage in and out, against a real S3-compatible server on loopback (tests/s3_server.py).

The reference for every number is the same run on local copies of the same files: an address is
only another way to reach bytes, so results must be identical, byte for byte.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gencritic.errors import InputError, ItemError
from gencritic.scoring import ScoreOptions, score
from tests.conftest import make_image
from tests.s3_server import ACCESS_KEY, SECRET_KEY, S3Server, s3  # noqa: F401 (fixture)

pytest.importorskip("s3fs")


def _opts(model: Path, cache: Path | None, **kw: object) -> ScoreOptions:
    base: dict = {"model": str(model), "device": "cpu", "dtype": "fp32", "cache_dir": cache, "progress": False,
                  "batch_size": 4, "metrics": ["clip", "clip_torchmetrics"]}
    base.update(kw)
    return ScoreOptions(**base)


def _media(folder: Path, n: int = 8) -> Path:
    """``n`` images, a three-view asset folder, and a manifest naming them by relative path."""
    lines = ["image,prompt,split"]
    for i in range(n):
        make_image(folder / "img" / f"p{i}.png", ((41 * i) % 256, (97 * i + 30) % 256, (13 * i + 70) % 256))
        lines.append(f"img/p{i}.png,a picture number {i},{'a' if i % 2 else 'b'}")
    for k, c in enumerate([(200, 10, 10), (10, 200, 10), (10, 10, 200)]):
        make_image(folder / "asset" / f"{k:03d}.png", c)
    lines.append("asset,a small toy,a")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _media(tmp_path_factory.mktemp("remote_media"))


@pytest.fixture()
def bucket(s3: S3Server, media: Path) -> str:  # noqa: F811
    name = s3.bucket()
    s3.upload(media.parent, f"s3://{name}/set")
    return name


# ------------------------------------------------------------------------------------------------
# addresses as paths


def test_url_paths_join_like_folders_without_touching_the_network() -> None:
    from gencritic.io.urls import UrlPath

    base = UrlPath("s3://bkt/sets/one/")
    assert str(base) == "s3://bkt/sets/one"
    assert str(base / "img/p1.png") == "s3://bkt/sets/one/img/p1.png"
    assert str(base / "../two/x.obj") == "s3://bkt/sets/two/x.obj"
    assert str(base / "/root.png") == "s3://bkt/root.png"
    assert str(base / "gs://other/a.png") == "gs://other/a.png"
    assert str(base / "../../../../x.png") == "s3://bkt/x.png"  # never above the bucket
    url = UrlPath("https://host.example/data/a%20b.kit.json?X-Amz-Signature=abc")
    assert (url.name, url.suffix, url.stem) == ("a b.kit.json", ".json", "a b.kit")
    assert str(url.parent) == "https://host.example/data"
    assert UrlPath("s3://b/a/x.png").relative_to(UrlPath("s3://b/a")) == "x.png"
    # why the type exists: pathlib merges the slashes into a local path that does not exist
    assert str(Path("s3://bkt/a.png")) == "s3:/bkt/a.png"


def test_redact_hides_signatures_and_passwords() -> None:
    from gencritic.io.urls import redact

    text = redact("cannot read https://u:pw@h/x.png?X-Amz-Signature=S1&X-Amz-Credential=C1&v=2 and s3://b/k")
    assert "S1" not in text and "C1" not in text and "pw" not in text
    assert "v=2" in text and "s3://b/k" in text and "https://u:***@h/x.png" in text
    assert redact("https://ghp_TOKEN@host/a.png") == "https://***@host/a.png"  # a bare token before @
    assert redact("abfs://container@account.dfs.core.windows.net/a.png").startswith("abfs://container@")


# ------------------------------------------------------------------------------------------------
# the acceptance run: s3 in, s3 out, the same bytes as local copies


def test_cli_scores_s3_manifest_into_s3_identically_to_local_copies(s3: S3Server, bucket: str, media: Path,  # noqa: F811
                                                                     tiny_clip_dir: Path, tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    common = ["--model", str(tiny_clip_dir), "--device", "cpu", "--dtype", "fp32", "--batch-size", "4",
              "--metrics", "clip,clip_torchmetrics", "--quiet"]
    local = CliRunner().invoke(app, ["score", str(media), "--out", str(tmp_path / "local"),
                                     "--cache-dir", str(tmp_path / "cache_local"), *common])
    assert local.exit_code == 0, local.output
    # gencritic's own log at its most verbose, every library's at INFO (botocore's DEBUG prints request
    # headers, a choice a user makes for themselves)
    with caplog.at_level("INFO"), caplog.at_level("DEBUG", logger="gencritic"):
        remote = CliRunner().invoke(app, ["score", f"s3://{bucket}/set/manifest.csv", "--out", f"s3://{bucket}/out/",
                                          "--cache-dir", str(tmp_path / "cache_s3"), *common])
    assert remote.exit_code == 0, remote.output
    assert f"s3://{bucket}/out/results.csv" in remote.output
    for name in ("results.csv", "views.csv"):
        assert s3.fs.cat_file(f"{bucket}/out/{name}") == (tmp_path / "local" / name).read_bytes(), name
    summary = json.loads(s3.fs.cat_file(f"{bucket}/out/summary.json"))
    assert summary["count"] == 9 and summary["failures"] == 0
    assert summary["remote"]["fetches"] == 11  # 8 images + 3 views, each downloaded once
    # the journal is at the address (what a resumed run reads back); the local stage is gone
    journal = s3.fs.cat_file(f"{bucket}/out/.gencritic/journal.jsonl").decode().splitlines()
    assert len(journal) == 9
    assert not s3.fs.exists(f"{bucket}/out/.gencritic/journal.d")
    # credentials come from the standard chain and are never written or logged
    written = b"".join(s3.fs.cat_file(p) for p in s3.fs.find(f"{bucket}/out"))
    written += b"".join(p.read_bytes() for p in (tmp_path / "cache_s3").rglob("*") if p.is_file())
    for secret in (ACCESS_KEY, SECRET_KEY):
        assert secret.encode() not in written
        assert secret not in caplog.text and secret not in remote.output


def test_cached_objects_are_not_downloaded_again_and_a_changed_one_is(s3: S3Server, bucket: str, media: Path,  # noqa: F811
                                                                      tiny_clip_dir: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    manifest = f"s3://{bucket}/set/manifest.csv"
    first = score(manifest, out=tmp_path / "one", options=_opts(tiny_clip_dir, cache))
    again = score(manifest, out=tmp_path / "two", options=_opts(tiny_clip_dir, cache))
    assert first.summary["remote"]["fetches"] == 11
    assert again.summary["remote"]["fetches"] == 0 and again.summary["remote"]["hits"] == 11
    assert again.rows == first.rows
    # the same address, new bytes: its version (ETag, size, time) changed, so it is fetched and re-scored
    changed = tmp_path / "changed.png"
    make_image(changed, (250, 250, 5), size=40)
    s3.upload(changed, f"s3://{bucket}/set/img/p3.png")
    third = score(manifest, out=tmp_path / "three", options=_opts(tiny_clip_dir, cache))
    assert third.summary["remote"]["fetches"] == 1
    copy = tmp_path / "copy"  # the reference: local copies holding the new bytes
    shutil.copytree(media.parent, copy)
    shutil.copy(changed, copy / "img" / "p3.png")
    expected = score(copy / "manifest.csv", options=_opts(tiny_clip_dir, None))
    assert third.rows == expected.rows
    before = {r["item_id"]: r for r in first.rows}["img/p3.png"]
    assert {r["item_id"]: r for r in third.rows}["img/p3.png"]["clip_score"] != before["clip_score"]


def test_object_changing_during_download_is_never_cached_with_the_wrong_version(
        s3: S3Server, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from gencritic.io import fetch
    from gencritic.io.urls import UrlPath

    versions = iter([fetch.ObjectVersion(10, f"e{i}", "t") for i in range(10)])
    monkeypatch.setattr(fetch, "stat_object", lambda url: next(versions))  # a new version at every look
    cache = fetch.ObjectCache(tmp_path / "c")
    with pytest.raises(ItemError, match="changed while it was being read"):
        cache.fetch(UrlPath(f"s3://{bucket}/set/img/p0.png"))
    assert not (tmp_path / "c" / "remote" / "index").exists()


def test_resumed_run_reads_the_journal_back_from_the_address(s3: S3Server, bucket: str, media: Path,  # noqa: F811
                                                             tiny_clip_dir: Path, tmp_path: Path) -> None:
    half = media.parent / "half.csv"
    lines = media.read_text().splitlines()
    half.write_text("\n".join(lines[:5]) + "\n")  # header + 4 items
    s3.upload(half, f"s3://{bucket}/set/half.csv")
    out = f"s3://{bucket}/resume/"
    first = score(f"s3://{bucket}/set/half.csv", out=out, options=_opts(tiny_clip_dir, tmp_path / "c1"))
    assert first.summary["count"] == 4
    # another machine (another cache, another local stage) resumes from what the address holds
    full = score(f"s3://{bucket}/set/manifest.csv", out=out, options=_opts(tiny_clip_dir, tmp_path / "c2"))
    assert full.summary["resumed_items"] == 4 and full.summary["remote"]["fetches"] == 7  # only the rest
    score(media, out=tmp_path / "local", options=_opts(tiny_clip_dir, None))
    assert s3.fs.cat_file(f"{bucket}/resume/results.csv") == (tmp_path / "local" / "results.csv").read_bytes()
    # other settings into the same address are refused, naming the address
    with pytest.raises(InputError, match=rf"s3://{bucket}/resume holds results of a run with other settings"):
        score(f"s3://{bucket}/set/manifest.csv", out=out, options=_opts(tiny_clip_dir, None, metrics=["clip"]))
    # --overwrite discards the address's journal first
    again = score(f"s3://{bucket}/set/half.csv", out=out, options=_opts(tiny_clip_dir, None, overwrite=True))
    assert again.summary["resumed_items"] == 0 and again.summary["count"] == 4
    assert len(s3.fs.cat_file(f"{bucket}/resume/.gencritic/journal.jsonl").decode().splitlines()) == 4


def test_journal_segments_survive_a_driver_that_dies(s3: S3Server, tmp_path: Path) -> None:  # noqa: F811
    """What the journal gained reaches the address while the run goes; a run that never exits
    cleanly still leaves it there for the next one."""
    from gencritic.io.staged_out import StagedOutput
    from gencritic.io.urls import UrlPath

    bucket = s3.bucket()
    url = UrlPath(f"s3://{bucket}/run")
    first = StagedOutput(url, ".gencritic", "journal.jsonl", interval=3600)
    local = first.__enter__()
    (local / ".gencritic").mkdir(exist_ok=True)
    (local / ".gencritic" / "run.json").write_text('{"fingerprint": "x"}')
    journal = local / ".gencritic" / "journal.jsonl"
    journal.write_text('{"item": {"item_id": "a"}}\n{"item": {"item_id": "b"}}\n{"item": {"it')  # torn tail
    assert first.flush() > 0
    with open(journal, "a") as fh:
        fh.write('em_id": "c"}}\n')
    first.flush()
    segments = s3.fs.find(f"{bucket}/run/.gencritic/journal.d")
    assert len(segments) == 2
    first._stop.set()  # the driver dies here: no __exit__, no consolidated journal
    second = StagedOutput(url, ".gencritic", "journal.jsonl", interval=3600)
    resumed = second.__enter__()
    assert (resumed / ".gencritic" / "journal.jsonl").read_text().splitlines() == [
        '{"item": {"item_id": "a"}}', '{"item": {"item_id": "b"}}', '{"item": {"item_id": "c"}}']
    assert json.loads((resumed / ".gencritic" / "run.json").read_text()) == {"fingerprint": "x"}
    with open(resumed / ".gencritic" / "journal.jsonl", "a") as fh:
        fh.write('{"item": {"item_id": "d"}}\n')
    second.__exit__(None, None, None)
    assert not resumed.exists()  # the local stage is removed once everything is at the address
    assert not s3.fs.exists(f"{bucket}/run/.gencritic/journal.d/{Path(segments[0]).name}")
    assert s3.fs.cat_file(f"{bucket}/run/.gencritic/journal.jsonl").decode().count("\n") == 4


# ------------------------------------------------------------------------------------------------
# failures name the address, never a cache file or a signature


def test_failures_name_the_address(s3: S3Server, bucket: str, tiny_clip_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    s3.fs.pipe_file(f"{bucket}/set/corrupt.png", b"not an image at all")
    s3.fs.pipe_file(f"{bucket}/set/model.fbx", b"Kaydara FBX Binary" + bytes(4096))
    signed = f"{s3.endpoint}/{bucket}/set/absent.png?X-Amz-Signature=SIGNATURE123&X-Amz-Credential=CRED456"
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image,prompt\ns3://{bucket}/set/img/p0.png,ok\ns3://{bucket}/set/missing.png,gone\n"
                        f"s3://{bucket}/set/corrupt.png,bad\n{signed},signed\ns3://{bucket}/set/model.fbx,fbx\n")
    run = score(manifest, out=tmp_path / "out", options=_opts(tiny_clip_dir, tmp_path / "cache"))
    rows = {r["prompt"]: r for r in run.rows}
    assert rows["ok"]["success"] is True
    assert rows["gone"]["error"] == (f"not found: s3://{bucket}/set/missing.png "
                                     "(check the address; the object may have been deleted)")
    assert rows["bad"]["error"] == f"not an image (unrecognised format): s3://{bucket}/set/corrupt.png"
    assert rows["signed"]["success"] is False
    assert "SIGNATURE123" not in rows["signed"]["error"] and "CRED456" not in rows["signed"]["error"]
    # a format gencritic does not read fails as a local copy would, and is not downloaded for nothing
    assert rows["fbx"]["error"].startswith("model.fbx: gencritic does not read .fbx files")
    assert run.summary["remote"]["fetches"] == 2  # p0.png and corrupt.png
    assert str(tmp_path / "cache") not in (tmp_path / "out" / "results.csv").read_text()


def test_unreadable_schemes_and_outputs_stop_in_one_line(media: Path, tiny_clip_dir: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_geometry import gencritic

    base = ["--model", str(tiny_clip_dir), "--device", "cpu", "--quiet"]
    monkeypatch.chdir(tmp_path)  # an address taken for a relative folder would be written here
    code, err = gencritic(["score", str(media), "--out", "https://example.com/out/", *base], monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "not to https:// addresses" in err[0]
    assert not (tmp_path / "https:").exists()
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        code, err = gencritic(["score", "gs://bucket/manifest.csv", "--out", str(tmp_path / "o"), *base],
                              monkeypatch, capsys)
        assert code == 2 and len(err) == 1 and "gs:// addresses need gcsfs" in err[0]


# ------------------------------------------------------------------------------------------------
# folders, references and meshes with their side files


def test_folder_and_reference_dir_at_addresses_equal_local(s3: S3Server, tiny_clip_dir: Path,  # noqa: F811
                                                           tmp_path: Path) -> None:
    bucket = s3.bucket()
    folder, refs = tmp_path / "gen", tmp_path / "refs"
    for i, c in enumerate([(220, 20, 20), (20, 200, 40), (20, 40, 220)]):
        make_image(folder / f"f{i}.png", c)
        (folder / f"f{i}.txt").write_text(f"a square number {i}")
        make_image(refs / f"f{i}.png", tuple(255 - v for v in c))
    for k in range(2):
        make_image(folder / "views" / f"v{k}.png", (90 * k, 60, 200))
    (folder / "views" / "prompt.txt").write_text("an object seen twice")
    s3.upload(folder, f"s3://{bucket}/gen")
    s3.upload(refs, f"s3://{bucket}/refs")
    opts = {"metrics": ["clip", "ssim"]}
    local = score(folder, out=tmp_path / "local", options=_opts(tiny_clip_dir, None, reference_dir=refs, **opts))
    remote = score(f"s3://{bucket}/gen/", out=tmp_path / "remote",
                   options=_opts(tiny_clip_dir, None, reference_dir=f"s3://{bucket}/refs", **opts))
    assert [r["item_id"] for r in remote.rows] == ["f0.png", "f1.png", "f2.png", "views"]
    strip = ("settings_id",)  # the reference folder is part of the settings, and it is another one
    assert [{k: v for k, v in r.items() if k not in strip} for r in remote.rows] == \
        [{k: v for k, v in r.items() if k not in strip} for r in local.rows]
    assert all(r["success"] for r in remote.rows[:3])


@pytest.mark.parametrize("fmt", ["obj", "gltf"])
def test_meshes_with_side_files_render_from_addresses_as_from_disk(s3: S3Server, fmt: str, tiny_clip_dir: Path,  # noqa: F811
                                                                    tmp_path: Path) -> None:
    pytest.importorskip("moderngl")
    import trimesh

    from tests.test_mesh import _textured_obj
    from tests.test_render import textured_cube

    asset = tmp_path / "asset"
    if fmt == "obj":  # OBJ -> MTL -> a texture whose name has a space and map options
        mesh = _textured_obj(asset / "model", "tex ture.png", "map_Kd -s 1 1 1 tex ture.png")
        texture = mesh.parent / "tex ture.png"
    else:  # .gltf -> .bin and a texture named by a percent-encoded URI
        asset.mkdir()
        files = trimesh.exchange.gltf.export_gltf(trimesh.Scene([textured_cube()]), embed_buffers=False)
        for name, data in files.items():
            (asset / name).write_bytes(data)
        doc = json.loads((asset / "model.gltf").read_text())
        textured_cube().visual.material.baseColorTexture.save(asset / "base colour.png")
        doc["images"][0] = {"uri": "base%20colour.png"}
        (asset / "model.gltf").write_text(json.dumps(doc))
        mesh, texture = asset / "model.gltf", asset / "base colour.png"
    bucket = s3.bucket()
    s3.upload(asset, f"s3://{bucket}/assets")
    rel = mesh.relative_to(asset).as_posix()
    opts = {"render": {"rig": "toys4k8", "resolution": 64}}
    local = score(mesh, prompt="a cube", out=tmp_path / "l", options=_opts(tiny_clip_dir, None, **opts))
    remote = score(f"s3://{bucket}/assets/{rel}", prompt="a cube", out=tmp_path / "r",
                   options=_opts(tiny_clip_dir, tmp_path / "cache", **opts))
    assert local.rows[0]["success"] is True
    assert remote.rows[0]["clip_score"] == local.rows[0]["clip_score"]
    assert remote.view_rows == [dict(r) for r in local.view_rows]
    # the texture gone from the bucket: the row fails naming its address, as a local copy would name its path
    s3.fs.rm_file(f"{bucket}/assets/{texture.relative_to(asset).as_posix()}")
    failed = score(f"s3://{bucket}/assets/{rel}", prompt="a cube", out=tmp_path / "r2",
                   options=_opts(tiny_clip_dir, tmp_path / "cache", **opts))
    error = failed.rows[0]["error"]
    assert failed.rows[0]["success"] is False and texture.name in error
    assert f"s3://{bucket}/assets" in error and str(tmp_path / "cache") not in error


def test_cache_commands_count_prune_and_clear_fetched_objects(bucket: str, tiny_clip_dir: Path,
                                                              tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    cache = tmp_path / "cache"
    manifest = f"s3://{bucket}/set/manifest.csv"
    score(manifest, out=tmp_path / "a", options=_opts(tiny_clip_dir, cache))

    def info() -> dict:
        result = CliRunner().invoke(app, ["cache", "info", "--cache-dir", str(cache), "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert info()["remote"]["count"] == 11 and info()["remote"]["bytes"] > 0
    kept = CliRunner().invoke(app, ["cache", "prune", "--unused-days", "1", "--cache-dir", str(cache), "--json"])
    assert json.loads(kept.output)["remote"]["count"] == 0  # used just now
    cleared = CliRunner().invoke(app, ["cache", "clear", "--remote", "--cache-dir", str(cache), "--json"])
    assert json.loads(cleared.output)["remote"]["count"] == 11
    assert info()["remote"]["count"] == 0
    again = score(manifest, out=tmp_path / "b", options=_opts(tiny_clip_dir, cache))
    assert again.summary["remote"]["fetches"] == 11  # gone from the cache: fetched again, same numbers
    assert (tmp_path / "b" / "results.csv").read_bytes() == (tmp_path / "a" / "results.csv").read_bytes()
