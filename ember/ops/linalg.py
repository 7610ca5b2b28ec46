"""Library-backed primitives: matrix products go to the backend's BLAS. No C expression: the
compiler treats them as opaque nodes and fusion boundaries."""
from __future__ import annotations

import numpy as np

from . import native
from ..errors import ShapeError, shape_str
from ..tensor import Tensor
from .registry import Op
from .. import dtypes as D


def _matmul_vjp(g, out, a, b):
    if a.ndim == 1 and b.ndim == 1:
        return g * b, g * a
    a2 = a.unsqueeze(0) if a.ndim == 1 else a
    b2 = b.unsqueeze(-1) if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = g2.unsqueeze(-2)
    if b.ndim == 1:
        g2 = g2.unsqueeze(-1)
    ga = g2 @ b2.transpose(-1, -2)
    gb = a2.transpose(-1, -2) @ g2
    if a.ndim == 1:
        ga = ga.squeeze(-2)
    if b.ndim == 1:
        gb = gb.squeeze(-1)
    return ga, gb  # the engine sums broadcast batch dims back


def _matmul_shape(sa, sb):
    a = (1,) + tuple(sa) if len(sa) == 1 else tuple(sa)
    b = tuple(sb) + (1,) if len(sb) == 1 else tuple(sb)
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul: shapes {shape_str(sa, sb)} cannot be multiplied ({a[-1]} != {b[-2]})")
    import numpy as np
    batch = tuple(np.broadcast_shapes(a[:-2], b[:-2]))
    out = batch + (a[-2], b[-1])
    if len(sa) == 1:
        out = out[:-2] + out[-1:]
    if len(sb) == 1:
        out = out[:-1]
    return out


def _matmul_kernel(xp):
    """NumPy's matmul, except that float products of a (..., M, K) by a (K, N) array, or by a
    (..., K, N) one with the same batch dims, on the CPU run on ember's threads (ember/ops/native/gemm.c: one thread pool for all of ember's
    kernels, see ember/compiler/threads.py)."""
    if xp is not np:
        return xp.matmul
    floats = (np.dtype(np.float32), np.dtype(np.float64))

    def matmul(a, b):
        if (a.ndim >= 2 and (b.ndim == 2 or b.ndim == a.ndim and a.shape[:-2] == b.shape[:-2])
                and a.dtype == b.dtype and a.dtype in floats):
            mod = native.gemm()
            if mod is not None:
                return native.matmul(mod, a, b)
        return np.matmul(a, b)
    return matmul


matmul_ = Op("matmul", _matmul_kernel, vjp=_matmul_vjp, shape=_matmul_shape, bilinear=True,
             dtype=lambda da, db: D.promote(da, db), onnx="MatMul")


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """Matrix product with NumPy/PyTorch batching rules. ``a @ b``."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise ShapeError(f"matmul: both operands must be tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.ndim == 0 or b.ndim == 0:
        raise ShapeError(f"matmul: both operands need at least 1 dimension, got shapes {shape_str(a.shape, b.shape)}; "
                         f"use * for scalars")
    ka = a.shape[-1]
    kb = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if ka != kb:
        raise ShapeError(f"matmul: shapes {shape_str(a.shape, b.shape)} cannot be multiplied: the last "
                         f"dimension of the first ({ka}) must equal the "
                         f"{'second-to-last' if b.ndim > 1 else 'only'} dimension of the second ({kb}); "
                         f"transpose an operand (b.T) or reshape it")
    if a.dtype is not b.dtype:
        d = D.promote(a.dtype, b.dtype)
        a, b = a.to(d), b.to(d)
    return matmul_(a, b)


mm = matmul
