"""FD / KD set metrics against a reference set (fd_incep, kd_incep, fd_dinov2, kd_dinov2).

Independent references: clean-fid's own functions (its resize, its FD and KD formulas, its
PyTorch port of the FID Inception's blocks and its feature pipeline over image files) and
torchmetrics' FID / KID formulas, all on identical inputs. The networks are random-weight
models of the real architectures, saved to files and loaded through the public loading path.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from gencritic.errors import InputError
from gencritic.metrics import sets
from gencritic.metrics.registry import all_metrics, create_metric
from gencritic.scoring import ScoreOptions, score

cleanfid = pytest.importorskip("cleanfid")


def inception() -> Any:
    """gencritic.models.inception, imported where used: on code without it the tests fail on their
    assertions about behaviour, not on collecting this file."""
    import importlib

    return importlib.import_module("gencritic.models.inception")

INCEPTION_BLOCKS = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                    "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                    "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c")


@pytest.fixture(scope="module")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight FID Inception saved as pytorch-fid's state-dict file."""
    inc = inception()
    torch.manual_seed(0)
    net = inc.build_fid_inception()
    # Deep random nets average every input to the same features; batch-norm statistics measured on
    # a few seeded pictures (a data-dependent init) keep the features far apart, so the distances
    # below compare sets that really differ
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None
            module.reset_running_stats()
    rng = np.random.default_rng(100)
    calibration = torch.from_numpy(np.stack([inc.clean_resize(rng.integers(0, 256, (64, 64, 3)).astype(np.uint8))
                                             for _ in range(4)]).transpose(0, 3, 1, 2).copy())
    with torch.no_grad():
        inc.Pool3(net).train()((calibration - 128) / 128)
    path = tmp_path_factory.mktemp("inception") / inc.STATE_DICT_NAME
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def tiny_dinov2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import Dinov2Config, Dinov2Model

    folder = tmp_path_factory.mktemp("tiny_dinov2")
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=224, patch_size=14)
    Dinov2Model(config).eval().save_pretrained(folder)
    return folder


def clean_fid_reference_inception(weights: Path) -> torch.nn.Module:
    """clean-fid's PyTorch port of the FID Inception (its FID blocks on torchvision's Inception3),
    with the same weights: the architecture reference, built without our module."""
    from cleanfid import inception_pytorch as ip

    net = ip._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    net.Mixed_5b = ip.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = ip.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = ip.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = ip.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = ip.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = ip.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = ip.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = ip.FIDInceptionE_1(1280)
    net.Mixed_7c = ip.FIDInceptionE_2(2048)
    net.load_state_dict(torch.load(weights, weights_only=True))
    return net.eval()


def reference_pool3(net: torch.nn.Module, scaled: torch.Tensor) -> torch.Tensor:
    x = scaled
    with torch.no_grad():
        for name in INCEPTION_BLOCKS:
            x = getattr(net, name)(x)
        return torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1)


