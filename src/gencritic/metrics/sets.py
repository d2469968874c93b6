"""Metric family `sets` (registered in gencritic.metrics.registry)."""
