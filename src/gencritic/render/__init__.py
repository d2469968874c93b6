"""Headless multi-view rendering of 3D assets: camera rigs, the GL rasteriser, the render cache.

Entry points: :func:`gencritic.render.api.render_asset_views` (used by scoring) and
:func:`gencritic.render.api.render_asset` / :func:`~gencritic.render.api.write_views`
(the ``gencritic render`` command). See docs/rendering.md for conventions and measurements.
"""
