"""Small assessment heads on frozen backbone features.

Three kinds, one interface ``forward(image, text, scores) -> (N, tasks)``:

* ``linear`` — one linear map per task on [image embedding, text embedding, image⊙text,
  scores]: the honest baseline, and often enough on CLIP features.
* ``mlp`` — one two-layer MLP per task on the same input.
* ``transformer`` — the multi-task "metric transformer" of AAPMT: the backbone embeddings
  and each other metric's score become tokens (a score token = score × a learned metric
  embedding + a learned bias), one learned query token per task is added, a small
  Transformer encoder mixes them, and each task reads its own query token through its own
  output layer. Tasks share what they learn about the image and the other metrics.

A head is fully described by its ``config`` dict (kept in the JSON card), so loading never
needs the training code's defaults.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

HEAD_KINDS = ("linear", "mlp", "transformer")


def _flat_input(image: torch.Tensor, text: torch.Tensor | None, scores: torch.Tensor | None) -> torch.Tensor:
    parts = [image]
    if text is not None:
        parts += [text, image * text]
    if scores is not None and scores.shape[1]:
        parts.append(scores)
    return torch.cat(parts, dim=1)


class PerTaskHead(nn.Module):
    """Linear (hidden == 0) or MLP heads, one per task, on the flat feature vector."""

    def __init__(self, in_dim: int, n_tasks: int, hidden: int, dropout: float) -> None:
        super().__init__()

        def one() -> nn.Module:
            if hidden <= 0:
                return nn.Linear(in_dim, 1)
            return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))

        self.tasks = nn.ModuleList([one() for _ in range(n_tasks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([t(x) for t in self.tasks], dim=1)


class MetricTransformer(nn.Module):
    """Tokens: [task queries..., image, text?, score_1..score_k] -> encoder -> per-task outputs."""

    def __init__(self, image_dim: int, text_dim: int, n_scores: int, n_tasks: int, d_model: int,
                 layers: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.image_proj = nn.Linear(image_dim, d_model)
        self.text_proj = nn.Linear(text_dim, d_model) if text_dim else None
        self.score_embed = nn.Parameter(torch.randn(n_scores, d_model) * 0.02)
        self.score_bias = nn.Parameter(torch.zeros(n_scores, d_model))
        self.queries = nn.Parameter(torch.randn(n_tasks, d_model) * 0.02)
        self.type_embed = nn.Parameter(torch.randn(3, d_model) * 0.02)  # query / embedding / score tokens
        layer = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.out = nn.ModuleList([nn.Linear(d_model, 1) for _ in range(n_tasks)])
        self.n_tasks = n_tasks

    def forward(self, image: torch.Tensor, text: torch.Tensor | None, scores: torch.Tensor | None) -> torch.Tensor:
        n = image.shape[0]
        tokens = [self.queries.unsqueeze(0).expand(n, -1, -1) + self.type_embed[0],
                  (self.image_proj(image) + self.type_embed[1]).unsqueeze(1)]
        if self.text_proj is not None and text is not None:
            tokens.append((self.text_proj(text) + self.type_embed[1]).unsqueeze(1))
        if scores is not None and scores.shape[1]:
            tokens.append(scores.unsqueeze(-1) * self.score_embed + self.score_bias + self.type_embed[2])
        h = self.norm(self.encoder(torch.cat(tokens, dim=1)))
        return torch.cat([head(h[:, i]) for i, head in enumerate(self.out)], dim=1)


class AssessmentHead(nn.Module):
    """The module saved by ``gencritic train``; built from a plain config dict."""

    image_mean: torch.Tensor
    image_std: torch.Tensor
    text_mean: torch.Tensor
    text_std: torch.Tensor

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        kind = config["kind"]
        image_dim, text_dim = int(config["image_dim"]), int(config["text_dim"])
        n_scores, n_tasks = int(config["n_scores"]), int(config["n_tasks"])
        self.use_text = text_dim > 0
        # per-dimension standardisation of the frozen features, set from the training split
        # (buffers, so they travel in the safetensors file): CLIP embeddings of one dataset are
        # close together on the sphere, and unscaled they make every head learn slowly.
        self.register_buffer("image_mean", torch.zeros(image_dim))
        self.register_buffer("image_std", torch.ones(image_dim))
        self.register_buffer("text_mean", torch.zeros(max(text_dim, 0)))
        self.register_buffer("text_std", torch.ones(max(text_dim, 0)))
        if kind in ("linear", "mlp"):
            in_dim = image_dim + 2 * text_dim + n_scores
            hidden = 0 if kind == "linear" else int(config.get("hidden", 256))
            self.net: nn.Module = PerTaskHead(in_dim, n_tasks, hidden, float(config.get("dropout", 0.1)))
        elif kind == "transformer":
            self.net = MetricTransformer(image_dim, text_dim, n_scores, n_tasks, int(config.get("d_model", 64)),
                                         int(config.get("layers", 2)), int(config.get("heads", 4)),
                                         float(config.get("dropout", 0.1)))
        else:
            raise ValueError(f"unknown head kind {kind!r}: use {', '.join(HEAD_KINDS)}")

    def set_feature_stats(self, image: torch.Tensor, text: torch.Tensor | None) -> None:
        """Record the training features' mean and std (floored) used to standardise inputs."""
        self.image_mean.copy_(image.mean(0))
        self.image_std.copy_(image.std(0).clamp_min(1e-6))
        if text is not None and self.use_text:
            self.text_mean.copy_(text.mean(0))
            self.text_std.copy_(text.std(0).clamp_min(1e-6))

    def forward(self, image: torch.Tensor, text: torch.Tensor | None = None,
                scores: torch.Tensor | None = None) -> torch.Tensor:
        image = (image - self.image_mean) / self.image_std
        text = (text - self.text_mean) / self.text_std if (self.use_text and text is not None) else None
        if isinstance(self.net, MetricTransformer):
            return self.net(image, text, scores)
        return self.net(_flat_input(image, text, scores))  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Files: head.safetensors (weights) + card.json (config, normalisation, provenance)

