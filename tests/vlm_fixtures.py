"""Tiny random vision-language models for the VLM tests, built from transformers configs.

Nothing can be downloaded, so each model gets a tokenizer made here with the ``tokenizers``
library (a byte-level BPE trained on the words judges use for Qwen2-VL, a word-level one for LLaVA:
"Yes", "yes", "1", "2", JSON punctuation, the explosion profile's parameter names) plus the
special tokens its processor needs, and is saved
with ``save_pretrained`` (model, tokenizer, image processor, chat template) so the tests load it
through :func:`gencritic.models.vlm.load_vlm`, the path users take. Two families: Qwen2-VL (3-D
rotary positions, variable image token counts) and LLaVA (a CLIP tower and a Llama).
"""

from __future__ import annotations

from pathlib import Path

_WORD_TEXT = (
    "Does this figure show a an the of red green blue yellow square circle photo Please answer yes or no Yes No "
    "1 2 3 which one is better left right object image objects description with and on in render effect look "
    "issues severity region suggested_changes parameter direction increase decrease reason summary description "
    "minor moderate severe whole foreground background emissive smoke top bottom centre true false null "
    "emission_strength exposure flame_vorticity flame_max_temp flame_smoke fuel_amount camera_distance "
    "camera_target beta vorticity render_samples time_scale timesteps_min dissolve_speed flame_ignition"
)
WORDS = _WORD_TEXT.split()
PUNCTUATION = list('"?.,:;{}[]()!-+%\'_/*#<>=')

QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]

LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() }}: {% if message['content'] is string %}"
    "{{ message['content'] }}{% else %}{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<image>\n{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}{% endif %}\n"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}")
LLAVA_SPECIAL = ["<s>", "</s>", "<pad>", "<image>"]


def word_tokenizer(special: list[str]):  # type: ignore[no-untyped-def]
    """A word-level ``tokenizers.Tokenizer``: each listed word and punctuation mark one token, the
    rest ``[UNK]``; the special tokens are split out before words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab = {"[UNK]": 0}
    for word in [*WORDS, *PUNCTUATION]:
        vocab.setdefault(word, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece()  # words joined with spaces
    tok.add_special_tokens(special)
    return tok


# Qwen2's pre-tokenisation (its tokenizer.json): this split, then byte-level without its own regex
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
              r"\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level_bpe(special: list[str]):  # type: ignore[no-untyped-def]
    """A byte-level BPE trained here on the judges' words, with Qwen2's pre-tokenisation: every text
    encodes (no unknown token), each listed word becomes one token, with or without a leading space.
    transformers 5 rebuilds Qwen2's tokenizer from vocabulary and merges with its own pipeline; a
    tokenizer made this way encodes the same there as in 4.x."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    corpus = [" ".join(WORDS)] * 50 + [w for w in WORDS for _ in range(20)] + ["".join(PUNCTUATION)] * 5
    trainer = trainers.BpeTrainer(vocab_size=2000, min_frequency=1, special_tokens=special, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return tok


def build_tiny_qwen2_vl(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2, vision_depth: int = 2,
                        vision_dim: int = 32, max_pixels: int = 28 * 28 * 16) -> Path:
    """A random Qwen2-VL saved with save_pretrained (model + Qwen2VLProcessor with a chat template)."""
    import torch
    from transformers import (
        Qwen2TokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tok = Qwen2TokenizerFast(tokenizer_object=byte_level_bpe(QWEN_SPECIAL), eos_token="<|im_end|>",
                             pad_token="<|endoftext|>", unk_token=None)
    image_processor = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=max_pixels, patch_size=14, merge_size=2,
                                            temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_processor, tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(), chat_template=QWEN_TEMPLATE)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
    head_dim = hidden // 4
    torch.manual_seed(seed)
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tok), "hidden_size": hidden, "intermediate_size": 2 * hidden,
                     "num_hidden_layers": layers, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 4096,
                     "rope_scaling": {"type": "mrope", "mrope_section": [head_dim // 8, head_dim // 8,
                                                                         head_dim // 2 - head_dim // 4]},
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"], "bos_token_id": None},
        vision_config={"depth": vision_depth, "embed_dim": vision_dim, "hidden_size": hidden, "num_heads": 2,
                       "mlp_ratio": 2, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
                       "in_chans": 3},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def build_tiny_llava(folder: Path, seed: int = 0, hidden: int = 32, layers: int = 2, vision_dim: int = 32,
                     image_size: int = 32, patch_size: int = 8) -> Path:
    """A random LLaVA (CLIP vision tower + Llama) saved with save_pretrained, with a LlavaProcessor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    folder.mkdir(parents=True, exist_ok=True)
    tok = PreTrainedTokenizerFast(tokenizer_object=word_tokenizer(LLAVA_SPECIAL), bos_token="<s>", eos_token="</s>",
                                  pad_token="<pad>", unk_token="[UNK]", model_input_names=["input_ids", "attention_mask"])
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                               vision_feature_select_strategy="default", chat_template=LLAVA_TEMPLATE,
                               image_token="<image>", num_additional_image_tokens=1)
    torch.manual_seed(seed)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=vision_dim, intermediate_size=2 * vision_dim, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image_size, patch_size=patch_size,
                                       projection_dim=16),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=layers,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                pad_token_id=tok.pad_token_id),
        image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_select_strategy="default",
        vision_feature_layer=-1, image_seq_length=(image_size // patch_size) ** 2,
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
