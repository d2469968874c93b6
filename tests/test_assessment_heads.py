"""Assessment heads: shapes per kind, save/load round trip, and the errors a broken head gives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gencritic.errors import ModelUnavailableError
from gencritic.models.assessment_heads import AssessmentHead, load_head, save_head


def _config(kind: str, text_dim: int = 16, n_scores: int = 2) -> dict[str, object]:
    return {"kind": kind, "image_dim": 16, "text_dim": text_dim, "n_scores": n_scores, "n_tasks": 3,
            "hidden": 8, "d_model": 16, "layers": 1, "heads": 2, "dropout": 0.0}


@pytest.mark.parametrize("kind", ["linear", "mlp", "transformer"])
@pytest.mark.parametrize("text_dim", [0, 16])
def test_heads_give_one_output_per_task(kind: str, text_dim: int) -> None:
    torch.manual_seed(0)
    head = AssessmentHead(_config(kind, text_dim)).eval()
    img, txt, scores = torch.randn(5, 16), torch.randn(5, 16), torch.randn(5, 2)
    out = head(img, txt if text_dim else None, scores)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    # the output of one item does not depend on the others in the batch (no batch statistics)
    assert torch.allclose(head(img[:1], txt[:1] if text_dim else None, scores[:1]), out[:1], atol=1e-5)


def test_transformer_uses_the_score_tokens() -> None:
    torch.manual_seed(0)
    head = AssessmentHead(_config("transformer")).eval()
    img, txt = torch.randn(4, 16), torch.randn(4, 16)
    a = head(img, txt, torch.zeros(4, 2))
    b = head(img, txt, torch.full((4, 2), 3.0))
    assert not torch.allclose(a, b)


def test_save_load_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(1)
    head = AssessmentHead(_config("mlp"))
    head.set_feature_stats(torch.randn(20, 16) * 3 + 1, torch.randn(20, 16))
    card = save_head(tmp_path / "h", head.eval(), {"name": "x", "tasks": ["a", "b", "c"]})
    loaded, card2 = load_head(tmp_path / "h")
    assert card2["weights_sha256"] == card["weights_sha256"] and card2["tasks"] == ["a", "b", "c"]
    x = (torch.randn(3, 16), torch.randn(3, 16), torch.randn(3, 2))
    assert torch.equal(loaded(*x), head(*x))
    assert torch.equal(loaded.image_mean, head.image_mean)  # standardisation travels with the weights


def test_broken_heads_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="no trained head"):
        load_head(tmp_path)
    save_head(tmp_path / "h", AssessmentHead(_config("linear")), {"tasks": ["a", "b", "c"]})
    card = json.loads((tmp_path / "h" / "card.json").read_text())
    card["config"]["image_dim"] = 32
    (tmp_path / "h" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelUnavailableError, match="does not match its card"):
        load_head(tmp_path / "h")
    (tmp_path / "h" / "card.json").write_text("{not json")
    with pytest.raises(ModelUnavailableError, match="not valid JSON"):
        load_head(tmp_path / "h")
