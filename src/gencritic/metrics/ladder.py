"""Metric family `ladder` (registered in gencritic.metrics.registry)."""
