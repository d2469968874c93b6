"""What every vision-language backend shares: the interface, the error of one failed request,
the image bound and the seed. Its own module so the local backend (:mod:`gencritic.models.vlm`,
which also picks a backend from a spec) and the endpoint one (:mod:`gencritic.models.vlm_endpoint`)
import it without importing each other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from PIL import Image

DEFAULT_MAX_SIDE = 448  # the resolution the speed target names; views are 512² and come down to 448²
SEED = 0


class VLMRequestError(Exception):
    """One request failed for good (an endpoint refused it, or its retries ran out); the items it
    was for fail with this message, the run goes on."""


@runtime_checkable
class VisionLanguageModel(Protocol):
    """What every VLM backend offers. ``images[i]`` goes with ``prompts[i]``."""

    model_id: str

    def settings(self) -> dict[str, Any]:
        """Everything besides the model id and the inputs that changes an answer (cache key, rows)."""
        ...

    def first_token_logprobs(self, images: Sequence[Image.Image], prompts: Sequence[str],
                             answers: Sequence[str]) -> list[list[float | None]]:
        """``[i][k]``: log P(first reply token = ``answers[k]``'s first token | images[i], prompts[i]);
        None where the backend cannot say (an endpoint that did not list that token)."""
        ...

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        """The greedy reply to each (image, prompt)."""
        ...


def prepare_image(image: Image.Image, max_side: int | None) -> Image.Image:
    """RGB, and no side longer than ``max_side`` (aspect kept, bicubic): what every backend is sent.
    The bound is part of the cache key, and keeps a 4K render from costing 60x a 448² one."""
    img = image.convert("RGB") if image.mode != "RGB" else image
    if max_side is not None and max(img.size) > max_side:
        w, h = img.size
        scale = max_side / max(w, h)
        img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    return img
