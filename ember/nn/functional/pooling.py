"""Pooling (PyTorch's functional names and arguments). ``F.max_pool2d(x, 2)``.

max/avg pooling call the registered primitives in ember/ops/conv.py; the 1-D forms run them on
a (N, C, 1, L) view. Adaptive average pooling is a composite: an avg_pool2d when the sizes
divide, else two matmuls with constant averaging matrices (the window mean is separable)."""
from __future__ import annotations

import numpy as np

from ...errors import DTypeError, EmberError, ShapeError
from ...ops.conv import avg_pool2d_, max_pool2d_, max_pool2d_indices_, pool_out_size
from ...tensor import Tensor

__all__ = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
           "adaptive_avg_pool2d"]


def _pair(v, name: str, op: str) -> tuple:
    t = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if len(t) != 2 or not all(isinstance(i, int) and i >= 0 for i in t):
        raise EmberError(f"{op}: {name} must be a non-negative int or a pair of them, got {v!r}")
    return tuple(int(i) for i in t)


def _unbatched(fn, x: Tensor, nd: int, *args, **kw):
    """Run a pooling function on an unbatched input (PyTorch accepts one) by adding N=1."""
    out = fn(x.unsqueeze(0), *args, **kw)
    if isinstance(out, tuple):
        return tuple(o.squeeze(0) for o in out)
    return out.squeeze(0)


def _check_input(op: str, x: Tensor, nd: int) -> None:
    if not isinstance(x, Tensor):
        raise DTypeError(f"{op}: expected an ember Tensor, got {type(x).__name__}")
    if x.ndim != nd + 2:
        dims = "(N, C, H, W)" if nd == 2 else "(N, C, L)"
        raise ShapeError(f"{op}: expected a {nd + 2}-D input {dims} or {nd + 1}-D without the batch, "
                         f"got shape {tuple(x.shape)}")
    if not x.dtype.is_floating_point:
        raise DTypeError(f"{op}: expected a floating-point input, got {x.dtype.name}; convert with .float()")


