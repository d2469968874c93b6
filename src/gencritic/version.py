"""The package version, importable from any layer (``gencritic/__init__.py`` re-exports it)."""

__version__ = "0.1.0"
