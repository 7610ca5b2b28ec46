"""Constant folding: a node whose inputs are all constants is computed now, with the same
NumPy kernel eager execution uses, and becomes a constant. A node is folded only when its
result is not much larger than its inputs (folding must not turn a broadcast scalar into a
4M-element array).

>>> g = fold(g)
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Var
from ..runtime import kernel_of, _arg_refs

MAX_GROWTH = 1024  # fold results up to max(this, largest constant input) elements


def fold(g: Graph) -> Graph:
    subst: dict = {}
    kept = []
    for n in g.nodes:
        if subst:
            n.args = tuple(subst.get(a.id, a) if type(a) is Var else a for a in n.args)
        vs = n.vars
        size = int(np.prod(n.out.shape, dtype=np.int64))
        if (vs and all(v.const is not None for v in vs) and n.out.id not in g.shape_checks
                and size <= max(MAX_GROWTH, max(v.const.size for v in vs))):
            subst[n.out.id] = g.const(_evaluate(n), n.out.dtype)
            continue
        kept.append(n)
    g.nodes = kept
    g.outputs = [subst.get(v.id, v) for v in g.outputs]
    return g


def _evaluate(n) -> np.ndarray:
    refs = _arg_refs(n.params)
    args = [a.const if type(a) is Var else a for a in n.args]
    params = {k: _fill(v, args) for k, v in n.params.items()}
    out = kernel_of(n)(*[a for i, a in enumerate(args) if i not in refs], **params)
    return np.array(np.broadcast_to(np.asarray(out, n.out.dtype), n.out.shape))


def _fill(v, args):
    from ..graph import ArgRef
    if isinstance(v, ArgRef):
        return args[int(v)]
    if isinstance(v, tuple):
        return tuple(_fill(x, args) for x in v)
    return v
