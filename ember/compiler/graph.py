"""The IR: a flat, typed list of nodes, one per op application (like a jaxpr).

A ``Var`` is one value: an input, a constant (``const`` holds its array) or a node's output.
A ``Node`` applies a registry ``Op`` (the same object eager execution uses) to Vars and static
Python/NumPy scalars. Values are immutable: an in-place write during tracing becomes a new Var.

>>> print(graph)          # { lambda %0:f32[4,3] ; %2:f32[4,3] = exp %0 ; ... return %2 }
"""
from __future__ import annotations

import numpy as np


class Var:
    """One typed value of the graph. ``dtype`` is a NumPy dtype; ``shape`` a tuple of ints."""

    __slots__ = ("id", "shape", "dtype", "const")

    def __init__(self, id: int, shape: tuple, dtype, const=None):
        self.id = id
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.const = const  # a NumPy array for constants, else None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def type_str(self) -> str:
        return f"{_short(self.dtype)}[{','.join(map(str, self.shape))}]"

    def __repr__(self) -> str:
        return f"%{self.id}"


class ArgRef(int):
    """A placeholder inside a node's params for one of its args (an index array of getitem)."""

    def __repr__(self) -> str:
        return f"ArgRef({int(self)})"


class Node:
    """``out = op(*args, **params)``. args: Vars, NumPy scalars, or other static values."""

    __slots__ = ("op", "args", "params", "out")

    def __init__(self, op, args: tuple, params: dict, out: Var):
        self.op = op
        self.args = tuple(args)
        self.params = params
        self.out = out

    @property
    def vars(self) -> list:
        return [a for a in self.args if type(a) is Var]

    def __repr__(self) -> str:
        args = " ".join(_arg_str(a) for a in self.args)
        ps = " ".join(f"{k}={_param_str(v)}" for k, v in self.params.items())
        outs = getattr(self.op, "results", None) or [self.out]
        name = self.op.describe() if hasattr(self.op, "describe") else self.op.name
        lhs = ", ".join(f"{v}:{v.type_str}" for v in outs)
        return f"{lhs} = {name} {args}{' ' + ps if ps else ''}"


class Graph:
    """Inputs, constants, nodes in execution order, outputs (Vars)."""

    def __init__(self):
        self.inputs: list[Var] = []
        self.nodes: list[Node] = []
        self.outputs: list[Var] = []
        self.shape_checks: set = set()  # Vars whose shape depends on values (boolean masks)
        self._next = 0

    def var(self, shape, dtype, const=None) -> Var:
        v = Var(self._next, shape, dtype, const)
        self._next += 1
        return v

    def const(self, value, dtype=None) -> Var:
        a = np.asarray(value, dtype)
        return self.var(a.shape, a.dtype, a)

    def emit(self, op, args, params, shape, dtype) -> Var:
        v = self.var(shape, dtype)
        self.nodes.append(Node(op, args, params, v))
        return v

    def consts(self) -> list:
        """Constant Vars used by nodes or outputs, in first-use order."""
        seen, out = set(), []
        for v in [a for n in self.nodes for a in n.vars] + self.outputs:
            if v.const is not None and v.id not in seen:
                seen.add(v.id)
                out.append(v)
        return out

    def users(self) -> dict:
        """id of a Var -> list of nodes reading it."""
        u: dict = {}
        for n in self.nodes:
            for a in n.vars:
                u.setdefault(a.id, []).append(n)
        return u

    def copy(self) -> "Graph":
        """A copy sharing Vars (immutable) with fresh node objects, for passes that rewrite."""
        g = Graph()
        g.inputs, g.outputs, g._next = list(self.inputs), list(self.outputs), self._next
        g.shape_checks = set(self.shape_checks)
        g.nodes = [Node(n.op, n.args, dict(n.params), n.out) for n in self.nodes]
        return g

    def replace_uses(self, old: Var, new: Var, start: int = 0) -> None:
        """Make every node (from index ``start``) and output read ``new`` instead of ``old``."""
        for n in self.nodes[start:]:
            if any(a is old for a in n.args):
                n.args = tuple(new if a is old else a for a in n.args)
        self.outputs = [new if o is old else o for o in self.outputs]

    def __str__(self) -> str:
        ins = " ".join(f"{v}:{v.type_str}" for v in self.inputs)
        lines = [f"{{ lambda {ins} ;"]
        for c in self.consts():
            lines.append(f"    {c}:{c.type_str} = const {_const_str(c.const)}")
        lines += [f"    {n!r}" for n in self.nodes]
        lines.append(f"    return {', '.join(map(repr, self.outputs))} }}")
        return "\n".join(lines)


def _short(dt) -> str:
    dt = np.dtype(dt)
    return "bool" if dt.kind == "b" else f"{dt.kind}{dt.itemsize * 8}"


def _arg_str(a) -> str:
    if type(a) is Var:
        return repr(a)
    if isinstance(a, np.generic):
        return repr(a.item())
    return repr(a)


def _param_str(v) -> str:
    if isinstance(v, tuple):
        return "(" + ",".join(_param_str(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, ArgRef):
        return f"${int(v)}"
    if isinstance(v, slice):
        return ":".join("" if x is None else str(x) for x in (v.start, v.stop, v.step)).rstrip(":") or ":"
    return repr(v)


def _const_str(a: np.ndarray) -> str:
    if a.size <= 4:
        return repr(a.tolist())
    return f"<{a.size} values>"