def picture(path: Path, seed: int, size: tuple[int, int] = (83, 61)) -> Path:
    """A noisy picture with a coloured block (RGB PNG), different per seed."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (size[1], size[0], 3)).astype(np.uint8)
    arr[10:40, 15:50] = rng.integers(0, 256, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path


# -- the formulas -----------------------------------------------------------------------------------


def _two_sets(n: int = 24, d: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(n, d)) * 1.3 + 0.4
    return a, b


def test_fd_equals_clean_fid_and_torchmetrics_on_the_same_features() -> None:
    from cleanfid.fid import fid_from_feats
    from torchmetrics.image.fid import _compute_fid

    a, b = _two_sets()
    ours = sets.fid(a, b)
    assert ours == pytest.approx(fid_from_feats(a, b), rel=1e-9)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    tm = _compute_fid(ta.mean(0), torch.cov(ta.T), tb.mean(0), torch.cov(tb.T))
    assert ours == pytest.approx(float(tm), rel=1e-6)
    assert ours > 0.1 and sets.fid(a, a) == pytest.approx(0.0, abs=1e-8)


def test_fd_with_fewer_samples_than_dimensions_equals_clean_fids_sqrtm() -> None:
    """Rank-deficient covariances (fewer views than features): the exact trace from the samples
    equals clean-fid's sqrtm of the covariance product, and torchmetrics' eigenvalue form."""
    from cleanfid.fid import fid_from_feats
    from torchmetrics.image.fid import _compute_fid

    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(6, 40)), rng.normal(size=(9, 40)) * 0.7 + 0.2
    ours = sets.fid(a, b)
    assert ours == pytest.approx(fid_from_feats(a, b), rel=1e-6)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert ours == pytest.approx(float(_compute_fid(ta.mean(0), torch.cov(ta.T), tb.mean(0), torch.cov(tb.T))), rel=1e-6)
    assert sets.fid(a, a) == pytest.approx(0.0, abs=1e-9)


def test_kd_equals_clean_fid_and_torchmetrics_on_the_same_features() -> None:
    """With subsets as large as the sets every draw holds them whole, so the seeded draws of
    each implementation give the same unbiased MMD²: clean-fid's and torchmetrics' value."""
    from cleanfid.fid import kernel_distance
    from torchmetrics.image.kid import poly_mmd

    a, b = _two_sets()
    mean, std = sets.kid(a, b, subsets=3, subset_size=len(a), seed=0)
    np.random.seed(0)
    assert mean == pytest.approx(kernel_distance(a, b, num_subsets=2, max_subset_size=len(a)), rel=1e-9)
    assert mean == pytest.approx(float(poly_mmd(torch.from_numpy(a), torch.from_numpy(b))), rel=1e-9)
    assert std == pytest.approx(0.0, abs=1e-12) and mean > 0


# -- Inception: resize, architecture, loading -------------------------------------------------------


def test_clean_resize_is_clean_fids_resize() -> None:
    from cleanfid.resize import build_resizer

    rng = np.random.default_rng(1)
    for shape in ((97, 131, 3), (512, 512, 3), (40, 300, 3)):
        arr = rng.integers(0, 256, shape).astype(np.uint8)
        ours = inception().clean_resize(arr)
        theirs = build_resizer("clean")(arr)
        assert ours.dtype == np.float32 and ours.shape == (299, 299, 3)
        np.testing.assert_array_equal(ours, theirs)


def test_inception_loads_from_the_state_dict_and_matches_clean_fids_port(inception_weights: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    extractor = inception().load_inception(str(inception_weights), "cpu")
    reference = clean_fid_reference_inception(inception_weights)
    images = [Image.open(picture(inception_weights.parent / f"p{i}.png", i)) for i in range(2)]
    pixels = torch.stack([extractor.preprocess(im) for im in images])
    assert pixels.shape == (2, 3, 299, 299) and float(pixels.max()) <= 255.0
    ours = extractor.encode_images(pixels)
    theirs = reference_pool3(reference, (pixels - 128.0) / 128.0)
    assert ours.shape == (2, 2048)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(ours[0], ours[1])
    import gencritic.models.inception as inception_module

    monkeypatch.setattr(inception_module, "ENCODE_CHUNK", 1)  # forward passes in chunks: the same features
    torch.testing.assert_close(extractor.encode_images(pixels), ours, rtol=1e-5, atol=1e-6)


def test_inception_loads_a_torchscript_file_through_its_layers(inception_weights: Path, tmp_path: Path) -> None:
    """NVIDIA's TorchScript Inception (clean-fid's file) exposes ``layers``: called on the scaled input."""
    reference = clean_fid_reference_inception(inception_weights)

    class Exported(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.Sequential(*[getattr(reference, n) for n in INCEPTION_BLOCKS],
                                              torch.nn.AdaptiveAvgPool2d(1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    path = tmp_path / "inception-2015-12-05.pt"
    with pytest.warns(Warning), torch.no_grad():
        torch.jit.trace(Exported().eval(), torch.zeros(1, 3, 299, 299)).save(str(path))
    extractor = inception().load_inception(str(path), "cpu")
    pixels = extractor.preprocess(Image.open(picture(tmp_path / "p.png", 5)))[None]
    torch.testing.assert_close(extractor.encode_images(pixels), reference_pool3(reference, (pixels - 128) / 128),
                               rtol=1e-4, atol=1e-5)


def test_missing_inception_weights_say_how_to_provide_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.errors import ModelUnavailableError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("GENCRITIC_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(ModelUnavailableError, match=r"pt_inception-2015-12-05-6726825d.pth"):
        inception().load_inception(str(tmp_path / "absent.pth"), "cpu")
    if not (Path("/tmp") / "inception-2015-12-05.pt").is_file():
        with pytest.raises(ModelUnavailableError, match=r"GENCRITIC_INCEPTION_WEIGHTS"):
            inception().load_inception(None, "cpu")
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ModelUnavailableError, match=r"cannot load Inception weights .*bad.pth"):
        inception().load_inception(str(bad), "cpu")


# -- the registered metrics over a run --------------------------------------------------------------


@pytest.fixture()
def two_sets(tmp_path: Path) -> tuple[Path, Path]:
    gen = tmp_path / "gen"
    ref = tmp_path / "ref"
    for i in range(3):
        picture(gen / f"g{i}.png", 10 + i)
        picture(ref / f"r{i}.png", 20 + i, size=(120, 90))
    return gen, ref


def test_fd_kd_incep_equal_clean_fids_pipeline_on_the_same_files(two_sets: tuple[Path, Path], inception_weights: Path,
                                                                  tmp_path: Path) -> None:
    """The metric over a run equals clean-fid's own file loading, ``clean`` resize and formulas
    applied with clean-fid's port of the network (same weights)."""
    from cleanfid.fid import get_files_features, kernel_distance

    gen, ref = two_sets
    spec = f"ref={ref};model={inception_weights}"
    run = score(str(gen), options=ScoreOptions(metrics=[f"fd_incep:{spec}", f"kd_incep:{spec};subset_size=3;subsets=4"],
                                               cache_dir=tmp_path / "cache", progress=False))
    got = run.summary["set_metrics"]
    net = clean_fid_reference_inception(inception_weights)

    def features(folder: Path) -> np.ndarray:
        return get_files_features(sorted(folder.glob("*.png")), model=lambda x: reference_pool3(net, (x - 128) / 128),
                                  num_workers=0, batch_size=8, device=torch.device("cpu"), mode="clean", verbose=False)

    fg, fr = features(gen).astype(np.float64), features(ref).astype(np.float64)
    assert got["fd_incep"]["error"] is None and got["fd_incep"]["n_views"] == 3
    # the formula is checked against clean-fid's above; here the features (loading, resize, network)
    # are, through the same formula (clean-fid's sqrtm of a 2048² product takes minutes on a busy CPU)
    assert got["fd_incep"]["value"] == pytest.approx(sets.fid(fg, fr), rel=1e-4)
    assert got["fd_incep"]["value"] > 1.0  # the sets differ: not two near-equal numbers compared
    np.random.seed(0)
    assert got["kd_incep"]["value"] == pytest.approx(kernel_distance(fg, fr, num_subsets=1, max_subset_size=3), rel=1e-3)
    assert got["kd_incep"]["settings"] == {"ref": str(ref), "subset_size": "3", "subsets": "4"}
    assert got["fd_incep"]["model"] == str(inception_weights)
    # a second run reads both sets' features from the cache: same numbers, no network call
    again = score(str(gen), options=ScoreOptions(metrics=[f"fd_incep:{spec}"], cache_dir=tmp_path / "cache",
                                                 progress=False))
    assert again.summary["set_metrics"]["fd_incep"]["value"] == pytest.approx(got["fd_incep"]["value"], rel=1e-12)


