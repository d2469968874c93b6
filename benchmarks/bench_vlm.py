"""VQAScore speed: gencritic's batched path vs a loop that calls the model once per image.

Both compute P("Yes" | image, question) at the first answer position with the *same* model
object, processor, images and questions. The loop is t2v_metrics' way for Qwen2-VL: per item,
the chat template, the processor on one image, ``generate(max_new_tokens=1)`` and a softmax.
gencritic's path is the public one (:class:`~gencritic.models.vlm_cache.VLMClient` with the answer
cache off): the same call on left-padded batches. Prints images/s of both, their ratio, and the
largest difference between their probabilities. Interleaved rounds, best of each.

    python benchmarks/bench_vlm.py                       # CPU: a small random Qwen2-VL, 112² images
    python benchmarks/bench_vlm.py --size 224            # the same with 4x the visual tokens
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
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tok, video_processor=video,
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


def build_small(folder: Path, device: str) -> Any:
    """A small random Qwen2-VL saved and loaded through gencritic's public loader."""
    from gencritic.models.vlm import load_vlm
    from tests.vlm_fixtures import build_tiny_qwen2_vl

    build_tiny_qwen2_vl(folder, hidden=128, layers=4, vision_depth=2, vision_dim=64, max_pixels=448 * 448)
    return load_vlm(str(folder), device=device, max_side=None)


def loop_path(vlm: Any, images: list[Image.Image], prompts: list[str]) -> np.ndarray:
    """t2v_metrics' loop: the model called once per image (same model, processor and readout)."""
    from transformers import GenerationConfig

    yes = vlm.token_id("Yes")
    config = GenerationConfig(max_new_tokens=1, do_sample=False, pad_token_id=vlm.tokenizer.pad_token_id,
                              eos_token_id=vlm.tokenizer.eos_token_id, output_logits=True,
                              return_dict_in_generate=True)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=["small", "2b"], default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--n", type=int, default=64, help="images")
    ap.add_argument("--size", type=int, default=112, help="image side in pixels")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--loop-n", type=int, default=None, help="images for the loop path (default: --n)")
    args = ap.parse_args()
    device = torch.device(args.device)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    images, prompts = make_images(args.n, args.size)
    sync = device.type == "cuda"
    with tempfile.TemporaryDirectory() as tmp:
        if args.shape == "2b":
            vlm = build_2b(device, dtype)
        else:
            vlm = build_small(Path(tmp) / "small_qwen2_vl", args.device)
            vlm.model.to(dtype)
            vlm.dtype = dtype
        print(f"{args.n} images {args.size}², batch {args.batch}, {device}, {args.dtype}, torch threads "
              f"{torch.get_num_threads()}, transformers {__import__('transformers').__version__}")
        loop_n = args.loop_n or args.n
        batched_path(vlm, images[:args.batch], prompts[:args.batch], args.batch)  # warm-up (kernels, allocator)
        loop_path(vlm, images[:2], prompts[:2])
        best_loop = best_batch = cpu_loop = cpu_batch = float("inf")
        loop_vals = batch_vals = np.zeros(0)
        for _ in range(args.rounds):  # interleaved, so a busy minute hurts both
            t, c, loop_vals = timed(lambda: loop_path(vlm, images[:loop_n], prompts[:loop_n]), sync)
            best_loop, cpu_loop = min(best_loop, t / loop_n), min(cpu_loop, c / loop_n)
            t, c, batch_vals = timed(lambda: batched_path(vlm, images, prompts, args.batch), sync)
            best_batch, cpu_batch = min(best_batch, t / args.n), min(cpu_batch, c / args.n)
    diff = float(np.abs(loop_vals - batch_vals[:loop_n]).max())
    print(f"loop, one model call per image: {1 / best_loop:8.1f} images/s")
    print(f"gencritic batched (batch {args.batch}):  {1 / best_batch:8.1f} images/s")
    print(f"ratio: {best_loop / best_batch:.2f}x (CPU time: {cpu_loop / cpu_batch:.2f}x)   "
          f"max |ΔP(Yes)| between the paths: {diff:.2e}")


if __name__ == "__main__":
    main()
