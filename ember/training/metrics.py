"""Stateful metrics: ``update_state`` per batch, ``result`` over everything seen since
``reset_state`` (so an epoch's precision is the precision of the whole epoch, not a mean of
per-batch values). State is a few NumPy counters; inputs are ember tensors or arrays.

Example: m = Accuracy(); m.update_state(y, logits); m.result()  # fraction in [0, 1]
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import EmberError, ShapeError

__all__ = ["Metric", "Accuracy", "TopKAccuracy", "Precision", "Recall", "F1Score",
           "MeanAbsoluteError", "MeanSquaredError", "get"]


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _labels(y_true: Any, y_pred: Any, threshold: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(true, predicted) class indices. Scores of shape (N, C), C > 1, are compared by argmax
    (logits or probabilities alike); scores of shape (N,) or (N, 1) are binary, positive above
    ``threshold``. Targets are class indices or one-hot rows shaped like the scores."""
    y_true, y_pred = _np(y_true), _np(y_pred)
    if y_pred.ndim >= 2 and y_pred.shape[-1] == 1:  # (N, 1) binary scores
        y_pred = y_pred[..., 0]
        if y_true.shape == y_pred.shape + (1,):
            y_true = y_true[..., 0]
    if y_pred.ndim >= 2:  # (N, C) class scores
        pred = y_pred.argmax(-1)
        if y_true.shape == y_pred.shape:  # one-hot or probability targets
            y_true = y_true.argmax(-1)
    else:
        pred = y_pred > threshold
    if y_true.shape != pred.shape:
        raise ShapeError(f"{name}: predictions of shape {y_pred.shape} need targets of shape "
                         f"{pred.shape} (class indices) or {y_pred.shape} (one-hot), got {y_true.shape}")
    return y_true.astype(np.int64), pred.astype(np.int64)


class Metric:
    """Base class: subclasses define ``update_state(y_true, y_pred)``, ``result()`` and
    ``reset_state()``. ``name`` is the key in fit's logs and History."""

    name = "metric"

    def __init__(self, name: str | None = None):
        if name is not None:
            self.name = name
        self.reset_state()

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        raise NotImplementedError

    def result(self) -> float:
        raise NotImplementedError

    def reset_state(self) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class _Counting(Metric):
    """correct / total, for the accuracy metrics."""

    def reset_state(self) -> None:
        self.correct, self.total = 0, 0

    def result(self) -> float:
        return self.correct / self.total if self.total else 0.0


class Accuracy(_Counting):
    """Fraction of correct class predictions: argmax of (N, C) scores, or for binary scores
    (N,) / (N, 1) positive above ``threshold`` (0.5 for probabilities; 0.0 for logits).
    Targets are class indices or one-hot rows. ``m = Accuracy(); m.update_state(y, logits)``"""

    name = "accuracy"

    def __init__(self, threshold: float = 0.5, name: str | None = None):
        self.threshold = threshold
        super().__init__(name)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        t, p = _labels(y_true, y_pred, self.threshold, type(self).__name__)
        self.correct += int((p == t).sum())
        self.total += int(t.size)


class TopKAccuracy(_Counting):
    """Fraction of samples whose true class is among the ``k`` highest scores.
    ``TopKAccuracy(k=5)``."""

    def __init__(self, k: int = 5, name: str | None = None):
        self.k = k
        super().__init__(name or f"top{k}_accuracy")

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        y_pred = _np(y_pred)
        if y_pred.ndim < 2 or y_pred.shape[-1] < 2:
            raise ShapeError(f"TopKAccuracy: needs class scores of shape (N, C), got {y_pred.shape}")
        t, _ = _labels(y_true, y_pred, 0.5, "TopKAccuracy")
        k = min(self.k, y_pred.shape[-1])
        top = np.argpartition(-y_pred, k - 1, axis=-1)[..., :k]
        self.correct += int((top == t[..., None]).any(-1).sum())
        self.total += int(t.size)


