"""Execution engines for scoring runs beyond the local pipeline (``ray_engine``: Ray Data)."""