def test_fd_kd_dinov2_equal_the_formulas_on_dgm_eval_features(two_sets: tuple[Path, Path], tiny_dinov2: Path,
                                                              tmp_path: Path) -> None:
    """dgm-eval's DINOv2 protocol, computed here with torchvision and transformers directly: whole
    image to 224×224 bicubic, ImageNet normalisation, raw CLS token after the final norm."""
    from cleanfid.fid import fid_from_feats
    from torchvision import transforms
    from transformers import Dinov2Model

    gen, ref = two_sets
    spec = f"ref={ref};model={tiny_dinov2}"
    run = score(str(gen), options=ScoreOptions(metrics=[f"fd_dinov2:{spec}", f"kd_dinov2:{spec}"], cache_dir=None,
                                               progress=False))
    got = run.summary["set_metrics"]
    model = Dinov2Model.from_pretrained(tiny_dinov2).eval()
    tf = transforms.Compose([transforms.Resize((224, 224), transforms.InterpolationMode.BICUBIC), transforms.ToTensor(),
                             transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])

    def features(folder: Path) -> np.ndarray:
        x = torch.stack([tf(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.png"))])
        with torch.no_grad():
            return model(pixel_values=x).last_hidden_state[:, 0].double().numpy()

    fg, fr = features(gen), features(ref)
    assert got["fd_dinov2"]["value"] == pytest.approx(fid_from_feats(fg, fr), rel=1e-4)
    from torchmetrics.image.kid import poly_mmd

    assert got["kd_dinov2"]["value"] == pytest.approx(float(poly_mmd(torch.from_numpy(fg), torch.from_numpy(fr))),
                                                      rel=1e-4, abs=1e-9)
    assert got["fd_dinov2"]["model"] == str(tiny_dinov2)


def test_a_bad_reference_set_is_one_line_before_any_work(two_sets: tuple[Path, Path], tmp_path: Path) -> None:
    _, ref = two_sets
    with pytest.raises(InputError, match=r"ref=.*nowhere.*input not found"):
        create_metric(f"fd_incep:ref={tmp_path / 'nowhere'}")
    single = tmp_path / "single"
    picture(single / "a.png", 1)
    with pytest.raises(InputError, match=r"ref=.*single holds 1 item\(s\); a reference set needs at least 2"):
        create_metric(f"kd_dinov2:ref={single}")
    with pytest.raises(InputError, match=r"ref"):
        create_metric("fd_dinov2")  # no reference: refused, never compared with nothing
    with pytest.raises(InputError, match=r"subsets"):
        create_metric(f"kd_incep:ref={ref};subsets=0")


def test_a_reference_item_that_cannot_be_drawn_is_the_metrics_error(two_sets: tuple[Path, Path], tiny_dinov2: Path,
                                                                    tmp_path: Path) -> None:
    gen, _ = two_sets
    broken = tmp_path / "broken"
    picture(broken / "a.png", 1)
    picture(broken / "b.png", 2)
    (broken / "c.png").write_bytes(b"not a png")
    run = score(str(gen), options=ScoreOptions(metrics=[f"fd_dinov2:ref={broken};model={tiny_dinov2}"], cache_dir=None,
                                               progress=False))
    got = run.summary["set_metrics"]["fd_dinov2"]
    assert got["value"] is None
    assert "1 of 3 item(s) could not be drawn (c.png" in got["error"]
    assert len(run.rows) == 3


def test_metrics_json_lists_the_set_distances_with_their_options() -> None:
    from gencritic.cli.main import app

    result = CliRunner().invoke(app, ["metrics", "--json"])
    assert result.exit_code == 0, result.output

    def no_constants(name: str) -> float:
        raise ValueError(f"not strict JSON: {name}")

    listed = {m["name"]: m for m in json.loads(result.output, parse_constant=no_constants)}
    for name in ("fd_incep", "kd_incep", "fd_dinov2", "kd_dinov2"):
        assert listed[name]["kind"] == "set" and listed[name]["higher_is_better"] is False
        assert {"ref", "model"} <= set(listed[name]["options"])
    assert {"subsets", "subset_size", "seed"} <= set(listed["kd_incep"]["options"])
    assert listed["kd_dinov2"]["columns"] == ["kd_dinov2", "kd_dinov2_std"]
    assert all(all_metrics()[n].info.kind == "set" for n in ("fd_incep", "kd_dinov2"))
    assert math.isinf(all_metrics()["fd_incep"].info.range[1])
