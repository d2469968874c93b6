"""Structured VLM critique: "what is wrong, what should change" as JSON that follows a schema.

The rules of a profile stay the primary, reproducible diagnosis; this is advice beside them.
The VLM sees the image and a prompt built from the profile (its description, the parameters its
rules name) and must answer one JSON object:

    {"summary": "...",
     "issues": [{"description": "...", "severity": "minor|moderate|severe", "region": "foreground|..."}],
     "suggested_changes": [{"parameter": "<one of the profile's>", "direction": "increase|decrease",
                            "reason": "..."}]}

The answer is validated with pydantic (:class:`Critique`) and the parameters against the
profile's own. An invalid answer is asked again once, with the validation error shown to the
model (greedy decoding would repeat the same answer to the same prompt); a second invalid
answer makes the critique ``failed``, with both raw answers and errors, and no critique at all:
nothing is repaired or invented. ``disagreements`` lists the parameters the VLM and the rules
would move in opposite directions. ``gencritic critique`` (rules and critique together) is
:func:`gencritic.diagnose.api.critique`, which diagnoses first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gencritic.models.vlm import DEFAULT_MAX_SIDE, pool_vlm
from gencritic.models.vlm_cache import AnswerCache, VLMClient, image_sha256

if TYPE_CHECKING:
    from gencritic.diagnose.profiles import Profile
    from gencritic.models.loader import ModelPool

DEFAULT_MAX_NEW_TOKENS = 512
MAX_ANSWER_KEPT = 4000  # characters of a raw answer kept in the output and shown back on the retry
REGIONS = ("whole", "foreground", "background", "emissive", "smoke", "top", "bottom", "left", "right", "centre")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CritiqueIssue(_Strict):
    description: str = Field(min_length=1, max_length=500, description="what is wrong, in one sentence")
    severity: Literal["minor", "moderate", "severe"]
    region: Literal["whole", "foreground", "background", "emissive", "smoke", "top", "bottom", "left", "right",
                    "centre"]


class SuggestedChange(_Strict):
    parameter: str = Field(min_length=1, description="one of the profile's parameters")
    direction: Literal["increase", "decrease"]
    reason: str = Field(min_length=1, max_length=500)


class Critique(_Strict):
    summary: str = Field(min_length=1, max_length=1000)
    issues: list[CritiqueIssue] = Field(max_length=20)
    suggested_changes: list[SuggestedChange] = Field(max_length=20)


class InvalidCritique(ValueError):
    """The answer is not a critique of this profile; the message says why, for the retry prompt."""


# -- the profile's side --------------------------------------------------------------------------


def profile_parameters(profile: Profile) -> dict[str, str]:
    """The parameters the profile's rules may change, in rule order, each with its first rule's reason."""
    out: dict[str, str] = {}
    for rule in profile.rules:
        for param in rule.suggest:
            out.setdefault(str(param), rule.why or f"{rule.check} {rule.verdict}")
    return out


def rule_direction(change: Any) -> str | None:
    """``"+30%"`` -> increase, ``"-0.5"`` -> decrease; a non-numeric change (a target name) has none."""
    text = str(change).strip()
    if re.fullmatch(r"[+-]\d+(\.\d+)?%?", text):
        if float(text.rstrip("%")) == 0:
            return None
        return "increase" if text.startswith("+") else "decrease"
    return None


def critique_prompt(profile: Profile, parameters: dict[str, str]) -> str:
    """The question, built only from the profile (so it is the same for every image of a profile)."""
    schema = json.dumps(Critique.model_json_schema(), sort_keys=True, separators=(",", ":"))
    listed = "\n".join(f"- {name}: {why}" for name, why in parameters.items())
    return (
        f'You are a visual effects supervisor reviewing a render against the target look "{profile.name}": '
        f"{' '.join(profile.description.split())}\n\n"
        f"Answer with one JSON object and nothing else, following this JSON schema:\n{schema}\n\n"
        f"In \"issues\" list what is wrong with the image, each with a severity (minor, moderate or severe) and the "
        f"region it is in ({', '.join(REGIONS)}). In \"suggested_changes\" use only these parameters, each with the "
        f"direction \"increase\" or \"decrease\":\n{listed}\n"
        f"Leave a list empty when there is nothing to say; do not invent problems.")


def retry_prompt(prompt: str, answer: str, error: str) -> str:
    return (f"{prompt}\n\nYour previous answer was:\n{answer[:MAX_ANSWER_KEPT]}\n\nIt is not valid: {error}\n"
            f"Answer again with only the corrected JSON object.")


# -- reading an answer ---------------------------------------------------------------------------


def extract_json(text: str) -> Any:
    """The JSON object in an answer: the whole text, the inside of a ```json fence, or the first
    ``{...}`` that parses. Raises InvalidCritique when there is none."""
    body = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", body, flags=re.DOTALL)
    if fence:
        body = fence.group(1).strip()
    start = body.find("{")
    if start < 0:
        raise InvalidCritique("the answer holds no JSON object")
    try:
        value, _ = json.JSONDecoder().raw_decode(body[start:])
    except json.JSONDecodeError as exc:
        raise InvalidCritique(f"the JSON does not parse: {exc.msg} at character {exc.pos}") from None
    return value


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:4]:
        where = ".".join(str(p) for p in err["loc"]) or "the object"
        parts.append(f"{where}: {err['msg']}")
    more = len(exc.errors()) - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def parse_critique(text: str, parameters: dict[str, str]) -> Critique:
    """A validated critique whose parameters are the profile's own, or InvalidCritique."""
    data = extract_json(text)
    try:
        critique = Critique.model_validate(data)
    except ValidationError as exc:
        raise InvalidCritique(_validation_message(exc)) from None
    unknown = [c.parameter for c in critique.suggested_changes if c.parameter not in parameters]
    if unknown:
        raise InvalidCritique(f"suggested_changes name parameters the profile does not have ({', '.join(unknown)}); "
                              f"use only: {', '.join(parameters)}")
    return critique


def disagreements(critique: Critique, suggested_parameters: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Parameters the VLM and the rules would move in opposite directions (rule order of the VLM's list)."""
    out = []
    for change in critique.suggested_changes:
        rule = suggested_parameters.get(change.parameter)
        if rule is None:
            continue
        direction = rule_direction(rule.get("change"))
        if direction is not None and direction != change.direction:
            out.append({"parameter": change.parameter, "vlm": change.direction, "vlm_reason": change.reason,
                        "rules": direction, "rules_change": rule.get("change"), "rules_because": rule.get("because")})
    return out


# -- asking --------------------------------------------------------------------------------------


def make_client(vlm: str | VLMClient, pool: ModelPool | None = None, cache_dir: Path | bool | None = True,
                max_side: int | None = DEFAULT_MAX_SIDE) -> VLMClient:
    """A client for a spec through the shared model pool; ``cache_dir`` True: the default cache
    folder ($GENCRITIC_CACHE_DIR or ~/.cache/gencritic), False/None: no answer cache."""
    if isinstance(vlm, VLMClient):
        return vlm
    from gencritic.cache import default_cache_dir
    from gencritic.models.loader import ModelPool

    folder = default_cache_dir() if cache_dir is True else (cache_dir or None)
    return VLMClient(pool_vlm(pool or ModelPool(), vlm, max_side), AnswerCache.in_dir(folder))


def critique_image(client: VLMClient, image: Image.Image | np.ndarray, profile: Profile,
                   suggested_parameters: dict[str, dict[str, Any]] | None = None,
                   max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> dict[str, Any]:
    """The ``vlm`` block: status ``ok`` with the critique, or ``failed`` with why; plus disagreements
    with ``suggested_parameters`` (the rules' output, when given)."""
    picture = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    sha = image_sha256(picture)
    parameters = profile_parameters(profile)
    prompt = critique_prompt(profile, parameters)
    block: dict[str, Any] = {
        "model": client.model_id, "settings": {**client.vlm.settings(), "max_new_tokens": max_new_tokens},
        "role": "advice beside the rules: it changes none of passed, overall or suggested_parameters",
        "status": "failed", "critique": None, "error": None, "attempts": [], "disagreements": []}
    ask = prompt
    for _ in range(2):  # the answer, and one retry with the validation error shown
        answer = client.generate([picture], [sha], [ask], max_new_tokens)[0]
        if answer.error is not None:
            block["error"] = f"the VLM request failed: {answer.error}"
            return block
        text = str(answer.value)
        try:
            critique = parse_critique(text, parameters)
        except InvalidCritique as exc:
            block["attempts"].append({"answer": text[:MAX_ANSWER_KEPT], "error": str(exc)})
            ask = retry_prompt(prompt, text, str(exc))
            continue
        block["attempts"].append({"answer": text[:MAX_ANSWER_KEPT], "error": None})
        block.update(status="ok", critique=critique.model_dump(mode="json"),
                     disagreements=disagreements(critique, suggested_parameters or {}))
        return block
    block["error"] = (f"no valid critique after {len(block['attempts'])} answers: "
                      f"{block['attempts'][-1]['error']}")
    return block
