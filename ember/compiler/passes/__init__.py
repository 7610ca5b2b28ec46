"""Graph passes. A rewrite pass is a table of rules: ``rule(node, rw) -> Var | None`` registered
for the op names it watches. ``rewrite`` walks the nodes once, in order; a rule that returns a
Var replaces the node's output with it (new nodes it needs are emitted through ``rw``).
Dead nodes left behind are removed by the dce pass.

>>> RULES = {}
>>> @rule(RULES, "neg")
... def double_negation(n, rw): ...
"""
from __future__ import annotations

import numpy as np

from ... import dtypes as D
from ..graph import Graph, Node, Var


def rule(table: dict, *op_names: str):
    """Register a rule function in ``table`` for the given op names."""
    def add(fn):
        for name in op_names:
            table.setdefault(name, []).append(fn)
        return fn
    return add


class Rewriter:
    """What a rule sees: producers of values, and a way to emit new nodes before the node."""

    def __init__(self, g: Graph):
        self.g = g
        self.nodes: list[Node] = []
        self.producer: dict[int, Node] = {}
        self.subst: dict[int, Var] = {}
        self.uses = {k: len(v) for k, v in g.users().items()}
        for v in g.outputs:
            self.uses[v.id] = self.uses.get(v.id, 0) + 1

    def prod(self, a, name: str | None = None):
        """The node producing ``a`` (if it is a Var produced by op ``name``), else None."""
        n = self.producer.get(a.id) if type(a) is Var else None
        return n if n is not None and (name is None or n.op.name == name) else None

    def emit(self, op, *args, **params) -> Var:
        shape, dtype = infer(op, args, params)
        v = self.g.var(shape, dtype)
        n = Node(op, args, params, v)
        self.nodes.append(n)
        self.producer[v.id] = n
        return v

    def const(self, value, dtype) -> Var:
        return self.g.const(value, dtype)


def rewrite(g: Graph, rules: dict) -> Graph:
    rw = Rewriter(g)
    for n in g.nodes:
        if any(type(a) is Var and a.id in rw.subst for a in n.args):
            n.args = tuple(rw.subst.get(a.id, a) if type(a) is Var else a for a in n.args)
        for r in rules.get(n.op.name, ()):
            new = r(n, rw)
            if new is not None and new is not n.out:
                if new.shape != n.out.shape or new.dtype != n.out.dtype:
                    raise AssertionError(f"rule {r.__name__} changed type of {n}: {new.type_str}")
                rw.subst[n.out.id] = new
                break
        else:
            rw.nodes.append(n)
            rw.producer[n.out.id] = n
    g.nodes = rw.nodes
    g.outputs = [rw.subst.get(v.id, v) for v in g.outputs]
    return g


def infer(op, args, params):
    """Shape and NumPy dtype of ``op(*args, **params)`` from the registry's rules."""
    vs = [a for a in args if type(a) is Var]
    if op.kind == "elementwise":
        shape = tuple(np.broadcast_shapes(*[v.shape for v in vs])) if vs else ()
        if op.name == "cast":
            return shape, params["dtype"].np
        if op.out_dtype == "bool":
            return shape, np.dtype(bool)
        ref = next(a for a in args[1:] if type(a) is Var) if op.nin == 3 else vs[0]
        return shape, ref.dtype
    shape = op.shape(*[v.shape for v in vs], **params)
    dtype = op.dtype(*[D.from_numpy(v.dtype) for v in vs], **params)
    return tuple(shape), dtype.np


def scalar_value(a):
    """The value of a scalar literal or a constant holding one value everywhere, else None."""
    if isinstance(a, np.generic):
        return a.item()
    if type(a) is Var and a.const is not None and a.const.size >= 1:
        c = a.const
        first = c.reshape(-1)[0]
        if c.size == 1 or np.all(c == first):
            return first.item()
    return None