WEIGHTS_FILE = "head.safetensors"
CARD_FILE = "card.json"
CARD_FORMAT = "gencritic-head/1"


def _save_tensors_atomic(state: dict[str, torch.Tensor], path: Any) -> None:
    """safetensors file written beside its final name and renamed, so a crash leaves the old file or the new."""
    import os

    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().contiguous().cpu() for k, v in state.items()}, str(tmp))
    os.replace(tmp, path)


def save_head(folder: Any, head: AssessmentHead, card: dict[str, Any],
              extra: dict[str, dict[str, torch.Tensor]] | None = None) -> dict[str, Any]:
    """Write weights and card, each atomically; the card gets the weights' sha256 so a swap is
    detectable. ``extra``: more tensor files beside the head (a fine-tuned backbone's layers),
    whose sha256 the card records under ``files``."""
    import hashlib
    from pathlib import Path

    from gencritic.jsonio import write_json

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    _save_tensors_atomic(head.state_dict(), out / WEIGHTS_FILE)
    files: dict[str, str] = {}
    for name, state in (extra or {}).items():
        _save_tensors_atomic(state, out / name)
        files[name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    card = {**card, "format": CARD_FORMAT, "config": head.config,
            "weights_sha256": hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest()}
    if files:
        card["files"] = files
    write_json(out / CARD_FILE, card, default=str)
    return card


def load_head(folder: Any) -> tuple[AssessmentHead, dict[str, Any]]:
    """Read a head folder written by :func:`save_head`, or say what is wrong with it."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    from gencritic.errors import ModelUnavailableError

    path = Path(folder).expanduser()
    if path.is_file():
        path = path.parent
    card_path, weights = path / CARD_FILE, path / WEIGHTS_FILE
    if not card_path.exists() or not weights.exists():
        raise ModelUnavailableError(f"no trained head in {path}: expected {CARD_FILE} and {WEIGHTS_FILE} "
                                    f"(make one with `gencritic train DATASET --out {path}`)")
    try:
        card = json.loads(card_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelUnavailableError(f"{card_path} is not valid JSON ({exc}); re-run `gencritic train`") from None
    if card.get("format") != CARD_FORMAT:
        raise ModelUnavailableError(f"{card_path} has format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    head = AssessmentHead(card["config"])
    try:
        head.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise ModelUnavailableError(f"{weights} does not match its card: {str(exc).splitlines()[0]}") from None
    return head.eval(), card


def head_files(folder: Any) -> dict[str, str]:
    """The extra files a head's card lists (name -> sha256), each checked against its bytes:
    a file swapped or left over from an older head in the same folder is refused."""
    import hashlib
    import json
    from pathlib import Path

    from gencritic.errors import ModelUnavailableError

    path = Path(folder).expanduser()
    if path.is_file():
        path = path.parent
    try:
        card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelUnavailableError(f"cannot read {path / CARD_FILE} ({exc}); re-run `gencritic train`") from None
    files: dict[str, str] = dict(card.get("files") or {})
    for name, sha in files.items():
        f = path / name
        if not f.exists() or hashlib.sha256(f.read_bytes()).hexdigest() != sha:
            raise ModelUnavailableError(f"{f} is missing or does not match {path / CARD_FILE} (sha256 {sha[:12]}…); "
                                        f"re-run `gencritic train`")
    return files
