"""The column groups of a ``compare3d`` row.

A :class:`PairEvaluator` fills named columns of a pair's row from the two assets, and may add
per-view rows (``views.csv``). The run (:mod:`.run`) knows nothing about geometry or rendering:
it asks each evaluator for its columns, its settings (they guard the output folder and go into
``summary.json``) and its values per pair. An evaluator failing on a pair (an ItemError) fails
that row with the evaluator's name and reason; the other evaluators' columns are kept.

:class:`GeometryEvaluator` (Chamfer, F-score, normal consistency, IoU) and
:class:`~gencritic.compare3d.appearance.AppearanceEvaluator` (PSNR/SSIM/LPIPS/CLIP/DINO per
view). The appearance evaluator draws the generated asset in the pose the geometry's alignment
found: :meth:`GeometryEvaluator.alignment_matrix` hands it over (measured once per pair when
both run, the geometry first).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from gencritic.compare3d.pairs import Pair
from gencritic.errors import InputError


@dataclass
class PairResult:
    values: dict[str, Any] = field(default_factory=dict)  # this evaluator's columns
    warnings: list[str] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)  # per-view rows, if any


class PairEvaluator(Protocol):
    name: str

    def columns(self) -> list[str]:
        """Every column this evaluator writes, in order."""

    def numeric_columns(self) -> list[str]:
        """Those that are numbers (summarised in summary.json; NaN/inf journaled exactly)."""

    def settings(self) -> dict[str, Any]:
        """What changes its numbers (the output folder's fingerprint; summary.json)."""

    def prepare(self, pair: Pair) -> Any:
        """Work that can run ahead of the pair's turn (loading, sampling); may raise ItemError."""

    def evaluate(self, pair: Pair, prepared: Any) -> PairResult:
        """The pair's columns; raises ItemError to fail the row."""


@dataclass(frozen=True)
class GeometryOptions:
    """``compare3d``'s geometry settings (defaults and conventions: docs/3d_evaluation.md)."""

    samples: int = 100_000
    seed: int = 0
    fscore_tau: float = 0.1
    align: str = "none"
    iou_resolution: int = 128
    normalize: str = "trellis"
    up: str = "y"

    def check(self) -> None:
        from gencritic.geometry.align import ALIGN_MODES
        from gencritic.mesh import NORMALIZATIONS

        if not 1 <= self.samples <= 10_000_000:
            raise InputError(f"--samples must be between 1 and 10000000, got {self.samples}")
        if not (math.isfinite(self.fscore_tau) and self.fscore_tau > 0):
            raise InputError(f"--fscore-tau must be a positive distance in the normalised frame, got {self.fscore_tau}")
        if self.align not in ALIGN_MODES:
            raise InputError(f"--align {self.align!r}: use one of {', '.join(ALIGN_MODES)}")
        if not 8 <= self.iou_resolution <= 1024:
            raise InputError(f"--iou-resolution must be between 8 and 1024, got {self.iou_resolution}")
        if self.normalize not in NORMALIZATIONS:
            raise InputError(f"--normalize {self.normalize!r}: use one of {', '.join(NORMALIZATIONS)}")
        if self.up not in ("y", "z"):
            raise InputError(f"--up {self.up!r}: use y or z")


GEOMETRY_NUMERIC = ["chamfer_l1", "chamfer_l2sq", "dist_gen_to_ref", "dist_ref_to_gen", "fscore", "precision",
                    "recall", "normal_consistency", "volume_iou", "align_scale", "align_residual"]
GEOMETRY_COLUMNS = [*GEOMETRY_NUMERIC[:9], "volume_iou_note", "align", "align_matrix", *GEOMETRY_NUMERIC[9:],
                    "align_axis_rotation", "align_icp_iterations"]


@dataclass
class GeometryEvaluator:
    """Chamfer (both forms), F-score at τ, normal consistency, volume IoU, after ``--align``."""

    options: GeometryOptions = field(default_factory=GeometryOptions)
    name: str = "geometry"
    keep_alignments: bool = False  # keep each pair's alignment for alignment_matrix (appearance renders)
    _alignments: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def alignment_matrix(self, pair: Pair) -> Any:
        """The 4x4 transform (normalised frame) that moves the generated asset onto the reference, or
        None for the identity: what evaluate() found for this pair, else measured now (an ItemError
        if it cannot be). Handed over once: the appearance evaluator asks right after evaluate()."""
        from gencritic.geometry.align import align

        alignment = self._alignments.pop(pair.pair_id, None)
        if alignment is None:
            if self.options.align == "none":
                return None
            (_, gen), (_, ref) = self.prepare(pair)
            alignment = align(gen, ref, self.options.align)
        return None if alignment.transform.is_identity else alignment.transform.matrix()

    def columns(self) -> list[str]:
        return list(GEOMETRY_COLUMNS)

    def numeric_columns(self) -> list[str]:
        return list(GEOMETRY_NUMERIC)

    def settings(self) -> dict[str, Any]:
        return {**asdict(self.options), "sampling": "area-weighted, trimesh sample_surface draw order",
                "chamfer_l1": "mean of the two directed mean Euclidean distances (Occupancy Networks' Chamfer-L1)",
                "chamfer_l2sq": "sum of the two directed mean squared distances (Fan et al. 2017; PyTorch3D)",
                "fscore": "Tatarchenko et al. 2019, d < tau, in the normalised frame",
                "normal_consistency": "mean |cos| between nearest samples' face normals, both ways (ONet)",
                "volume_iou": f"voxel-centre occupancy by ray parity, {self.options.iou_resolution} cells on the "
                              f"longest side of the union box; NaN unless both are watertight"}

    def prepare(self, pair: Pair) -> Any:
        from gencritic.geometry.sampling import surface_samples
        from gencritic.geometry.surface import load_surface

        o = self.options
        out = []
        for path in (pair.generated, pair.reference):
            assert path is not None
            surface = load_surface(path, o.normalize, o.up)
            out.append((surface, surface_samples(surface, o.samples, o.seed)))
        return out

    def evaluate(self, pair: Pair, prepared: Any) -> PairResult:
        from gencritic.geometry.align import align
        from gencritic.geometry.distances import surface_metrics
        from gencritic.geometry.iou import volume_iou

        o = self.options
        (gen_surface, gen), (ref_surface, ref) = prepared
        alignment = align(gen, ref, o.align)
        if self.keep_alignments:
            self._alignments[pair.pair_id] = alignment
        values: dict[str, Any] = dict(surface_metrics(gen, ref, o.fscore_tau, alignment.transform))
        iou, note = volume_iou(alignment.transform.apply(gen_surface.vertices), gen_surface.faces,
                               ref_surface.vertices, ref_surface.faces, o.iou_resolution)
        described = alignment.describe()
        values.update({"volume_iou": iou, "volume_iou_note": note or "", "align": described["align"],
                       "align_matrix": json.dumps(described["align_matrix"]), "align_scale": described["align_scale"],
                       "align_residual": alignment.residual, "align_axis_rotation": described["align_axis_rotation"],
                       "align_icp_iterations": described["align_icp_iterations"]})
        warnings = []
        for who, surface in (("generated", gen_surface), ("reference", ref_surface)):
            if surface.points_ignored:
                warnings.append(f"{who}: {surface.points_ignored} point-cloud vertices left out (not a surface)")
        return PairResult(values, warnings)
