"""Metric family `reference` (registered in gencritic.metrics.registry)."""
