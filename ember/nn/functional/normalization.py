"""Normalization functions: batch_norm, layer_norm, group_norm (composites of ember ops)."""
from __future__ import annotations

import math

from ...autograd import no_grad
from ...errors import ShapeError
from ...tensor import Tensor

__all__ = ["batch_norm", "layer_norm", "group_norm"]


def _channel_shape(x: Tensor) -> tuple:
    """(1, C, 1, ...): per-channel vectors broadcast against an (N, C, ...) input."""
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _normalize(x: Tensor, axes: tuple, eps: float):
    """(x - mean) / sqrt(var + eps) over ``axes`` (biased variance); also returns mean, var."""
    mean = x.mean(dim=axes, keepdim=True)
    d = x - mean
    var = (d * d).mean(dim=axes, keepdim=True)
    return d * (var + eps).rsqrt(), mean, var


def batch_norm(input: Tensor, running_mean: Tensor | None, running_var: Tensor | None,
               weight: Tensor | None = None, bias: Tensor | None = None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel (dim 1) over the batch and the other dims. In training, batch
    statistics are used and the running ones updated in place (unbiased variance); otherwise the
    running ones are used. ``F.batch_norm(x, rm, rv, training=True)``."""
    if input.ndim < 2:
        raise ShapeError(f"batch_norm: expected an input of shape (N, C, ...), got {tuple(input.shape)}")
    cshape = _channel_shape(input)
    if training:
        axes = (0,) + tuple(range(2, input.ndim))
        n = input.numel() // input.shape[1]
        if n <= 1:
            raise ShapeError(f"batch_norm: expected more than 1 value per channel when training, got "
                             f"input of shape {tuple(input.shape)}; use a larger batch or eval mode")
        y, mean, var = _normalize(input, axes, eps)
        if running_mean is not None and running_var is not None:
            with no_grad():
                running_mean.mul_(1 - momentum).add_(mean.reshape(-1) * momentum)
                running_var.mul_(1 - momentum).add_(var.reshape(-1) * (momentum * n / (n - 1)))
        if weight is not None:
            y = y * weight.reshape(cshape)
        return y if bias is None else y + bias.reshape(cshape)
    if running_mean is None or running_var is None:
        raise ShapeError("batch_norm: running_mean and running_var are required when training=False")
    # Eval: fold the statistics and the affine into one per-channel scale and shift (2 passes).
    scale = (running_var + eps).rsqrt()
    if weight is not None:
        scale = scale * weight
    shift = -running_mean * scale
    if bias is not None:
        shift = shift + bias
    return input * scale.reshape(cshape) + shift.reshape(cshape)


def layer_norm(input: Tensor, normalized_shape, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last ``len(normalized_shape)`` dims. ``F.layer_norm(x, (64,))``."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(shape)
    if input.ndim < k or tuple(input.shape[input.ndim - k:]) != shape:
        raise ShapeError(f"layer_norm: input of shape {tuple(input.shape)} does not end in "
                         f"normalized_shape {shape}; pass the trailing dims of the input")
    y, _, _ = _normalize(input, tuple(range(input.ndim - k, input.ndim)), eps)
    if weight is not None:
        y = y * weight
    return y if bias is None else y + bias


def group_norm(input: Tensor, num_groups: int, weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize each group of channels of each sample. ``F.group_norm(x, 4)``."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise ShapeError(f"group_norm: input of shape {tuple(input.shape)} needs (N, C, ...) with C "
                         f"divisible by num_groups={num_groups}")
    n, c = input.shape[0], input.shape[1]
    g = input.reshape(n, num_groups, (c // num_groups) * math.prod(input.shape[2:]))
    y, _, _ = _normalize(g, (2,), eps)
    y = y.reshape(input.shape)
    cshape = _channel_shape(input)
    if weight is not None:
        y = y * weight.reshape(cshape)
    return y if bias is None else y + bias.reshape(cshape)
