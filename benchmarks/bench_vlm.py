"""VQAScore speed: gencritic's batched path vs a loop that calls the model once per image.

All compute P("Yes" | image, question) at the first answer position with the *same* model
object, processor, images and questions. The loop is t2v_metrics' way for Qwen2-VL: per item,
the chat template, the processor on one image, ``generate(max_new_tokens=1)`` and a softmax.
gencritic's path is the public one (:class:`~gencritic.models.vlm_cache.VLMClient` with the answer
cache off): one forward pass per left-padded batch, the language head on the answer position
only. It is also timed one image per call, which separates what batching gains from what
dropping generate() gains. Prints images/s of each, the ratios (wall and process CPU time), and
the largest difference between the loop's and the batched probabilities. Interleaved rounds,
best of each.

    python benchmarks/bench_vlm.py --threads 1           # CPU: tiny and small random LLaVA and Qwen2-VL
    python benchmarks/bench_vlm.py --shape 2b --device cuda --dtype bf16 --size 448 --n 256

``--shape 2b`` is Qwen2-VL-2B-Instruct's architecture (1.5B language model, 675M vision tower,
151,936-token vocabulary) with random weights, built in memory: speed does not depend on the
weights, and the GPU machines cannot download them. Its tokenizer is a small word-level one,
(a byte-level BPE trained on a few words), so prompts are a few tokens longer or shorter than with Qwen's; a 448² image is 256 visual tokens either way.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

QUESTION = 'Does this figure show "{}"? Please answer yes or no.'
WORDS = ["a", "red", "green", "blue", "yellow", "square", "circle", "photo", "of", "the", "on", "with"]

# Qwen2-VL-2B-Instruct's config.json (architecture only)
QWEN2_VL_2B = {
    "text": {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
             "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
             "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
             "tie_word_embeddings": True, "rms_norm_eps": 1e-6},
    "vision": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "mlp_ratio": 4, "num_heads": 16,
               "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "in_chans": 3},
}


def make_images(n: int, size: int) -> tuple[list[Image.Image], list[str]]:
    rng = np.random.default_rng(0)
    images, prompts = [], []
    for _ in range(n):
        base = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        images.append(Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC))
        words = rng.choice(WORDS, size=int(rng.integers(2, 9)))
        prompts.append(QUESTION.format(" ".join(words)))
    return images, prompts


def build_2b(device: torch.device, dtype: torch.dtype) -> Any:
    """Qwen2-VL-2B's shape with random weights, wrapped as gencritic's HF VLM (never written to disk)."""
    from transformers import (
        Qwen2TokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
    )

    from gencritic.models.vlm import HFVisionLanguageModel
    from tests.vlm_fixtures import QWEN_SPECIAL, QWEN_TEMPLATE, byte_level_bpe

    tok = Qwen2TokenizerFast(tokenizer_object=byte_level_bpe(QWEN_SPECIAL), eos_token="<|im_end|>",
                             pad_token="<|endoftext|>", unk_token=None)
    video = None
    try:
        from transformers import Qwen2VLVideoProcessor

        video = Qwen2VLVideoProcessor()
    except ImportError:
        pass
    try:  # the torchvision processor, as load_vlm asks for (use_fast=True)
        from transformers import Qwen2VLImageProcessorFast as ImageProcessor
    except ImportError:
        ImageProcessor = Qwen2VLImageProcessor
    processor = Qwen2VLProcessor(image_processor=ImageProcessor(), tokenizer=tok, video_processor=video,
                                 chat_template=QWEN_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    text = dict(QWEN2_VL_2B["text"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                bos_token_id=None)
    config = Qwen2VLConfig(text_config=text, vision_config=dict(QWEN2_VL_2B["vision"]),
                           image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                           vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration(config).to(dtype).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e9
    print(f"random Qwen2-VL-2B-shaped model: {params:.2f} B parameters, {dtype}, {device}")
    return HFVisionLanguageModel(model, processor, "qwen2-vl-2b-shape-random", device, dtype, max_side=None)


def build_local(shape: str, family: str, folder: Path, device: str) -> Any:
    """A random VLM saved and loaded through gencritic's public loader. ``tiny``: the tests' models
    (width 32, 2 layers; LLaVA sees 32², Qwen2-VL up to 112²): per-call costs dominate. ``small``:
    width 64 with 112² views for both (64 patches): the model's own work is a real share."""
    from gencritic.models.vlm import load_vlm
    from tests.vlm_fixtures import build_tiny_llava, build_tiny_qwen2_vl

    if family == "llava":
        if shape == "tiny":
            build_tiny_llava(folder)
        else:
            build_tiny_llava(folder, hidden=64, layers=2, vision_dim=64, image_size=112, patch_size=14)
    elif shape == "tiny":
        build_tiny_qwen2_vl(folder)
    else:
        build_tiny_qwen2_vl(folder, hidden=64, layers=2, vision_depth=2, vision_dim=32, max_pixels=448 * 448)
    return load_vlm(str(folder), device=device, max_side=None)


