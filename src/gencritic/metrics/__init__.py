"""Metric families, one module each; see :mod:`gencritic.metrics.registry`."""

from gencritic.metrics.base import Metric, MetricInfo, MetricResult
from gencritic.metrics.registry import all_metrics, create_metric, register

__all__ = ["Metric", "MetricInfo", "MetricResult", "all_metrics", "create_metric", "register"]
