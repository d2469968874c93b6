"""Metric family `longcaption` (registered in gencritic.metrics.registry)."""
