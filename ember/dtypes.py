"""dtypes and the ONE type-promotion rule every op uses (PyTorch's).

A dtype wraps a NumPy dtype. Promotion follows PyTorch: bool < integer < floating; inside a
category the wider type wins; a Python scalar or a 0-d tensor only moves the result to a higher
category, never to a wider type in the same one (float32 tensor * 2.5 stays float32).
"""
from __future__ import annotations

import numpy as np


class DType:
    """An ember dtype, e.g. ``ember.float32``. ``.np`` is the NumPy dtype behind it."""

    __slots__ = ("name", "np", "is_floating_point", "is_signed", "itemsize", "_rank", "_cat")

    def __init__(self, name: str, np_dtype, category: int, rank: int):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.itemsize = self.np.itemsize
        self.is_floating_point = category == 2
        self.is_signed = self.np.kind in "fi"
        self._cat = category  # 0 bool, 1 integer, 2 floating
        self._rank = rank  # order inside the category

    def __repr__(self) -> str:
        return f"ember.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))


bool_ = DType("bool", np.bool_, 0, 0)
uint8 = DType("uint8", np.uint8, 1, 0)
int32 = DType("int32", np.int32, 1, 2)
int64 = DType("int64", np.int64, 1, 3)
float16 = DType("float16", np.float16, 2, 0)
float32 = DType("float32", np.float32, 2, 1)
float64 = DType("float64", np.float64, 2, 2)

ALL = (bool_, uint8, int32, int64, float16, float32, float64)
_BY_NP = {d.np: d for d in ALL}
_BY_NAME = {d.name: d for d in ALL}
_BY_NAME.update({"float": float32, "double": float64, "half": float16, "long": int64,
                 "int": int32, "bool_": bool_})
_default_float = float32


def get_default_dtype() -> DType:
    return _default_float


def set_default_dtype(d: DType) -> None:
    """Change the dtype of new floating tensors, e.g. ``set_default_dtype(ember.float64)``."""
    global _default_float
    d = as_dtype(d)
    if not d.is_floating_point:
        raise TypeError(f"set_default_dtype: {d} is not a floating dtype")
    _default_float = d


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def from_numpy(np_dtype) -> DType:
    """The ember dtype for a NumPy dtype; narrows int8/int16/uint16+ to the nearest ember type."""
    d = _BY_NP.get(np_dtype)
    if d is not None:
        return d
    d = _BY_NP.get(np.dtype(np_dtype))
    if d is not None:
        return d
    kind = np.dtype(np_dtype).kind
    from .errors import DTypeError
    raise DTypeError(f"NumPy dtype {np.dtype(np_dtype)} has no ember equivalent; "
                     f"ember supports {', '.join(x.name for x in ALL)}. Cast the array first "
                     f"(kind {kind!r}).")


def as_dtype(d) -> DType:
    """Accept an ember dtype, a NumPy dtype/type, a name string or a Python type."""
    if isinstance(d, DType):
        return d
    if d is float:
        return _default_float
    if d is int:
        return int64
    if d is bool:
        return bool_
    if isinstance(d, str) and d in _BY_NAME:
        return _BY_NAME[d]
    # torch dtypes print as 'torch.float32'
    name = str(d).rsplit(".", 1)[-1]
    if name in _BY_NAME and not isinstance(d, (np.dtype, type)):
        return _BY_NAME[name]
    return from_numpy(np.dtype(d))


def promote(a: DType, b: DType) -> DType:
    """Promotion of two dimensioned operands (same priority)."""
    if a is b:
        return a
    if a._cat != b._cat:
        return a if a._cat > b._cat else b
    if a._cat == 1 and {a, b} == {uint8, int32}:
        return int32
    return a if a._rank >= b._rank else b


def promote_weak(strong: DType, weak: DType, weak_is_scalar: bool = True) -> DType:
    """Promotion of a tensor with a lower-priority operand (a Python scalar or 0-d tensor):
    the weak one can only raise the category; then a Python scalar gives the category's
    default dtype and a 0-d tensor its own dtype."""
    if weak._cat <= strong._cat:
        return strong
    if not weak_is_scalar:
        return weak
    return _default_float if weak._cat == 2 else int64


def scalar_dtype(x) -> DType:
    """dtype a Python scalar would have on its own."""
    if isinstance(x, bool):
        return bool_
    if isinstance(x, int):
        return int64
    if isinstance(x, float):
        return _default_float
    from .errors import DTypeError
    raise DTypeError(f"cannot use {type(x).__name__} {x!r} as a tensor operand")
