"""Ask a VLM each question once: answers cached by (image hash, prompt, model, settings), in batches.

Why: a VLM answer costs 10-1000x a CLIP embedding, judges ask the same (image, question) again
on every re-run, and an endpoint bills per request. :class:`AnswerCache` is a SQLite file in the
same cache folder as the embeddings (``vlm_answers.sqlite`` beside ``embeddings.sqlite``; opened
in WAL mode through :mod:`gencritic.sqlite_wal`, so several runs share it), and
:class:`VLMClient` is what judges call: it looks answers up, sends only what is missing (each
distinct question once, in batches), stores what came back and never stores a failure.

Keys are ``sha256`` of JSON ``[kind, image sha256, prompt, query, model id, model settings]``,
where ``query`` is what else shapes the answer (the answer tokens read, or ``max_new_tokens``)
and the settings hold the backend, dtype, device type and image bound: fp32 on CPU and bf16 on
a GPU never share an entry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from gencritic.cache_maintenance import VLM_ANSWERS_FILE, VLM_ANSWERS_TABLE
from gencritic.kvstore import KeyValueFile
from gencritic.models.vlm_base import VisionLanguageModel, VLMRequestError

ANSWERS_FILE = VLM_ANSWERS_FILE  # `gencritic cache info/clear` reads it by this name

ImageSource = Image.Image | Callable[[], Image.Image]  # a picture, or how to decode it when needed


def image_sha256(image: Image.Image) -> str:
    """Content hash of decoded pixels (mode, size and bytes), for images that have no file hash."""
    rgb = image.convert("RGB") if image.mode != "RGB" else image
    h = hashlib.sha256(f"{rgb.size[0]}x{rgb.size[1]}|".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def answer_key(kind: str, image_sha: str, prompt: str, query: Any, model_id: str, settings: dict[str, Any]) -> str:
    payload = json.dumps([kind, image_sha, prompt, query, model_id, settings], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class AnswerCache:
    """JSON answers by key. ``None`` path: a disabled cache that never hits (``--no-cache``)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._store = KeyValueFile(path, {VLM_ANSWERS_TABLE: "value TEXT NOT NULL"})
        self.hits = 0
        self.misses = 0

    @classmethod
    def in_dir(cls, directory: Path | None) -> AnswerCache:
        return cls(None if directory is None else Path(directory) / ANSWERS_FILE)

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        found = {key: json.loads(value) for key, value in self._store.select(VLM_ANSWERS_TABLE, "value", keys)}
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, pairs: Iterable[tuple[str, Any]]) -> None:
        if self._store.conn is None:
            return
        self._store.upsert(VLM_ANSWERS_TABLE, "value", ((k, json.dumps(v, ensure_ascii=False, allow_nan=False))
                                                for k, v in pairs))

    def row_count(self) -> int:
        return self._store.count(VLM_ANSWERS_TABLE)

    def close(self) -> None:
        self._store.close()


@dataclass(frozen=True)
class Answer:
    """One question's answer (``value``), or why there is none (``error``)."""

    value: Any
    error: str | None = None


def _picture(source: ImageSource) -> Image.Image:
    return source if isinstance(source, Image.Image) else source()


class VLMClient:
    """A VLM behind the answer cache, batched. Failures of a request fail its items only."""

    def __init__(self, vlm: VisionLanguageModel, cache: AnswerCache | None = None, batch_size: int = 8) -> None:
        self.vlm = vlm
        self.cache = cache or AnswerCache(None)
        self.batch_size = int(getattr(vlm, "preferred_batch", batch_size) or batch_size)

    @property
    def model_id(self) -> str:
        return self.vlm.model_id

    def first_token_logprobs(self, images: Sequence[ImageSource], shas: Sequence[str], prompts: Sequence[str],
                             answers: Sequence[str]) -> list[Answer]:
        """Per question: the list of log P(first token = answer) (None where unknown), or an error."""
        answers = list(answers)
        return self._ask("first_token_logprobs", answers, images, shas, prompts,
                         lambda ims, ps: self.vlm.first_token_logprobs(ims, ps, answers))

    def generate(self, images: Sequence[ImageSource], shas: Sequence[str], prompts: Sequence[str],
                 max_new_tokens: int) -> list[Answer]:
        """Per question: the greedy reply text, or an error."""
        return self._ask("generate", {"max_new_tokens": max_new_tokens}, images, shas, prompts,
                         lambda ims, ps: self.vlm.generate(ims, ps, max_new_tokens))

    def _ask(self, kind: str, query: Any, images: Sequence[ImageSource], shas: Sequence[str],
             prompts: Sequence[str], call: Callable[[list[Image.Image], list[str]], Sequence[Any]]) -> list[Answer]:
        settings = self.vlm.settings()
        keys = [answer_key(kind, s, p, query, self.vlm.model_id, settings) for s, p in zip(shas, prompts, strict=True)]
        found: dict[str, Answer] = {k: Answer(v) for k, v in self.cache.get_many(keys).items()}
        todo: dict[str, int] = {}  # each distinct question once, in input order
        for i, key in enumerate(keys):
            if key not in found:
                todo.setdefault(key, i)
        # shortest prompts first: a batch pads to its longest row, so similar lengths waste little
        order = sorted(todo.values(), key=lambda i: (len(prompts[i]), i))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            try:
                values = list(call([_picture(images[i]) for i in chunk], [prompts[i] for i in chunk]))
            except VLMRequestError as exc:
                for i in chunk:
                    found[keys[i]] = Answer(None, str(exc))
                continue
            fresh = {keys[i]: v for i, v in zip(chunk, values, strict=True)}
            self.cache.put_many(fresh.items())
            found.update({k: Answer(v) for k, v in fresh.items()})
        return [found[k] for k in keys]
