"""Hand-written C kernels for ops whose NumPy kernels are slow or use another thread pool (stride-1
float32 convolution, max pooling, matrix products on ember's threads). Each ``<name>.c`` here is
compiled on first use through the compiler's on-disk cache (ember.compiler.cache: once per
machine, shared by processes). Without a C compiler, or when ``EMBER_NATIVE=0``, ``module()``
returns None and the ops use their NumPy kernels.

>>> mod = module("conv2d")   # the extension module, or None
"""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from ... import config

_modules: dict = {}
_lock = threading.RLock()


def module(name: str):
    """The compiled extension module built from ``<name>.c``, or None when it can't be built."""
    mod = _modules.get(name, False)
    if mod is not False:
        return mod
    with _lock:
        if name not in _modules:
            _modules[name] = _build(name)
        return _modules[name]


def gemm():
    """The matrix-product module (gemm.c) bound to NumPy's OpenBLAS, or None (no C compiler,
    or a NumPy whose BLAS lacks what it needs: then NumPy's matmul is used).

    >>> mod = gemm(); mod is None or mod.matmul(a, b, out)"""
    mod = _modules.get("gemm:bound", False)
    if mod is not False:
        return mod
    with _lock:
        if "gemm:bound" not in _modules:
            mod = None
            if config.native_kernels():
                from ...compiler import threads
                blas = threads.openblas_gemm()
                mod = module("gemm") if blas is not None else None
                if mod is not None:
                    mod.bind(*blas)
            _modules["gemm:bound"] = mod
        return _modules["gemm:bound"]


def matmul(mod, a, b):
    """``a @ b`` by gemm.c's ``mod.matmul`` into a new C-contiguous array, or by NumPy's matmul
    (into the same array) for a layout it declines. The shapes must be ones gemm.c can take:
    (..., M, K) @ (K, N), or with equal batch dims."""
    out = np.empty(a.shape[:-1] + b.shape[-1:], a.dtype)
    if not mod.matmul(a, b, out):
        np.matmul(a, b, out=out)
    return out


def _build(name: str):
    if not config.native_kernels():
        return None
    from ...compiler import cache  # imported late: ops load before the compiler package
    if cache.compiler() is None:
        return None
    try:
        return cache.load((Path(__file__).parent / f"{name}.c").read_text())
    except cache.CompileError as e:
        warnings.warn(f"ember: the native {name} kernels did not compile; using NumPy kernels instead "
                      f"(slower). Compiler output:\n{e}", RuntimeWarning, stacklevel=3)
        return None
