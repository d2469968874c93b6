"""Parse a model spec and load it, or say exactly why not and how to fix it.

Accepted specs (``--model``):

* a Hugging Face hub id (``openai/clip-vit-base-patch32``, the default) or ``hf:ID``;
* a local folder saved with ``save_pretrained`` (``config.json`` of a CLIP model);
* a local folder with ``open_clip_config.json`` (open_clip's hub layout);
* an open_clip ``NAME/TAG`` (``ViT-B-32/laion2b_s34b_b79k``), ``open_clip:NAME/TAG`` or
  ``open_clip:NAME@/path/to/weights``; ``hf-hub:org/repo`` for open_clip hub repos;
* a checkpoint file (``.pt``/``.pth``/``.bin``/``.safetensors``): OpenAI-format state dicts
  (including TorchScript archives and Long-CLIP's 248-token checkpoints: the text context is
  read from the positional embedding), or HF-format weights with a ``config.json`` beside them.

Loading never falls back to anything: an unavailable model is a
:class:`~gencritic.errors.ModelUnavailableError` naming the model and the ways to provide it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.models.clip import ClipBackbone, HFClipBackbone, OpenClipBackbone
from gencritic.models.defaults import DEFAULT_CLIP_MODEL
from gencritic.models.device import resolve_device, resolve_dtype

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def hub_offline() -> bool:
    """True when the user asked for offline use (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _how_to_provide(spec: str) -> str:
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    offline = hub_offline()
    mode = "HF_HUB_OFFLINE=1 is set, so only local files are used. " if offline else ""
    return (
        f"{mode}Provide it as a local folder saved with save_pretrained (--model /path/to/folder), "
        f"a checkpoint file (--model /path/to/model.safetensors), or place it in the Hugging Face cache "
        f"({hf_home}, set HF_HOME to move it) from a machine with internet access."
    )


def _unavailable(spec: str, reason: str) -> ModelUnavailableError:
    reason = " ".join(str(reason).split())[:300].rstrip(". ")
    return ModelUnavailableError(f"cannot load model '{spec}': {reason}. {_how_to_provide(spec)}")


# ---------------------------------------------------------------------------------------------
# Hugging Face


def _load_hf(source: str, model_id: str, device: torch.device, dtype: torch.dtype, int8: bool) -> ClipBackbone:
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it per call so a notebook or
    # service that sets it later is honoured, and offline failures are instant, not timeouts.
    local = hub_offline()
    try:
        model = CLIPModel.from_pretrained(source, local_files_only=local)
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local)
        processor = CLIPImageProcessor.from_pretrained(source, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise _unavailable(model_id, str(exc).split("\n")[0]) from None
    return HFClipBackbone(model, tokenizer, processor, model_id, device, dtype, int8)


def _load_hf_weights_file(path: Path, device: torch.device, dtype: torch.dtype, int8: bool) -> ClipBackbone:
    """HF-format weights in a single file: needs the config/tokenizer files beside it."""
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = path.parent
    if not (folder / "config.json").exists():
        raise _unavailable(str(path), "HF-format weights need config.json (and tokenizer files) in the same folder")
    config = CLIPConfig.from_pretrained(folder)
    model = CLIPModel(config)
    state = _read_state_dict(path)
    missing, _unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing:
        raise _unavailable(str(path), f"checkpoint lacks {len(missing)} weights (e.g. {missing[0]})")
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        processor = CLIPImageProcessor.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise _unavailable(str(path), f"tokenizer/preprocessor files missing beside the weights: {exc}") from None
    return HFClipBackbone(model, tokenizer, processor, str(path), device, dtype, int8)


# ---------------------------------------------------------------------------------------------
# open_clip


def _open_clip_token_counter(tokenizer: Any) -> Callable[[str], int]:
    inner = getattr(tokenizer, "tokenizer", None)
    if inner is not None and callable(inner) and not hasattr(tokenizer, "encode"):
        return lambda text: len(inner(text, truncation=False)["input_ids"])
    encode = getattr(tokenizer, "encode", None)
    if encode is None:
        from open_clip.tokenizer import SimpleTokenizer

        encode = SimpleTokenizer().encode
    return lambda text: len(encode(text)) + 2  # + start and end tokens


def _load_open_clip(name: str, pretrained: str | None, model_id: str, device: torch.device,
                    dtype: torch.dtype, int8: bool) -> ClipBackbone:
    import open_clip

    try:
        model, _, transform = open_clip.create_model_and_transforms(name, pretrained=pretrained, device="cpu")
        tokenizer = open_clip.get_tokenizer(name)
    except RuntimeError as exc:
        raise _unavailable(model_id, str(exc).split("\n")[0]) from None
    except (OSError, ValueError, FileNotFoundError) as exc:
        raise _unavailable(model_id, str(exc).split("\n")[0]) from None
    return OpenClipBackbone(model, tokenizer, transform, model_id, device, dtype, int8,
                            _open_clip_token_counter(tokenizer))


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except RuntimeError as exc:
            if "TorchScript" in str(exc) or "constants.pkl" in str(exc) or "archive" in str(exc):
                obj = torch.jit.load(str(path), map_location="cpu").state_dict()
            else:
                raise
    except ModelUnavailableError:
        raise
    except Exception as exc:
        raise _unavailable(str(path), f"not a readable checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise _unavailable(str(path), "checkpoint does not hold a state dict")
    return {k.removeprefix("module."): v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def fold_long_clip_positions(state: dict[str, torch.Tensor], keep: int = 20) -> dict[str, torch.Tensor]:
    """Long-CLIP trains ``positional_embedding`` (first ``keep`` positions kept from CLIP) plus a
    residual ``positional_embedding_res`` for the rest; the model uses
    ``pe * mask1 + pe_res * mask2``. Fold them into one table so a stock OpenAI-format model
    reproduces Long-CLIP's forward pass exactly."""
    if "positional_embedding_res" not in state:
        return state
    state = dict(state)
    pe = state["positional_embedding"]
    res = state.pop("positional_embedding_res")
    mask1 = state.pop("mask1", None)
    mask2 = state.pop("mask2", None)
    if mask1 is None or mask2 is None:
        mask1 = torch.zeros(pe.shape[0], 1, dtype=pe.dtype)
        mask1[:keep] = 1
        mask2 = 1 - mask1
    state["positional_embedding"] = pe * mask1.to(pe.dtype) + res * mask2.to(pe.dtype)
    return state


def _load_openai_format(state: dict[str, torch.Tensor], model_id: str, device: torch.device,
                        dtype: torch.dtype, int8: bool) -> ClipBackbone:
    import open_clip
    from open_clip.model import build_model_from_openai_state_dict
    from open_clip.transform import image_transform

    state = fold_long_clip_positions(state)
    try:
        model = build_model_from_openai_state_dict(state, cast_dtype=torch.float32)
    except Exception as exc:
        raise _unavailable(model_id, f"not an OpenAI-format CLIP state dict ({type(exc).__name__}: {exc})") from None
    model = model.float()
    transform = image_transform(model.visual.image_size, is_train=False)

    def tokenizer(texts: list[str], context_length: int = 77) -> torch.Tensor:
        return open_clip.tokenize(texts, context_length=context_length)

    return OpenClipBackbone(model, tokenizer, transform, model_id, device, dtype, int8,
                            _open_clip_token_counter(None))


def _is_openai_format(keys: set[str]) -> bool:
    return "positional_embedding" in keys and "token_embedding.weight" in keys


def _is_hf_format(keys: set[str]) -> bool:
    return any(k.startswith(("text_model.", "vision_model.")) for k in keys)


def _load_checkpoint_file(path: Path, device: torch.device, dtype: torch.dtype, int8: bool) -> ClipBackbone:
    state = _read_state_dict(path)
    keys = set(state)
    if _is_openai_format(keys):
        return _load_openai_format(state, str(path), device, dtype, int8)
    if _is_hf_format(keys):
        return _load_hf_weights_file(path, device, dtype, int8)
    sample = ", ".join(sorted(keys)[:4])
    if any(k.startswith("blip.visual_encoder.") for k in keys):
        raise _unavailable(str(path), "an ImageReward checkpoint, not a CLIP model: score it with "
                                      f"--metrics imagereward:model={path}, or train on it with "
                                      f"`gencritic train --backbone imagereward --model {path}`")
    raise _unavailable(str(path), f"unrecognised checkpoint layout (keys like {sample}); for open_clip "
                                  f"weights use --model open_clip:MODEL_NAME@{path}")


# ---------------------------------------------------------------------------------------------


def _open_clip_names() -> set[str]:
    import open_clip

    return set(open_clip.list_models())


def load_clip(spec: str = DEFAULT_CLIP_MODEL, device: str = "auto", dtype: str = "auto") -> ClipBackbone:
    """Load a CLIP-family dual encoder from any supported spec (see module docstring)."""
    if not spec or not spec.strip():
        raise InputError("empty --model: give a hub id, a local folder or a checkpoint file")
    spec = spec.strip()
    dev = resolve_device(device)
    torch_dtype, int8 = resolve_dtype(dtype, dev)

    if spec.startswith("hf:"):
        return _load_hf(spec[3:], spec[3:], dev, torch_dtype, int8)
    if spec.startswith("hf-hub:"):
        return _load_open_clip(spec, None, spec, dev, torch_dtype, int8)
    if spec.startswith("open_clip:"):
        body = spec[len("open_clip:"):]
        name, sep, weights = body.partition("@")
        if not sep:
            name, _, tag = body.partition("/")
            weights = tag
        looks_like_path = weights and ("/" in weights or weights.endswith(CHECKPOINT_SUFFIXES))
        if looks_like_path and not Path(weights).exists():
            raise _unavailable(spec, f"weights file not found: {weights}")
        return _load_open_clip(name, weights or None, spec, dev, torch_dtype, int8)

    path = Path(spec).expanduser()
    if path.exists():
        if path.is_dir():
            if (path / "open_clip_config.json").exists():
                return _load_open_clip(f"local-dir:{path}", None, str(path), dev, torch_dtype, int8)
            if (path / "config.json").exists():
                cfg = json.loads((path / "config.json").read_text())
                if cfg.get("model_type") not in (None, "clip") and "CLIPModel" not in cfg.get("architectures", []):
                    raise _unavailable(spec, f"config.json describes a {cfg.get('model_type')!r} model, not CLIP")
                return _load_hf(str(path), str(path), dev, torch_dtype, int8)
            raise _unavailable(spec, "folder has neither config.json (transformers) nor open_clip_config.json")
        if path.suffix.lower() in CHECKPOINT_SUFFIXES:
            return _load_checkpoint_file(path, dev, torch_dtype, int8)
        raise _unavailable(spec, f"unsupported weights file type {path.suffix!r}")
    if spec.startswith((".", "/", "~")) or spec.endswith(CHECKPOINT_SUFFIXES):
        raise _unavailable(spec, "no such file or folder")

    name, _, tag = spec.partition("/")
    if name in _open_clip_names():
        if not tag:
            raise InputError(f"open_clip model '{name}' needs a pretrained tag, e.g. {name}/openai")
        return _load_open_clip(name, tag, spec, dev, torch_dtype, int8)
    return _load_hf(spec, spec, dev, torch_dtype, int8)


class ModelPool:
    """Loaded models shared by every metric of a run (and every request of a service).

    Keyed by (spec, device, dtype), so three metrics that name the same backbone get one
    instance, and the embedding cache sees one namespace.
    """

    def __init__(self, device: str = "auto", dtype: str = "auto") -> None:
        self.device = device
        self.dtype = dtype
        self._models: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def clip(self, spec: str = DEFAULT_CLIP_MODEL) -> ClipBackbone:
        return self.get(("clip", spec), lambda: load_clip(spec, self.device, self.dtype))

    def get(self, key: tuple[str, str], factory: Callable[[], Any]) -> Any:
        """Any other model kind (LPIPS nets, heads...) is cached here the same way."""
        with self._lock:
            if key not in self._models:
                self._models[key] = factory()
            return self._models[key]

    def loaded(self) -> list[tuple[str, str]]:
        return list(self._models)
