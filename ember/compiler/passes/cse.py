"""Common-subexpression elimination: a node equal to an earlier one (same op, same arguments,
same params; equal constants count as the same argument) is replaced by the earlier one.

>>> g = cse(g)
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Var

_SMALL = 64  # constants up to this many elements are compared by value


def _key(a):
    if type(a) is Var:
        c = a.const
        if c is not None and c.size <= _SMALL:
            return ("c", c.dtype.str, c.shape, c.tobytes())
        return ("v", a.id)
    if isinstance(a, np.generic):
        return (a.dtype.str, repr(a.item()))
    if isinstance(a, tuple):
        return ("t",) + tuple(_key(x) for x in a)
    if isinstance(a, slice):
        return ("s", a.start, a.stop, a.step)
    if isinstance(a, (bool, int, float, str, type(None))):
        return (type(a).__name__, repr(a))
    return (type(a).__name__, repr(a))


def cse(g: Graph) -> Graph:
    seen: dict = {}
    subst: dict = {}
    kept = []
    for n in g.nodes:
        if subst:
            n.args = tuple(subst.get(a.id, a) if type(a) is Var else a for a in n.args)
        key = (n.op.name, _key(n.args), _key(tuple(sorted(n.params.items()))))
        prev = seen.get(key)
        if prev is not None and prev.shape == n.out.shape and prev.dtype == n.out.dtype:
            subst[n.out.id] = prev
        else:
            seen[key] = n.out
            kept.append(n)
    g.nodes = kept
    g.outputs = [subst.get(v.id, v) for v in g.outputs]
    return g
