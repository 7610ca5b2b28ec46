"""In-place ops (``add_``, ``mul_``, ``x[i] = v``...). Under ``no_grad`` (optimizer updates) they
write straight into the tensor's memory. Under autograd the new value is recorded as an
out-of-place op and the tensor is rebased onto it, as PyTorch does; writes that would corrupt a
gradient are refused with an error."""
from __future__ import annotations

import numpy as np

from ..errors import AutogradError, DTypeError
from ..tensor import Tensor, _new
from . import registry as R
from . import elementwise as E


def _bump(t: Tensor) -> None:
    """Count an in-place write. If t is the output of a recorded op whose vjp reads values,
    that node's saved output is now stale: mark it so backward refuses instead of lying."""
    if t._vc is None:
        t._vc = [0]
    t._vc[0] += 1
    node = t._node
    if node is not None and node.op.saves and node.out is t._data:
        node.out = None


def _needs_grad(t: Tensor, others) -> bool:
    return R._grad_enabled and (t.requires_grad or any(type(o) is Tensor and o.requires_grad for o in others))


def _write(t: Tensor, value, name: str) -> None:
    """Copy ``value`` (an array or scalar) into t's memory, keeping t's dtype."""
    try:
        if t._data.dtype.kind not in "fc" and getattr(value, "dtype", np.asarray(value).dtype).kind in "fc":
            raise TypeError
        t._data[...] = value
    except TypeError:
        raise DTypeError(f"{name}: result of dtype {np.asarray(value).dtype} cannot be written into a "
                         f"{t.dtype.name} tensor in place; use the out-of-place form") from None
    except ValueError as e:
        raise AutogradError(f"{name}: cannot write in place into this tensor of shape {tuple(t.shape)} "
                            f"({e}); expanded tensors are read-only, .clone() first") from None


def apply_inplace(t: Tensor, compute, name: str, others=()) -> Tensor:
    """Set t to ``compute(t)`` (an out-of-place ember expression) in place."""
    if not _needs_grad(t, others):
        prev = R.set_grad_enabled(False)
        try:
            r = compute(t)
        finally:
            R.set_grad_enabled(prev)
        _write(t, r._data, name)
        _bump(t)
        return t
    if t.requires_grad and t._node is None:
        raise AutogradError(f"{name}: a leaf tensor that requires grad (shape {tuple(t.shape)}) is used in "
                            f"an in-place operation; wrap the update in `with ember.no_grad():` or use "
                            f"the out-of-place form")
    base = t._base
    if base is not None and base.requires_grad:
        raise AutogradError(f"{name}: in-place write into a view of a tensor that requires grad; "
                            f"write into the base tensor (base[index] = value) or use an out-of-place op")
    # Snapshot the old value so the recorded ops' vjps see what the forward saw.
    old = _new(t._data.copy(), t._dev)
    old._node, old.requires_grad = t._node, t.requires_grad
    if t._node is not None and t._node.out is t._data:
        t._node.out = old._data
    r = compute(old)
    _write(t, r._data, name)
    t._node, t.requires_grad = r._node, r.requires_grad
    _bump(t)
    return t


def _binary_inplace(op, name):
    """add_/mul_/...: a direct ufunc with out= when no gradient is involved (the optimizer path)."""
    def method(self: Tensor, other, *, alpha=None):
        if alpha is not None:
            other = other * alpha
        # While tracing (ember.jit) the write must go through ops, which the tracer records.
        if R._tracer is None and not _needs_grad(self, (other,)):
            o = other._data if type(other) is Tensor else other
            try:
                (op.cpu if self._dev is R.cpu else op.kernel(self._dev))(self._data, o, out=self._data)
            except TypeError:  # NumPy's casting errors subclass TypeError
                raise DTypeError(f"{name}: result cannot be written into a {self.dtype.name} tensor in "
                                 f"place; use the out-of-place form") from None
            except ValueError as e:
                raise AutogradError(f"{name}: cannot write in place into shape {tuple(self.shape)} ({e})") from None
            _bump(self)
            return self
        return apply_inplace(self, lambda t: op(t, other), name, (other,))
    method.__name__ = name
    method.__doc__ = f"In-place ``{op.name}``: ``x.{name}(y)`` sets x to x {op.name} y."
    return method


