"""Algebraic simplification: identities that remove work without changing a single bit of the
result (x*1, x+0, x/1, x**1, double negation, no-op casts and copies, reshape-of-reshape,
permute-of-permute, expand-of-expand, and a sum over broadcast axes of an expand).

>>> g = rewrite(g, RULES)
"""
from __future__ import annotations

import numpy as np

from ...ops import elementwise as E
from ...ops import movement as M
from ..graph import Var
from . import rule, scalar_value

RULES: dict = {}


def _same_type(a, n):
    return type(a) is Var and a.shape == n.out.shape and a.dtype == n.out.dtype


@rule(RULES, "mul")
def times_one(n, rw):
    a, b = n.args
    if scalar_value(b) == 1 and _same_type(a, n):
        return a
    if scalar_value(a) == 1 and _same_type(b, n):
        return b


@rule(RULES, "add")
def plus_zero(n, rw):
    a, b = n.args
    if scalar_value(b) == 0 and _same_type(a, n):
        return a
    if scalar_value(a) == 0 and _same_type(b, n):
        return b


@rule(RULES, "sub", "div")
def minus_zero_or_over_one(n, rw):
    a, b = n.args
    if scalar_value(b) == (0 if n.op.name == "sub" else 1) and _same_type(a, n):
        return a


@rule(RULES, "pow")
def small_powers(n, rw):
    a, b = n.args
    e = scalar_value(b)
    if e == 1 and _same_type(a, n):
        return a
    if e == 2 and _same_type(a, n):
        return rw.emit(E.mul, a, a)


@rule(RULES, "neg")
def double_negation(n, rw):
    inner = rw.prod(n.args[0], "neg")
    if inner is not None:
        return inner.args[0]


@rule(RULES, "cast", "copy")
def no_op_cast_or_copy(n, rw):
    if _same_type(n.args[0], n):  # values are immutable in the IR: a copy is the value itself
        return n.args[0]


@rule(RULES, "reshape", "expand")
def reshape_or_expand_chain(n, rw):
    """reshape(reshape(x)) and expand(expand(x)) become one op; either is x when shapes agree."""
    x = n.args[0]
    inner = rw.prod(x, n.op.name)
    if inner is not None:
        x = inner.args[0]
    if x.shape == n.out.shape:
        return x
    if inner is not None:
        return rw.emit(n.op, x, shape=n.out.shape)


@rule(RULES, "permute")
def permute_of_permute(n, rw):
    axes = n.params["axes"]
    x = n.args[0]
    inner = rw.prod(x, "permute")
    if inner is not None:
        axes = tuple(inner.params["axes"][a] for a in axes)
        x = inner.args[0]
    if axes == tuple(range(len(axes))):
        return x
    if inner is not None:
        return rw.emit(M.permute_, x, axes=axes)


@rule(RULES, "sum")
def sum_of_broadcast(n, rw):
    """sum(expand(x), axes x was broadcast along) = x * count, reshaped."""
    e = rw.prod(n.args[0], "expand")
    axis = n.params.get("axis")
    if e is None or n.out.dtype.kind != "f":
        return None
    x = e.args[0]
    full = e.out.shape
    axis = tuple(range(len(full))) if axis is None else axis
    lead = len(full) - len(x.shape)
    xs = (1,) * lead + x.shape
    if any(xs[i] != 1 for i in axis):
        return None
    count = int(np.prod([full[i] for i in axis], dtype=np.int64))
    y = x if xs == x.shape else rw.emit(M.reshape_, x, shape=xs)
    y = rw.emit(E.mul, y, n.out.dtype.type(count))
    keep = tuple(1 if i in axis else s for i, s in enumerate(full))
    if y.shape != keep:
        y = rw.emit(M.expand_, y, shape=keep)
    if y.shape != n.out.shape:
        y = rw.emit(M.reshape_, y, shape=n.out.shape)
    return y


