"""PyTorch-like printing: ``tensor([[1., 2.], [3., 4.]], requires_grad=True)``."""
from __future__ import annotations

import numpy as np

from . import dtypes as D

_SHOWN_DTYPES = {D.float32, D.int64, D.bool_}  # PyTorch prints the dtype for the others


def _float_formatter(a: np.ndarray):
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return lambda v: str(v)
    if np.all(finite == np.round(finite)) and np.abs(finite).max() < 1e8:
        return lambda v: f"{v:.0f}." if np.isfinite(v) else str(v)
    amax, amin = np.abs(finite).max(), np.abs(finite[finite != 0]).min() if np.any(finite) else 0
    if amax >= 1e8 or (amin and amin < 1e-4) or (amin and amax / amin > 1e3):
        return lambda v: f"{v:.4e}"
    return lambda v: f"{v:.4f}"


def tensor_repr(t) -> str:
    a = np.asarray(t._host())
    prefix = "tensor("
    kw = dict(separator=", ", prefix=prefix, threshold=1000, edgeitems=3, max_line_width=80)
    if a.dtype.kind == "f":
        kw["formatter"] = {"float_kind": _float_formatter(a.astype(np.float64))}
    body = np.array2string(a, **kw) if a.size else "[]"
    extras = []
    if t._dev.type != "cpu":
        extras.append(f"device='{t._dev}'")
    if t.dtype not in _SHOWN_DTYPES or a.size == 0 and t.dtype is not D.float32:
        extras.append(f"dtype={t.dtype!r}")
    if t._node is not None:
        extras.append(f"grad_fn=<{t._node.name}>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    if a.size == 0 and a.ndim > 1:
        extras.insert(0, f"size={a.shape}")
    return prefix + body + "".join(", " + e for e in extras) + ")"
