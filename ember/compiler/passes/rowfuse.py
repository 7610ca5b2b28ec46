"""Row fusion: consecutive fused kernels over the same rows (loop ``lead + (C,)``, or
``lead + (1,)`` for per-row scalars) whose values meet only within a row become one kernel
that runs all of them row by row, with the row's intermediates in a thread's cache-resident
buffer. LayerNorm's forward and backward (mean, variance, normalize; the row sums of the
backward, then the input gradient) read and write each row once instead of once per kernel.

Row sums of a stage become per-row scalars for the later stages; column sums (bias and weight
gradients) accumulate per thread and are added up at the end, so no later stage of the same
kernel may read them.

>>> g = rowfuse(g)
"""
from __future__ import annotations

import numpy as np

from ..graph import Graph, Node

MAX_ROW_BYTES = 64 << 10  # a row (in doubles) stays in L1/L2: longer rows are not row-fused


class RowFused:
    """Several Fused ops (``stages``) run row by row. Same interface as Fused for the runtime."""

    kind = "fused"
    view = False
    reduce = None
    inplace_ok = False

    def __init__(self, stages, lead, C, inputs, results):
        self.stages, self.lead, self.C = stages, lead, C
        self.inputs, self.results = inputs, results
        self.outputs = results
        self.loop = tuple(lead) + (C,)
        self.nodes = [m for s in stages for m in s.nodes]
        self.kernel = None
        self.alias: dict = {}
        self.cpu = self.numpy

    def numpy(self, *arrays):
        env = {v.id: a for v, a in zip(self.inputs, arrays)}
        for s in self.stages:
            outs = s.numpy(*[env[v.id] for v in s.inputs])
            env.update({v.id: o for v, o in zip(s.results, outs)})
        return tuple(env[v.id] for v in self.results)

    @property
    def name(self) -> str:
        return "fused"

    def describe(self) -> str:
        return "rows[" + " | ".join(",".join(m.op.name for m in s.nodes) for s in self.stages) + "]"


def classify(shape, lead, C) -> str | None:
    """How an operand of ``shape`` is indexed in a row loop: full, row, col, scalar."""
    n = len(lead) + 1
    if len(shape) > n:
        return None
    s = (1,) * (n - len(shape)) + tuple(shape)
    head, last = s[:-1], s[-1]
    if head == tuple(lead):
        return "full" if last == C else "row" if last == 1 else None
    if all(d == 1 for d in head):
        return "col" if last == C and C != 1 else "scalar" if last == 1 else None
    return None


def _stage_kind(f, lead, C):
    """'full' (loop lead+(C,)) or 'row' (loop lead+(1,)) if ``f`` can be a stage, else None."""
    loop = tuple(f.loop)
    n = len(lead) + 1
    if C == 1 or not lead or C * 8 > MAX_ROW_BYTES or len(loop) != n or loop[:-1] != tuple(lead) or not all(v.dtype.kind == "f" or v.dtype == np.bool_
                                                             for v in f.inputs + f.results):
        return None
    kind = "full" if loop[-1] == C else "row" if loop[-1] == 1 else None
    if kind is None or any(classify(v.shape, lead, C) is None for v in f.inputs):
        return None
    r = f.reduce
    if r is not None:
        if kind != "full" or r.op.name not in ("sum", "max") or r.out.dtype.kind != "f":
            return None
        axis = r.params.get("axis")
        axis = tuple(range(n)) if axis is None else tuple(a % n for a in axis)
        if axis not in ((n - 1,), tuple(range(n - 1))) or (axis != (n - 1,) and r.op.name != "sum"):
            return None
    if any(classify(v.shape, lead, C) is None for v in f.results):
        return None
    return kind


def red_kind(f) -> str | None:
    r = f.reduce
    if r is None:
        return None
    n = len(f.loop)
    axis = r.params.get("axis")
    axis = tuple(range(n)) if axis is None else tuple(a % n for a in axis)
    return "rowred" if axis == (n - 1,) else "colred"


def rowfuse(g: Graph) -> Graph:
    out_ids = {v.id for v in g.outputs}
    users: dict = {}
    for n in g.nodes:
        for a in n.vars:
            users.setdefault(a.id, []).append(n)
    new_nodes: list = []
    run: list = []  # Fused nodes of the current run
    hoisted, deferred = [], []
    state = {}

    def close():
        if len(run) >= 2 and any(state["kinds"][id(n)] == "full" for n in run):
            new_nodes.extend(hoisted)
            new_nodes.append(_make(run, state["lead"], state["C"], users, out_ids))
            new_nodes.extend(deferred)
        else:  # nothing fused: original order
            new_nodes.extend(sorted(run + hoisted + deferred, key=lambda n: state["pos"][id(n)]))
        run.clear(), hoisted.clear(), deferred.clear()

    state["pos"] = {id(n): i for i, n in enumerate(g.nodes)}
    for n in g.nodes:
        f = n.op
        made = {v.id for m in run for v in (m.op.results)}
        colred = {m.op.reduce.out.id for m in run if red_kind(m.op) == "colred"}
        defer_ids = {d.out.id for d in deferred}
        if getattr(f, "results", None) is not None and type(f).__name__ == "Fused" and len(f.loop) >= 1:
            lead, C = tuple(f.loop[:-1]), f.loop[-1]
            if run and (lead, C if C != 1 else state["C"]) != (state["lead"], state["C"]):
                close()
            if not run:
                state["lead"], state["C"], state["kinds"] = lead, C, {}
            kind = _stage_kind(f, state["lead"], state["C"])
            reads = {a.id for a in f.inputs}
            if kind is not None and not (reads & colred) and not (reads & defer_ids):
                if kind == "full" or run:
                    run.append(n)
                    state["kinds"][id(n)] = kind
                    continue
            close()
            if kind == "full":
                state["lead"], state["C"], state["kinds"] = lead, C, {id(n): kind}
                run.append(n)
                continue
            new_nodes.append(n)
            continue
        if run:
            reads = {a.id for a in n.vars}
            if reads & (made | defer_ids):
                deferred.append(n)
            else:
                hoisted.append(n)
            continue
        new_nodes.append(n)
    close()
    g.nodes = new_nodes
    return g


def _make(run, lead, C, users, out_ids) -> Node:
    members = {id(n) for n in run}
    made = {}
    for n in run:
        for v in n.op.results:
            made[v.id] = v
    inputs, seen = [], set()
    for n in run:
        for v in n.op.inputs:
            if v.id not in made and v.id not in seen:
                seen.add(v.id)
                inputs.append(v)
    results = [v for v in made.values()
               if v.id in out_ids or any(id(u) not in members for u in users.get(v.id, ()))]
    stages = [n.op for n in run]
    op = RowFused(stages, lead, C, inputs, results)
    if not results:
        results = op.results = [run[-1].op.results[-1]]
    return Node(op, tuple(inputs), {}, results[0])
