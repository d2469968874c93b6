"""PNG figures at the edge of the system: metric-vs-MOS scatters and training loss curves.

matplotlib's Agg backend only (no display needed); each function takes plain arrays and a
path, draws, saves and closes, so nothing leaks between calls.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gencritic.agreement.logistic import LogisticFit


def _pyplot():  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def scatter_grid(path: Path, rating: str, panels: Sequence[tuple[str, np.ndarray, np.ndarray, LogisticFit, dict[str, float]]]) -> Path:
    """One panel per metric: metric value (x) vs human rating (y), fitted logistic, and stats."""
    plt = _pyplot()
    k = max(1, len(panels))
    cols = min(3, k)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax in axes.ravel()[k:]:
        ax.axis("off")
    for ax, (name, x, y, fit, stats) in zip(axes.ravel(), panels, strict=False):
        ax.scatter(x, y, s=10, alpha=0.6, color="#1f77b4", edgecolors="none")
        if fit.ok and x.size:
            grid = np.linspace(float(np.min(x)), float(np.max(x)), 200)
            ax.plot(grid, fit(grid), color="#d62728", lw=1.6, label="4-parameter logistic")
            ax.legend(loc="lower right", fontsize=7, frameon=False)
        ax.set_xlabel(name)
        ax.set_ylabel(rating)
        ax.set_title(f"{name}  n={int(stats.get('n', x.size))}\nSRCC {stats.get('srcc', math.nan):.3f}  "
                     f"KRCC {stats.get('krcc', math.nan):.3f}  PLCC {stats.get('plcc', math.nan):.3f} "
                     f"(mapped {stats.get('plcc_logistic', math.nan):.3f})", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"metric vs human rating: {rating}", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def loss_curves(path: Path, train: Sequence[float], val: Sequence[float], best_epoch: int, title: str) -> Path:
    """Training and validation loss per epoch, with the early-stopping epoch marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(train) + 1)
    ax.plot(epochs, train, label="train", color="#1f77b4")
    ax.plot(epochs, val, label="validation", color="#ff7f0e")
    if 0 <= best_epoch < len(val):
        ax.axvline(best_epoch + 1, color="grey", ls="--", lw=1, label=f"best epoch {best_epoch + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (MSE on standardised ratings)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
