"""Loading 3D assets into flat, renderer-ready arrays and normalising them into a known frame.

Nothing here knows about cameras or CLIP: :func:`load_asset` turns a file into
:class:`MeshData` (triangle soups and point sets with their colours), :mod:`.normalize`
moves it into the unit frame the camera rigs assume.
"""

from gencritic.mesh.data import MeshData, Primitive
from gencritic.mesh.loaders import load_asset
from gencritic.mesh.normalize import NORMALIZATIONS, normalization_transform
from gencritic.mesh.sidefiles import asset_files, asset_sha256

__all__ = ["NORMALIZATIONS", "MeshData", "Primitive", "asset_files", "asset_sha256", "load_asset",
           "normalization_transform"]
