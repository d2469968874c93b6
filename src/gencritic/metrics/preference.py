"""Metric family `preference` (registered in gencritic.metrics.registry)."""
