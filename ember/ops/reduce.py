"""Reductions over axes. Primitives take ``axis`` (sorted tuple or None) and ``keepdims``;
the public functions take PyTorch's ``dim`` / ``keepdim`` and normalize them."""
from __future__ import annotations

from collections import namedtuple

# This module defines sum/max/min/all/any (PyTorch names); it uses no Python builtins of those names.

from .registry import ReduceOp, Op, normalize_axis, normalize_dim
from ..tensor import Tensor


def _keep_shape(shape, axis):
    """The shape a reduction keeps with keepdims=True."""
    if axis is None:
        return (1,) * len(shape)
    return tuple(1 if i in axis else s for i, s in enumerate(shape))


def _expand_back(g, x, axis, keepdims):
    """Broadcast a reduced gradient back over the reduced axes."""
    from .movement import expand_, reshape_
    if not keepdims:
        g = reshape_(g, shape=_keep_shape(x.shape, axis))
    return expand_(g, shape=tuple(x.shape))


def _arr(xp, f):
    """Reductions over all axes return NumPy scalars: keep them arrays."""
    return lambda x, axis=None, keepdims=False: xp.asarray(f(x, axis=axis, keepdims=keepdims))


def _sum_vjp(g, out, x, axis=None, keepdims=False):
    return (_expand_back(g, x, axis, keepdims),)


def _extreme_vjp(g, out, x, axis=None, keepdims=False):
    # Ties share the gradient evenly (PyTorch's rule for amax/amin).
    o = out if keepdims else out.reshape(_keep_shape(x.shape, axis))
    mask = x == o
    gk = g if keepdims else g.reshape(o.shape)
    return (gk * mask / mask.sum(dim=axis, keepdim=True),)


def _prod_vjp(g, out, x, axis=None, keepdims=False):
    o = out if keepdims else out.reshape(_keep_shape(x.shape, axis))
    gk = g if keepdims else g.reshape(o.shape)
    return (gk * o / x,)  # assumes no zeros in x, as the simple formula does


def _cumsum_vjp(g, out, x, axis):
    return (g.flip(axis).cumsum(axis).flip(axis),)


sum_ = ReduceOp("sum", lambda xp: _arr(xp, xp.sum), out_dtype="sum", vjp=_sum_vjp, saves=False,
                c="+", onnx="ReduceSum")
max_ = ReduceOp("max", lambda xp: _arr(xp, xp.max), vjp=_extreme_vjp, c="max", onnx="ReduceMax")
min_ = ReduceOp("min", lambda xp: _arr(xp, xp.min), vjp=_extreme_vjp, c="min", onnx="ReduceMin")
prod_ = ReduceOp("prod", lambda xp: _arr(xp, xp.prod), out_dtype="sum", vjp=_prod_vjp, c="*",
                 onnx="ReduceProd")
all_ = ReduceOp("all", lambda xp: _arr(xp, xp.all), out_dtype="bool")
any_ = ReduceOp("any", lambda xp: _arr(xp, xp.any), out_dtype="bool")


def _arg(xp, f):
    def k(x, axis=None, keepdims=False):
        if axis is None:
            r = f(x.reshape(-1))
            return xp.asarray(r).reshape((1,) * x.ndim if keepdims else ())
        return f(x, axis=axis[0], keepdims=keepdims)
    return k


argmax_ = ReduceOp("argmax", lambda xp: _arg(xp, xp.argmax), out_dtype="int64", onnx="ArgMax")
argmin_ = ReduceOp("argmin", lambda xp: _arg(xp, xp.argmin), out_dtype="int64", onnx="ArgMin")
cumsum_ = Op("cumsum", lambda xp: lambda x, axis: xp.cumsum(x, axis=axis), vjp=_cumsum_vjp, saves=False,
             shape=lambda s, axis: s, dtype=lambda d, axis: d, onnx="CumSum")


def _ax(x, dim, op):
    return normalize_axis(dim, x.ndim, op)