def _geometry(op, x, kernel_size, stride, padding, dilation, ceil_mode, max_pad_of):
    kernel = _pair(kernel_size, "kernel_size", op)
    stride = kernel if stride is None or stride == [] or stride == () else _pair(stride, "stride", op)
    padding, dilation = _pair(padding, "padding", op), _pair(dilation, "dilation", op)
    if min(kernel) < 1 or min(stride) < 1 or min(dilation) < 1:
        raise EmberError(f"{op}: kernel_size {kernel}, stride {stride} and dilation {dilation} must be positive")
    for i in range(2):
        if padding[i] > max_pad_of(kernel[i], dilation[i]):
            raise EmberError(f"{op}: padding {padding} must be at most half the kernel size {kernel}")
        if pool_out_size(x.shape[2 + i], kernel[i], stride[i], padding[i], dilation[i], ceil_mode) < 1:
            raise ShapeError(f"{op}: input of shape {tuple(x.shape)} is too small for kernel {kernel} "
                             f"with padding {padding} and dilation {dilation}")
    return kernel, stride, padding, dilation


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over each window; with ``return_indices`` also the flat H*W position of each max.
    ``F.max_pool2d(x, 2)``."""
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(max_pool2d, input, 2, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    _check_input("max_pool2d", input, 2)
    kernel, stride, padding, dilation = _geometry("max_pool2d", input, kernel_size, stride, padding, dilation,
                                                  ceil_mode, lambda k, d: (d * (k - 1) + 1) // 2)
    params = dict(kernel=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=bool(ceil_mode))
    out = max_pool2d_(input, **params)
    if return_indices:
        return out, max_pool2d_indices_(input.detach(), **params)
    return out


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override=None) -> Tensor:
    """Mean over each window. ``F.avg_pool2d(x, 2)``."""
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(avg_pool2d, input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override)
    _check_input("avg_pool2d", input, 2)
    if divisor_override is not None:
        raise EmberError("avg_pool2d: divisor_override is not supported; scale the output instead")
    kernel, stride, padding, _ = _geometry("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode,
                                           lambda k, d: k // 2)
    return avg_pool2d_(input, kernel=kernel, stride=stride, padding=padding, ceil_mode=bool(ceil_mode),
                       count_include_pad=bool(count_include_pad))


def max_pool1d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over each window of an (N, C, L) input. ``F.max_pool1d(x, 2)``."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(max_pool1d, input, 1, kernel_size, stride, padding, dilation, ceil_mode, return_indices)
    _check_input("max_pool1d", input, 1)
    out = max_pool2d(input.unsqueeze(2), (1, _one(kernel_size)), None if stride is None else (1, _one(stride)),
                     (0, _one(padding)), (1, _one(dilation)), ceil_mode, return_indices)
    if return_indices:  # flat indices over a 1-row image are already positions along L
        return out[0].squeeze(2), out[1].squeeze(2)
    return out.squeeze(2)


def avg_pool1d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over each window of an (N, C, L) input. ``F.avg_pool1d(x, 2)``."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(avg_pool1d, input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad)
    _check_input("avg_pool1d", input, 1)
    return avg_pool2d(input.unsqueeze(2), (1, _one(kernel_size)), None if stride is None else (1, _one(stride)),
                      (0, _one(padding)), ceil_mode, count_include_pad).squeeze(2)


def _one(v) -> int:
    if isinstance(v, (tuple, list)) and len(v) == 1:
        v = v[0]
    if not isinstance(v, int):
        raise EmberError(f"pool1d: expected an int (or a 1-tuple), got {v!r}")
    return v


def _averaging_matrix(n: int, o: int, dtype) -> np.ndarray:
    """(o, n): row i averages PyTorch's adaptive window [floor(i*n/o), ceil((i+1)*n/o))."""
    a = np.zeros((o, n), dtype)
    for i in range(o):
        s, e = (i * n) // o, -((-(i + 1) * n) // o)
        a[i, s:e] = 1.0 / (e - s)
    return a


def adaptive_avg_pool2d(input: Tensor, output_size) -> Tensor:
    """Average pooling to a fixed output size (None keeps that dim). ``F.adaptive_avg_pool2d(x, 1)``."""
    if isinstance(input, Tensor) and input.ndim == 3:
        return _unbatched(adaptive_avg_pool2d, input, 2, output_size)
    _check_input("adaptive_avg_pool2d", input, 2)
    H, W = input.shape[2:]
    size = tuple(output_size) if isinstance(output_size, (tuple, list)) else (output_size, output_size)
    oh, ow = (H if size[0] is None else size[0]), (W if size[1] is None else size[1])
    if not all(isinstance(v, int) and v > 0 for v in (oh, ow)):
        raise EmberError(f"adaptive_avg_pool2d: output_size must be positive ints (or None), got {output_size!r}")
    if H % oh == 0 and W % ow == 0:
        k = (H // oh, W // ow)
        return avg_pool2d_(input, kernel=k, stride=k, padding=(0, 0), ceil_mode=False, count_include_pad=True)
    from ...creation import from_numpy
    dt = input.dtype.np
    ah = from_numpy(_averaging_matrix(H, oh, dt)).to(input.device)
    aw = from_numpy(_averaging_matrix(W, ow, dt).T.copy()).to(input.device)
    return ah @ (input @ aw)  # (oh, H) @ (N, C, H, W) @ (W, ow) -> (N, C, oh, ow)


def adaptive_avg_pool1d(input: Tensor, output_size) -> Tensor:
    """Average pooling of an (N, C, L) input to a fixed length. ``F.adaptive_avg_pool1d(x, 4)``."""
    if isinstance(input, Tensor) and input.ndim == 2:
        return _unbatched(adaptive_avg_pool1d, input, 1, output_size)
    _check_input("adaptive_avg_pool1d", input, 1)
    return adaptive_avg_pool2d(input.unsqueeze(2), (1, _one(output_size))).squeeze(2)
