"""Fusion: chains of elementwise ops over one iteration shape, the broadcasts that feed them and
one reduction that ends them become a single ``Fused`` node, rendered later as one C loop nest.
Values used only inside a group are never stored; values used outside are the group's outputs.

A node joins the groups of its producers when every value those groups made so far is consumed
only inside them (so running the whole group at the position of its last node is safe).

>>> g = fuse(g)
"""
from __future__ import annotations

import numpy as np

from ..codegen.c import supported
from ..graph import Graph, Node, Var

# dtypes the C code generator handles (float16 has no portable C type)
C_DTYPES = {np.dtype(t) for t in ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")}


# Values smaller than this stay stored: they are still in cache when read back, so recomputing
# them (exp, erf...) costs more than it saves (measured on the GPT step's softmax, 1 MB).
REMAT_MIN_BYTES = 4 << 20


class Fused:
    """A fused kernel: ``nodes`` (in order) over loop shape ``loop``; reads ``inputs`` (Vars
    from outside), writes ``outputs`` (Vars needed outside). ``kernel`` is set by codegen."""

    kind = "fused"
    view = False

    def __init__(self, nodes, inputs, outputs, loop, reduce=None):
        self.nodes, self.inputs, self.outputs, self.loop = nodes, inputs, outputs, loop
        self.reduce = reduce  # the terminal reduction node, or None
        # What the kernel writes, in argument order: the full-size outputs, then the reduction.
        self.results = [v for v in outputs if reduce is None or v is not reduce.out]
        if reduce is not None:
            self.results.append(reduce.out)
        self.kernel = None  # the compiled C function (set by the pipeline), else None
        self.alias: dict = {}  # output Var id -> id of the input Var it may overwrite in place
        self.cpu = self.numpy  # what runs when there is no compiled kernel

    def numpy(self, *arrays):
        """Run the member ops one by one with their NumPy kernels (no compiler; check mode)."""
        from ..runtime import kernel_of
        env = {v.id: a for v, a in zip(self.inputs, arrays)}
        for m in self.nodes:
            args = [env[a.id] if type(a) is Var else a for a in m.args]
            env[m.out.id] = kernel_of(m)(*args, **m.params)
        return tuple(env[v.id] for v in self.results)

    @property
    def name(self) -> str:
        return "fused"

    def describe(self) -> str:
        return f"fused[{','.join(n.op.name for n in self.nodes)}]"


def fusable(n: Node) -> bool:
    """An elementwise op with a C expression (or a broadcast) over C-supported dtypes."""
    if n.out.dtype not in C_DTYPES or any(a.dtype not in C_DTYPES for a in n.vars):
        return False
    op = n.op
    if op.name == "expand":
        return True
    return op.kind == "elementwise" and (op.c is not None or op.name == "cast") and supported(n)


def reducible(n: Node) -> bool:
    """A reduction that can end a group (its input computed in the group's loop)."""
    return (n.op.name in ("sum", "max", "min") and n.out.dtype.kind == "f"
            and n.args[0].dtype == n.out.dtype)


def fuse(g: Graph) -> Graph:
    group_of: dict[int, int] = {}  # Var id -> group index
    groups: list[dict] = []  # {"nodes": [...], "loop": shape, "reduce": node or None}
    closed: set = set()  # groups with a value already read outside them
    for n in g.nodes:
        cand = {group_of[a.id] for a in n.vars if a.id in group_of}
        if fusable(n):
            loop = n.out.shape
        elif reducible(n):
            loop = n.args[0].shape
            cand = {k for k in cand if group_of.get(n.args[0].id) == k}
        else:
            loop = None
        joinable = [k for k in sorted(cand) if loop is not None and groups[k]["loop"] == loop
                    and k not in closed and groups[k]["reduce"] is None]
        closed.update(cand - set(joinable))
        if joinable:
            k = joinable[0]
            for j in joinable[1:]:  # n joins several groups: merge them into the first
                for m in groups[j]["nodes"]:
                    group_of[m.out.id] = k
                groups[k]["nodes"] += groups[j]["nodes"]
                groups[j]["nodes"] = []
            groups[k]["nodes"].append(n)
            group_of[n.out.id] = k
            if not fusable(n):
                groups[k]["reduce"] = n
        elif fusable(n) or loop is not None:  # a reduction of a value from outside: its own kernel
            groups.append({"nodes": [n], "loop": loop, "reduce": None if fusable(n) else n})
            group_of[n.out.id] = len(groups) - 1
    pos = {id(n): i for i, n in enumerate(g.nodes)}
    _rematerialize(g, groups, group_of)
    # Each group becomes one node at the position of its last member.
    producer = {n.out.id: n for n in g.nodes}
    out_ids = {v.id for v in g.outputs}
    last, members = {}, set()
    for gr in groups:
        if _worth(gr):
            gr["nodes"].sort(key=lambda m: pos.get(id(m), -1))  # recomputed copies first
            last[id(gr["nodes"][-1])] = gr
            members.update(id(m) for m in gr["nodes"])
    users: dict = {}  # readers among the nodes that will run, recomputed copies included
    for n in [n for n in g.nodes if id(n) not in members] + [m for gr in groups if _worth(gr) for m in gr["nodes"]]:
        for a in n.vars:
            users.setdefault(a.id, []).append(n)
    new_nodes = []
    for n in g.nodes:
        if id(n) in last:
            new_nodes.append(_make(last[id(n)], users, out_ids, producer))
        elif id(n) not in members:
            new_nodes.append(n)
    g.nodes = new_nodes
    return g


def _rematerialize(g: Graph, groups: list, group_of: dict) -> None:
    """Recompute instead of store: a value made in one group and read only by other groups
    over the same loop is recomputed inside each reader from the first group's inputs, when
    the arrays that adds to the reader's reads are not much larger than the value (the forward
    values of an elementwise chain in its backward kernel: no full-size store and load each)."""
    users = g.users()
    out_ids = {v.id for v in g.outputs}
    for k, gr in enumerate(groups):
        if not _worth(gr):
            continue
        made = {m.out.id: m for m in gr["nodes"] if m is not gr["reduce"]}
        for m in list(gr["nodes"]):
            v = m.out
            if v.id not in made or v.id in out_ids or v.nbytes < REMAT_MIN_BYTES:
                continue
            ext = [u for u in users.get(v.id, ()) if group_of.get(u.out.id) != k]
            readers = {group_of.get(u.out.id) for u in ext}
            if not ext or None in readers or any(groups[j]["loop"] != gr["loop"] for j in readers):
                continue
            cone = _cone(v, made)
            if cone is None:
                continue
            leaves = {a.id: a for n in cone for a in n.vars if a.id not in made}
            if any(sum(a.nbytes for i, a in leaves.items() if i not in _reads(groups[j])) > 1.25 * v.nbytes
                   for j in readers):
                continue
            for j in readers:
                _clone_into(g, groups[j], cone, v)
            for u in ext:  # v is no longer read outside its group
                users[v.id] = [x for x in users[v.id] if x is not u]


def _cone(v: Var, made: dict, limit: int = 24):
    """The member nodes computing ``v`` from the group's inputs, in order; None if too many."""
    seen, order, stack = set(), [], [v.id]
    while stack:
        vid = stack.pop()
        n = made.get(vid)
        if n is None or vid in seen:
            continue
        seen.add(vid)
        order.append(n)
        if len(order) > limit:
            return None
        stack += [a.id for a in n.vars]
    return sorted(order, key=lambda n: n.out.id)  # ids grow in program order


def _reads(gr) -> set:
    inside = {m.out.id for m in gr["nodes"]}
    return {a.id for m in gr["nodes"] for a in m.vars if a.id not in inside}


def _clone_into(g: Graph, gr: dict, cone: list, v: Var) -> None:
    """Put copies of ``cone`` first in group ``gr`` (after earlier copies, reusing them) and
    make its members read the copy of ``v``."""
    new = gr.setdefault("copies", {})  # original Var id -> its copy in this group
    copies = []
    for n in cone:
        if n.out.id in new:
            continue
        out = g.var(n.out.shape, n.out.dtype)
        args = tuple(new.get(a.id, a) if type(a) is Var else a for a in n.args)
        copies.append(Node(n.op, args, dict(n.params), out))
        new[n.out.id] = out
    for m in gr["nodes"]:
        if any(a is v for a in m.args):
            m.args = tuple(new[v.id] if a is v else a for a in m.args)
    at = gr.get("n_copies", 0)
    gr["nodes"][at:at] = copies
    gr["n_copies"] = at + len(copies)


def _worth(gr) -> bool:
    """A lone expand is a free NumPy view: no kernel for it."""
    ns = gr["nodes"]
    return bool(ns) and not (len(ns) == 1 and ns[0].op.name == "expand")


def _make(gr, users, out_ids, producer) -> Node:
    nodes = gr["nodes"]
    inside = {m.out.id for m in nodes}
    member_ids = {id(m) for m in nodes}
    inputs, seen = [], set()
    for m in nodes:
        for a in m.vars:
            if a.id not in inside and a.id not in seen:
                seen.add(a.id)
                p = producer.get(a.id)
                if p is not None and p.op.name == "expand":
                    # Read the broadcast's source with zero strides instead of the (non-
                    # contiguous) NumPy view: an expand node left outside.
                    a = p.args[0]
                    m.args = tuple(p.args[0] if x is p.out else x for x in m.args)
                    if a.id in seen:
                        continue
                    seen.add(a.id)
                inputs.append(a)
    outputs = [m.out for m in nodes
               if m.out.id in out_ids or any(id(u) not in member_ids for u in users.get(m.out.id, ()))]
    op = Fused(nodes, inputs, outputs, gr["loop"], gr["reduce"])
    return Node(op, tuple(inputs), {}, outputs[0])