# -- public functions (PyTorch names) -------------------------------------------------------
def sum(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Sum over ``dim`` (int, tuple or None for all). ``ember.sum(x, dim=1)``."""
    if dtype is not None:
        x = x.to(dtype)
    return sum_(x, axis=_ax(x, dim, "sum"), keepdims=keepdim)


def mean(x: Tensor, dim=None, keepdim: bool = False, *, dtype=None) -> Tensor:
    """Arithmetic mean over ``dim``. ``x.mean(dim=0)``."""
    if dtype is not None:
        x = x.to(dtype)
    elif not x.dtype.is_floating_point:
        x = x.float()
    axis = _ax(x, dim, "mean")
    n = _count(x.shape, axis)
    return sum_(x, axis=axis, keepdims=keepdim) * (1.0 / n if n else float("nan"))


def _count(shape, axis) -> int:
    n = 1
    for i, s in enumerate(shape):
        if axis is None or i in axis:
            n *= s
    return n


def var(x: Tensor, dim=None, keepdim: bool = False, *, correction: int = 1, unbiased=None) -> Tensor:
    """Variance with Bessel's correction by default (``correction=0`` for the population one)."""
    if unbiased is not None:
        correction = int(unbiased)
    if not x.dtype.is_floating_point:
        x = x.float()
    axis = _ax(x, dim, "var")
    n = _count(x.shape, axis)
    d = x - mean(x, dim=axis, keepdim=True)
    return sum_(d * d, axis=axis, keepdims=keepdim) * (1.0 / (n - correction) if n > correction else float("nan"))


def std(x: Tensor, dim=None, keepdim: bool = False, *, correction: int = 1, unbiased=None) -> Tensor:
    """Standard deviation: ``var(...).sqrt()``."""
    return var(x, dim, keepdim, correction=correction, unbiased=unbiased).sqrt()


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) computed without overflow: the max is subtracted first."""
    axis = _ax(x, dim, "logsumexp")
    m = max_(x.detach(), axis=axis, keepdims=True)
    m = m.masked_fill(m.isinf(), 0.0)
    out = sum_((x - m).exp(), axis=axis, keepdims=True).log() + m
    return out if keepdim else out.squeeze(axis if axis is not None else None)


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _extreme(op, argop, name):
    def f(x: Tensor, dim=None, keepdim: bool = False):
        if isinstance(dim, Tensor):  # ember.max(a, b) is elementwise, as in PyTorch
            from .elementwise import maximum, minimum
            return (maximum if name == "max" else minimum)(x, dim)
        if dim is None:
            return op(x, axis=None, keepdims=False)
        if not isinstance(dim, int):
            raise TypeError(f"{name}(dim=...) takes one int dim; use amax/amin for several")
        axis = (normalize_dim(dim, x.ndim, name),)
        return MaxResult(op(x, axis=axis, keepdims=keepdim), argop(x, axis=axis, keepdims=keepdim))
    f.__name__ = name
    f.__doc__ = f"{name} of all elements, or ``(values, indices)`` along ``dim``. ``x.{name}(dim=1)``."
    return f


max = _extreme(max_, argmax_, "max")
min = _extreme(min_, argmin_, "min")


def amax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Maximum over ``dim`` (int, tuple or None)."""
    return max_(x, axis=_ax(x, dim, "amax"), keepdims=keepdim)


def amin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Minimum over ``dim`` (int, tuple or None)."""
    return min_(x, axis=_ax(x, dim, "amin"), keepdims=keepdim)


def prod(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return prod_(x, axis=_ax(x, dim, "prod"), keepdims=keepdim)


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    """Index of the maximum (of the flattened tensor when ``dim`` is None)."""
    return argmax_(x, axis=None if dim is None else (normalize_dim(dim, x.ndim, "argmax"),), keepdims=keepdim)


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return argmin_(x, axis=None if dim is None else (normalize_dim(dim, x.ndim, "argmin"),), keepdims=keepdim)


def cumsum(x: Tensor, dim: int) -> Tensor:
    """Cumulative sum along ``dim``."""
    return cumsum_(x, axis=normalize_dim(dim, x.ndim, "cumsum"))


def all(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return all_(x, axis=_ax(x, dim, "all"), keepdims=keepdim)


def any(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return any_(x, axis=_ax(x, dim, "any"), keepdims=keepdim)


def norm(x: Tensor, p=2, dim=None, keepdim: bool = False) -> Tensor:
    """Vector p-norm over ``dim`` (2 by default)."""
    if p == 2:
        return sum(x * x, dim, keepdim).sqrt()
    if p == 1:
        return sum(x.abs(), dim, keepdim)
    if p == float("inf"):
        return amax(x.abs(), dim, keepdim)
    return sum(x.abs() ** p, dim, keepdim) ** (1.0 / p)
