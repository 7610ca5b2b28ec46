"""Parameter: a Tensor that a Module registers as trainable. It is a plain ember Tensor with a
flag (so the eager fast path never sees a subclass); ``isinstance(p, Parameter)`` reads the flag."""
from __future__ import annotations

from ..tensor import Tensor


class _ParameterMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return type(obj) is Tensor and getattr(obj, "_param", False)


class Parameter(metaclass=_ParameterMeta):
    """Mark a tensor as a trainable parameter. ``self.w = Parameter(ember.randn(3, 4))``."""

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True) -> Tensor:
        if data is None:
            from ..creation import empty
            data = empty(0)
        t = data.detach()
        t._vc = None  # a parameter owns its version counter
        t.requires_grad = bool(requires_grad)
        t._param = True
        return t


