"""Metric family `temporal` (registered in gencritic.metrics.registry)."""