class _Confusion(Metric):
    """Per-class true positives, false positives and false negatives over all batches.

    average="macro": the unweighted mean over the classes present in the targets or the
    predictions (as scikit-learn does); average="binary": the class ``pos_label`` only.
    A ratio with a zero denominator counts as 0.
    """

    def __init__(self, average: str = "macro", threshold: float = 0.5, pos_label: int = 1,
                 name: str | None = None):
        if average not in ("macro", "binary"):
            raise EmberError(f"{type(self).__name__}: average must be 'macro' or 'binary', got {average!r}")
        self.average, self.threshold, self.pos_label = average, threshold, pos_label
        super().__init__(name)

    def reset_state(self) -> None:
        self.tp = np.zeros(0, np.int64)
        self.fp = np.zeros(0, np.int64)
        self.fn = np.zeros(0, np.int64)
        self.seen = np.zeros(0, bool)

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        t, p = _labels(y_true, y_pred, self.threshold, type(self).__name__)
        t, p = t.reshape(-1), p.reshape(-1)
        if t.size and min(t.min(), p.min()) < 0:
            raise EmberError(f"{type(self).__name__}: class labels must be >= 0, got {min(t.min(), p.min())}")
        n = max(len(self.tp), int(t.max(initial=0)) + 1, int(p.max(initial=0)) + 1, self.pos_label + 1)
        for attr in ("tp", "fp", "fn", "seen"):
            old = getattr(self, attr)
            setattr(self, attr, np.concatenate([old, np.zeros(n - len(old), old.dtype)]))
        self.tp += np.bincount(t[t == p], minlength=n)
        self.fp += np.bincount(p[t != p], minlength=n)
        self.fn += np.bincount(t[t != p], minlength=n)
        self.seen[t] = True
        self.seen[p] = True

    def _per_class(self) -> np.ndarray:
        raise NotImplementedError

    def result(self) -> float:
        scores = self._per_class()
        if self.average == "binary":
            return float(scores[self.pos_label]) if len(scores) > self.pos_label else 0.0
        return float(scores[self.seen].mean()) if self.seen.any() else 0.0


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros(len(a)), where=b > 0)


class Precision(_Confusion):
    """tp / (tp + fp); macro average over classes, or ``average="binary"``."""

    name = "precision"

    def _per_class(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fp)


class Recall(_Confusion):
    """tp / (tp + fn); macro average over classes, or ``average="binary"``."""

    name = "recall"

    def _per_class(self) -> np.ndarray:
        return _ratio(self.tp, self.tp + self.fn)


class F1Score(_Confusion):
    """2 tp / (2 tp + fp + fn) per class (the harmonic mean of precision and recall), then
    the macro average, or ``average="binary"``."""

    name = "f1"

    def _per_class(self) -> np.ndarray:
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


class _MeanError(Metric):
    def reset_state(self) -> None:
        self.total, self.count = 0.0, 0

    def update_state(self, y_true: Any, y_pred: Any) -> None:
        t, p = _np(y_true).astype(np.float64), _np(y_pred).astype(np.float64)
        try:
            err = np.broadcast_to(self._err(p - t), np.broadcast_shapes(t.shape, p.shape))
        except ValueError:
            raise ShapeError(f"{type(self).__name__}: y_true {t.shape} and y_pred {p.shape} do not "
                             "broadcast; reshape the targets like the predictions") from None
        self.total += float(err.sum())
        self.count += err.size

    def result(self) -> float:
        return self.total / self.count if self.count else 0.0


class MeanAbsoluteError(_MeanError):
    """Mean of |y_pred - y_true| over every element seen."""

    name = "mae"
    _err = staticmethod(np.abs)


class MeanSquaredError(_MeanError):
    """Mean of (y_pred - y_true)^2 over every element seen."""

    name = "mse"
    _err = staticmethod(np.square)


_BY_NAME = {
    "accuracy": Accuracy, "top_k_accuracy": TopKAccuracy, "top5": lambda: TopKAccuracy(5),
    "precision": Precision, "recall": Recall, "f1": F1Score,
    "mae": MeanAbsoluteError, "mse": MeanSquaredError,
}


def get(metric: "str | Metric", logits_binary: bool = False) -> Metric:
    """A Metric from a name (see the list in the error) or a Metric object itself.
    ``logits_binary`` makes the binary threshold 0 (the loss takes logits)."""
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str):
        make = _BY_NAME.get(metric)
        if make is None:
            raise EmberError(f"compile: unknown metric {metric!r}; use one of {sorted(_BY_NAME)} or a "
                             "Metric object such as ember.metrics.TopKAccuracy(k=3)")
        m = make()
        if logits_binary and hasattr(m, "threshold"):
            m.threshold = 0.0
        return m
    raise EmberError(f"compile: a metric must be a name or an ember.metrics.Metric, got {type(metric).__name__}")
