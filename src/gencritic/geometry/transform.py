"""A similarity transform x -> s·R·x + t: what alignment estimates and what a pair's row records."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Similarity:
    """Rotation ``rotation`` (proper, 3x3), uniform ``scale`` > 0, then ``translation``."""

    rotation: np.ndarray
    translation: np.ndarray
    scale: float = 1.0

    @staticmethod
    def identity() -> Similarity:
        return Similarity(np.eye(3), np.zeros(3), 1.0)

    @property
    def is_identity(self) -> bool:
        return bool(self.scale == 1.0 and np.array_equal(self.rotation, np.eye(3))
                    and not np.any(self.translation))

    def matrix(self) -> np.ndarray:
        """4x4 homogeneous matrix (row-major: apply as ``M @ [x, y, z, 1]``)."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out

    def apply(self, points: np.ndarray) -> np.ndarray:
        if self.is_identity:
            return points
        return np.asarray((self.scale * points) @ self.rotation.T + self.translation)

    def apply_inverse(self, points: np.ndarray) -> np.ndarray:
        """x = R^T (y - t) / s, the preimage of ``points``."""
        if self.is_identity:
            return points
        return np.asarray(((points - self.translation) @ self.rotation) / self.scale)

    def rotate(self, vectors: np.ndarray) -> np.ndarray:
        """Directions (normals) under the transform: rotated, never scaled."""
        return vectors if self.is_identity else np.asarray(vectors @ self.rotation.T)

    def compose(self, first: Similarity) -> Similarity:
        """``self ∘ first``: apply ``first``, then ``self``."""
        return Similarity(self.rotation @ first.rotation,
                          self.scale * (self.rotation @ first.translation) + self.translation,
                          self.scale * first.scale)
