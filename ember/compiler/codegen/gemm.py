"""Matrix products of a compiled program on ember's own threads (ember/ops/native/gemm.c:
OpenBLAS per thread share), so that one thread pool runs the whole program and the fused
kernels beside the products may use every core (see ember/compiler/threads.py).

>>> node.op = Gemm(node.op, native.gemm())   # for nodes where supported(node)
"""
from __future__ import annotations

import numpy as np

from . import bmm
from ...ops import native
from .native_op import NativeOp


def supported(node) -> bool:
    """A float32/float64 product, one dtype throughout, of a (..., M, K) by a (K, N) operand, or
    by a (..., K, N) one with the same batch dims unless bmm.py's kernel takes it (small
    matrices)."""
    if node.op.name != "matmul" or len(node.args) != 2 or len(node.vars) != 2:
        return False
    a, b = node.args
    if not (a.dtype == b.dtype == node.out.dtype and a.dtype in (np.float32, np.float64) and len(a.shape) >= 2):
        return False
    if len(b.shape) == 2:
        return True
    return len(b.shape) == len(a.shape) and a.shape[:-2] == b.shape[:-2] and not bmm.supported(node)


class Gemm(NativeOp):
    """The op of a ``matmul`` node run by gemm.c (``module``: native.gemm()); NumPy's matmul
    for layouts it declines (broadcast or doubly strided views)."""

    def __init__(self, op, module):
        super().__init__(op, module.matmul)
        self.module = module

    def cpu(self, a, b):
        return native.matmul(self.module, a, b)
