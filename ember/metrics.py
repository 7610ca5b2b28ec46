"""``ember.metrics``: stateful metrics for ``compile(metrics=[...])``. See ember.training.metrics.

Example: model.compile("adam", "cross_entropy", metrics=[ember.metrics.TopKAccuracy(k=3)])
"""
from .training.metrics import (Accuracy, F1Score, MeanAbsoluteError, MeanSquaredError, Metric,  # noqa: F401
                               Precision, Recall, TopKAccuracy)

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "Precision", "Recall", "F1Score", "MeanAbsoluteError",
           "MeanSquaredError"]