def loop_path(vlm: Any, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
    """t2v_metrics' loop: the model called once per image (same model, processor and readout)."""
    yes = vlm.token_id("Yes")
    config = vlm._generation_config(1, logits=True)  # the same greedy settings as the batched path
    out = []
    with torch.inference_mode():
        for image, prompt in zip(images, prompts, strict=True):
            inputs = vlm.inputs([image], [prompt])
            res = vlm.model.generate(**inputs, generation_config=config)
            out.append(float(torch.softmax(res.logits[0].float(), dim=-1)[0, yes]))
    return np.array(out)


def batched_path(vlm: Any, images: list[Image.Image], prompts: list[str], batch: int) -> np.ndarray:
    from gencritic.models.vlm_cache import VLMClient

    client = VLMClient(vlm, None, batch_size=batch)
    answers = client.first_token_logprobs(images, [f"bench-{i}" for i in range(len(images))], prompts, ["Yes"])
    return np.exp(np.array([a.value[0] for a in answers], dtype=np.float64))


def timed(fn: Any, sync: bool) -> tuple[float, float, np.ndarray]:
    """(wall s, process CPU s, result). CPU time is reported too: it moves less when other
    processes share the machine's cores."""
    if sync:
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    values = fn()
    if sync:
        torch.cuda.synchronize()
    return time.perf_counter() - t, time.process_time() - c, values


def run(vlm: Any, args: argparse.Namespace, label: str) -> None:
    images, prompts = make_images(args.n, args.size)
    sync = vlm.device.type == "cuda"
    loop_n = args.loop_n or args.n
    paths = {  # name -> (function, images it scores)
        "loop": (lambda: loop_path(vlm, images[:loop_n], prompts[:loop_n]), loop_n),
        "single": (lambda: batched_path(vlm, images[:loop_n], prompts[:loop_n], 1), loop_n),
        "batched": (lambda: batched_path(vlm, images, prompts, args.batch), args.n),
    }
    batched_path(vlm, images[:args.batch], prompts[:args.batch], args.batch)  # warm-up (kernels, allocator)
    loop_path(vlm, images[:2], prompts[:2])
    wall = dict.fromkeys(paths, float("inf"))
    cpu = dict.fromkeys(paths, float("inf"))
    values: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):  # interleaved, so a busy minute hurts every path
        for name, (fn, n) in paths.items():
            t, c, values[name] = timed(fn, sync)
            wall[name], cpu[name] = min(wall[name], t / n), min(cpu[name], c / n)
    diff = float(np.abs(values["loop"] - values["batched"][:loop_n]).max())
    print(f"[{label}] {args.n} images {args.size}², {vlm.device}, {args.dtype}, torch threads "
          f"{torch.get_num_threads()}, transformers {__import__('transformers').__version__}")
    print(f"[{label}] loop, generate() once per image (t2v_metrics): {1 / wall['loop']:8.1f} images/s")
    print(f"[{label}] gencritic, one image per call:                {1 / wall['single']:8.1f} images/s")
    print(f"[{label}] gencritic batched (batch {args.batch}):                 {1 / wall['batched']:8.1f} images/s")
    print(f"[{label}] batched vs loop: {wall['loop'] / wall['batched']:.2f}x (CPU time "
          f"{cpu['loop'] / cpu['batched']:.2f}x); vs one per call: {wall['single'] / wall['batched']:.2f}x; "
          f"max |ΔP(Yes)| batched vs loop: {diff:.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", default="tiny,small", help="comma-separated: tiny, small (CPU) or 2b (GPU)")
    ap.add_argument("--family", choices=["llava", "qwen2_vl", "both"], default="both",
                    help="architecture of the tiny/small models")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--n", type=int, default=64, help="images")
    ap.add_argument("--size", type=int, default=112, help="image side in pixels")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loop-n", type=int, default=None, help="images for the loop path (default: --n)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    shapes = [x.strip() for x in args.shape.split(",") if x.strip()]
    if "2b" in shapes:
        run(build_2b(device, dtype), args, "qwen2-vl-2b shape")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            for family in (["llava", "qwen2_vl"] if args.family == "both" else [args.family]):
                vlm = build_local(shape, family, Path(tmp) / f"{shape}_{family}", args.device)
                vlm.model.to(dtype)
                vlm.dtype = dtype
                run(vlm, args, f"{shape} {family}")


if __name__ == "__main__":
    main()
