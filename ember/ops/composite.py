"""Composites: functions written with ember ops, so autograd, tracing and export come free.
No vjp and no kernel here; promote one to a primitive only when a measurement demands it."""
from __future__ import annotations

from ..tensor import Tensor
from . import elementwise as E
from .reduce import amax, sum
from .registry import normalize_dim


def clamp(x: Tensor, min=None, max=None) -> Tensor:
    """Limit values to [min, max]; either bound may be None or a tensor. ``x.clamp(0, 1)``."""
    if isinstance(min, Tensor) or isinstance(max, Tensor):
        if min is not None:
            x = E.maximum(x, min)
        if max is not None:
            x = E.minimum(x, max)
        return x
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given")
    return E.clamp_scalar(x, min=min, max=max)


clip = clamp


def square(x: Tensor) -> Tensor:
    return x * x


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, shifted by the max for stability."""
    d = normalize_dim(dim, x.ndim, "softmax")
    e = (x - amax(x.detach(), dim=d, keepdim=True)).exp()
    return e / sum(e, dim=d, keepdim=True)


def where(condition: Tensor, x, y) -> Tensor:
    """``x`` where ``condition`` is True, else ``y`` (broadcast)."""
    return E.where(condition, x, y)


def lerp(start: Tensor, end: Tensor, weight) -> Tensor:
    return start + (end - start) * weight
