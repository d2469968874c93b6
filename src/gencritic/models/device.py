"""Device and dtype choice, explicit and reported.

``auto`` picks CUDA, then Apple MPS, then CPU. Half precision is the GPU default because it
is 2-3x faster there with cosine differences far below the reporting precision; on CPU fp32
is the default and ``int8`` (dynamic quantisation of linear layers) is the opt-in fast mode.
"""

from __future__ import annotations

import torch

from gencritic.errors import InputError

DTYPES = ("auto", "fp32", "fp16", "bf16", "int8")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a device, failing clearly if it is absent."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {name} asked for CUDA but no CUDA GPU is visible; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device mps asked for Apple MPS but it is not available; use --device cpu or auto")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps") from None


def resolve_dtype(name: str, device: torch.device) -> tuple[torch.dtype, bool]:
    """Return (compute dtype, quantise_int8). ``auto`` is fp16 on CUDA, fp32 elsewhere."""
    name = (name or "auto").lower()
    if name not in DTYPES:
        raise InputError(f"unknown dtype {name!r}: use one of {', '.join(DTYPES)}")
    if name == "auto":
        return (torch.float16 if device.type == "cuda" else torch.float32), False
    if name == "int8":
        if device.type != "cpu":
            raise InputError("--dtype int8 (dynamic quantisation) runs on CPU only; on GPU use fp16 or bf16")
        return torch.float32, True
    if name in ("fp16", "bf16") and device.type == "cpu" and name == "fp16":
        raise InputError("--dtype fp16 is not supported on CPU; use fp32, bf16 or int8")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name], False


def dtype_name(dtype: torch.dtype, int8: bool = False) -> str:
    if int8:
        return "int8"
    return {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))


def describe_runtime(device: str = "auto", dtype: str = "auto") -> dict[str, str | int]:
    """What a run actually ran on: the resolved device (``cuda:0``, not ``auto``), dtype in
    ``--dtype``'s words (``fp32``, ``fp16``, ``int8``...) and torch's CPU thread count, which
    moves the last bits of CPU results. Recorded in ``summary.json`` so a published number
    says where it came from."""
    dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    compute, int8 = resolve_dtype(dtype, dev)
    return {"device": str(dev), "dtype": dtype_name(compute, int8), "torch_threads": torch.get_num_threads()}
