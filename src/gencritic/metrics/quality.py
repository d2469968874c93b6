"""Metric family `quality` (registered in gencritic.metrics.registry)."""
