"""Weight-free 3D geometry: surface samples, distances between surfaces, volume IoU, alignment
and mesh health.

Every module works on a :class:`~gencritic.geometry.surface.Surface`: the asset's triangles as
the renderer loads them (same loader, same scene graph, same normalisation), so a geometry
number and a rendered view describe the same object in the same frame. Conventions (which
Chamfer, which F-score threshold, which frame, which alignment) and the papers that use them
are in ``docs/3d_evaluation.md``.

Modules, one job each:

* :mod:`.surface` — load an asset into a normalised triangle surface (the one place that reads meshes).
* :mod:`.sampling` — seeded area-weighted surface samples (trimesh's draw order) and their KD-trees.
* :mod:`.distances` — Chamfer (L1 and squared-L2 forms), F-score, normal consistency.
* :mod:`.topology` — welding, edge use counts, watertightness, connected components.
* :mod:`.iou` — volume IoU of watertight surfaces by ray parity on a voxel-centre grid.
* :mod:`.align` — the 24 axis-aligned rotations and bidirectional similarity ICP.
* :mod:`.intersections` — self-intersecting triangle pairs (grid candidates, exact-sign tests).
* :mod:`.materials`, :mod:`.uv`, :mod:`.health` — what ``gencritic meshcheck`` reports.
"""
