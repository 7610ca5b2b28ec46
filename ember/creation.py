"""Creating tensors: from data, filled, ranges, random. PyTorch signatures."""
from __future__ import annotations

import numpy as np

from . import dtypes as D
from .backends import backend_for
from .device import cpu, device as as_device
from .errors import DTypeError
from .random import default_generator
from .tensor import Tensor, _new


def _finish(arr: np.ndarray, device, requires_grad: bool) -> Tensor:
    dev = cpu if device is None else as_device(device)
    if dev is not cpu:
        arr = backend_for(dev).from_host(arr, dev)
    t = _new(arr, dev)
    if requires_grad:
        t.requires_grad_(True)
    return t


def _np_dtype(dtype):
    return None if dtype is None else D.as_dtype(dtype).np


def _infer(data, explicit_dtype: bool = False) -> np.ndarray:
    """Python data -> array with PyTorch's default dtypes (floats -> float32, ints -> int64).
    With an explicit dtype, Python floats stay float64 until the final cast (no double rounding)."""
    if isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, Tensor):
        arr = data._host()
    else:
        arr = np.asarray(data)
        if arr.dtype == np.float64 and not explicit_dtype and not _has_float64(data):
            arr = arr.astype(D.get_default_dtype().np)
    if arr.dtype.kind == "O":
        raise DTypeError(f"tensor: cannot make a tensor from {type(data).__name__} data of mixed or "
                         f"unsupported types")
    if arr.dtype not in D._BY_NP:
        kind = arr.dtype.kind
        arr = arr.astype({"i": np.int64, "u": np.int64, "f": np.float32, "b": np.bool_}.get(kind, np.float32))
    return arr


def _has_float64(data) -> bool:
    """True if nested Python data holds float64 NumPy values or tensors (kept as float64)."""
    if isinstance(data, (list, tuple)):
        return any(_has_float64(d) for d in data)
    return isinstance(data, (np.floating, np.ndarray)) and data.dtype == np.float64 or (
        isinstance(data, Tensor) and data.dtype is D.float64)


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``. ``ember.tensor([[1., 2.], [3., 4.]])``."""
    arr = _infer(data, dtype is not None)
    npd = _np_dtype(dtype)
    arr = np.array(arr, dtype=npd if npd is not None else arr.dtype, copy=True)
    return _finish(arr, device, requires_grad)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    """Like ``tensor`` but shares memory with a NumPy array or Tensor when it can."""
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    arr = _infer(data, dtype is not None)
    npd = _np_dtype(dtype)
    if npd is not None and arr.dtype != npd:
        arr = arr.astype(npd)
    return _finish(arr, device, False)


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap a NumPy array without copying: writes through either are seen by both."""
    if not isinstance(array, np.ndarray):
        raise DTypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    D.from_numpy(array.dtype)  # clear error for unsupported dtypes
    return _new(array, cpu)


def from_dlpack(obj) -> Tensor:
    """Zero-copy import of any DLPack producer (a PyTorch or NumPy array, a CuPy array)."""
    dev_type, dev_id = obj.__dlpack_device__()
    if int(dev_type) == 1:  # kDLCPU
        return _new(np.from_dlpack(obj), cpu)
    dev = as_device(f"cuda:{dev_id}")
    return _new(backend_for(dev).xp.from_dlpack(obj), dev)


def _size(size) -> tuple:
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = size[0]
    return tuple(int(s) for s in size)


def _filled(fill, size, dtype, device, requires_grad, default=None):
    npd = _np_dtype(dtype) if dtype is not None else (default or D.get_default_dtype().np)
    return _finish(np.full(_size(size), fill, dtype=npd), device, requires_grad)


def zeros(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros. ``ember.zeros(2, 3)``."""
    return _finish(np.zeros(_size(size), dtype=_np_dtype(dtype) or D.get_default_dtype().np), device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones. ``ember.ones(2, 3)``."""
    return _filled(1, size, dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """An uninitialized tensor. ``ember.empty(2, 3)``."""
    return _finish(np.empty(_size(size), dtype=_np_dtype(dtype) or D.get_default_dtype().np), device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``fill_value`` (dtype inferred from it, as in PyTorch)."""
    default = D.scalar_dtype(fill_value).np if not isinstance(fill_value, Tensor) else None
    return _filled(fill_value, (size,) if isinstance(size, int) else tuple(size), dtype, device, requires_grad, default)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Values from start (inclusive) to end (exclusive). ``ember.arange(5)``."""
    if end is None:
        start, end = 0, start
    if dtype is None:
        is_float = any(isinstance(v, float) for v in (start, end, step))
        npd = D.get_default_dtype().np if is_float else np.int64
    else:
        npd = _np_dtype(dtype)
    return _finish(np.arange(start, end, step).astype(npd), device, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from start to end, both included."""
    arr = np.linspace(start, end, steps).astype(_np_dtype(dtype) or D.get_default_dtype().np)
    return _finish(arr, device, requires_grad)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Identity matrix (n x m)."""
    return _finish(np.eye(n, m, dtype=_np_dtype(dtype) or D.get_default_dtype().np), device, requires_grad)


def _gen(generator):
    return (generator or default_generator).np


def _float_random(draw, size, dtype):
    npd = _np_dtype(dtype) or D.get_default_dtype().np
    if npd.kind != "f":
        raise DTypeError(f"random floats need a floating dtype, got {np.dtype(npd)}")
    if npd == np.float16:
        return draw(size, np.float32).astype(np.float16)
    return draw(size, npd)


def rand(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1). ``ember.rand(2, 3)``."""
    g = _gen(generator)
    arr = _float_random(lambda s, d: g.random(s, dtype=d), _size(size), dtype)
    return _finish(arr, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples. ``ember.randn(2, 3)``."""
    g = _gen(generator)
    arr = _float_random(lambda s, d: g.standard_normal(s, dtype=d), _size(size), dtype)
    return _finish(arr, device, requires_grad)


def randint(low: int, high: int | None = None, size=(), *, generator=None, dtype=None, device=None) -> Tensor:
    """Integers in [low, high). ``ember.randint(0, 10, (3,))``."""
    if high is None:
        low, high = 0, low
    arr = _gen(generator).integers(low, high, size=tuple(size), dtype=np.int64)
    return _finish(arr.astype(_np_dtype(dtype) or np.int64), device, False)


def randperm(n: int, *, generator=None, device=None) -> Tensor:
    """A random permutation of 0..n-1."""
    return _finish(_gen(generator).permutation(n).astype(np.int64), device, False)


def _like(fn):
    def like(x: Tensor, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        return fn(x.shape, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)
    like.__name__ = fn.__name__ + "_like"
    like.__doc__ = f"``{fn.__name__}`` with the shape, dtype and device of ``x``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
empty_like = _like(empty)
rand_like = _like(rand)
randn_like = _like(randn)


def full_like(x: Tensor, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full(x.shape, fill_value, dtype=dtype or x.dtype, device=device or x.device, requires_grad=requires_grad)
