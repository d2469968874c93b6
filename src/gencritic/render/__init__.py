"""Headless multi-view rendering of 3D assets: camera rigs, the GL rasteriser, the render cache.

Entry points: :func:`gencritic.render.api.render_asset` (used by scoring and by the
``gencritic render`` command, with :func:`~gencritic.render.api.write_views`) and
:func:`~gencritic.render.api.render_asset_views` (its views alone). See docs/rendering.md for conventions and measurements.
"""