add_ = _binary_inplace(E.add, "add_")
sub_ = _binary_inplace(E.sub, "sub_")
mul_ = _binary_inplace(E.mul, "mul_")
div_ = _binary_inplace(E.div, "div_")
pow_ = _binary_inplace(E.pow, "pow_")


def iadd(self, other):
    return add_(self, other)


def isub(self, other):
    return sub_(self, other)


def imul(self, other):
    return mul_(self, other)


def itruediv(self, other):
    return div_(self, other)


def zero_(self: Tensor) -> Tensor:
    return fill_(self, 0)


def fill_(self: Tensor, value) -> Tensor:
    """Set every element to ``value``."""
    if isinstance(value, Tensor):
        return apply_inplace(self, lambda t: t * 0 + value.to(t.dtype), "fill_", (value,))
    if not _needs_grad(self, ()):
        _write(self, value, "fill_")
        _bump(self)
        return self
    return apply_inplace(self, lambda t: t * 0 + value, "fill_")


def copy_(self: Tensor, src: Tensor) -> Tensor:
    """Copy ``src`` (broadcast) into this tensor's memory."""
    if not isinstance(src, Tensor):
        from ..creation import tensor
        src = tensor(src)
    if src._dev is not self._dev:
        src = src.to(self._dev)
    return apply_inplace(self, lambda t: (t * 0 + src).to(t.dtype) if R._grad_enabled else src, "copy_", (src,))


def clamp_(self: Tensor, min=None, max=None) -> Tensor:
    from .composite import clamp
    return apply_inplace(self, lambda t: clamp(t, min, max), "clamp_", (min, max))


def neg_(self: Tensor) -> Tensor:
    return apply_inplace(self, lambda t: -t, "neg_")


def exp_(self: Tensor) -> Tensor:
    return apply_inplace(self, lambda t: t.exp(), "exp_")


def sqrt_(self: Tensor) -> Tensor:
    return apply_inplace(self, lambda t: t.sqrt(), "sqrt_")


def masked_fill_(self: Tensor, mask: Tensor, value) -> Tensor:
    return apply_inplace(self, lambda t: t.masked_fill(mask, value), "masked_fill_", (value,))


def addcmul_(self: Tensor, t1: Tensor, t2: Tensor, *, value=1) -> Tensor:
    """self += value * t1 * t2"""
    return add_(self, t1 * t2 * value if value != 1 else t1 * t2)


def addcdiv_(self: Tensor, t1: Tensor, t2: Tensor, *, value=1) -> Tensor:
    """self += value * t1 / t2"""
    return add_(self, t1 / t2 * value if value != 1 else t1 / t2)


def lerp_(self: Tensor, end: Tensor, weight) -> Tensor:
    """self += weight * (end - self)"""
    return add_(self, (end - self) * weight)


def uniform_(self: Tensor, a: float = 0.0, b: float = 1.0, *, generator=None) -> Tensor:
    """Fill with uniform samples from [a, b)."""
    from ..random import default_generator
    g = (generator or default_generator).np
    vals = g.random(self.shape, dtype=np.float64) * (b - a) + a
    return _fill_values(self, vals, "uniform_")


def normal_(self: Tensor, mean: float = 0.0, std: float = 1.0, *, generator=None) -> Tensor:
    """Fill with normal samples N(mean, std^2)."""
    from ..random import default_generator
    g = (generator or default_generator).np
    vals = g.standard_normal(self.shape, dtype=np.float64) * std + mean
    return _fill_values(self, vals, "normal_")


def _fill_values(self: Tensor, host_values: np.ndarray, name: str) -> Tensor:
    if self.requires_grad and self._node is None and R._grad_enabled:
        raise AutogradError(f"{name}: a leaf tensor that requires grad is filled in place; wrap it "
                            f"in `with ember.no_grad():`")
    from ..backends import backend_for
    _write(self, backend_for(self._dev).from_host(host_values.astype(self._data.dtype), self._dev), name)
    _bump(self)
    return self
