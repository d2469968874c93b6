"""Metric family `learned` (registered in gencritic.metrics.registry)."""
