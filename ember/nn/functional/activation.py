"""Activation functions (PyTorch's ``torch.nn.functional`` names), written with ember ops.
relu, gelu, silu, sigmoid and tanh are primitives re-exported from ``ember.ops``."""
from __future__ import annotations

import warnings

from ...ops import composite as C
from ...ops import elementwise as E
from ...ops import nnops
from ...tensor import Tensor

__all__ = ["leaky_relu", "elu", "softplus", "hardtanh", "relu6", "softmax", "log_softmax"]


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    """x if x > 0 else negative_slope * x. ``F.leaky_relu(x, 0.2)``."""
    return E.where(input > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x if x > 0 else alpha * (exp(x) - 1). ``F.elu(x)``."""
    # expm1 of min(x, 0): the unused branch never overflows, so its zero gradient stays finite.
    return E.where(input > 0, input, C.clamp(input, max=0.0).expm1() * alpha)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * x)) / beta, linear where beta * x > threshold. ``F.softplus(x)``."""
    bx = input * beta
    soft = C.clamp(bx, max=float(threshold)).exp().log1p() * (1.0 / beta)
    return E.where(bx > threshold, input, soft)


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    """Clamp to [min_val, max_val]. ``F.hardtanh(x)``."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val ({min_val}) must not exceed max_val ({max_val})")
    return C.clamp(input, min_val, max_val)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:
    """min(max(x, 0), 6). ``F.relu6(x)``."""
    return C.clamp(input, 0.0, 6.0)


def _implicit_dim(name: str, ndim: int) -> int:
    warnings.warn(f"{name}: implicit dimension choice is deprecated; pass dim= explicitly", stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``. ``F.softmax(x, dim=-1)``."""
    if dtype is not None:
        input = input.to(dtype)
    return C.softmax(input, _implicit_dim("softmax", input.ndim) if dim is None else dim)


def log_softmax(input: Tensor, dim: int | None = None, dtype=None) -> Tensor:
    """log(softmax(x)) along ``dim``, stable for large logits (one fused op). ``F.log_softmax(x, 1)``."""
    if dtype is not None:
        input = input.to(dtype)
    return nnops.log_softmax(input, _implicit_dim("log_softmax", input.ndim) if dim is None else dim)
