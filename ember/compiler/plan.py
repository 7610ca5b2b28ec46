"""Memory planning: liveness of every value of a graph, the peak bytes a run holds, and the
assignment of fused kernels' temporaries to buffers that persist across calls (an arena), so a
step pays no allocation or page faults for them.

A temporary is planned when its kernel is a fused C kernel (which writes its outputs and never
aliases them), it is not a graph output and every reader is a fused kernel or an op that
returns a fresh array: then no view of it can outlive the call. Two temporaries share a buffer
when their lifetimes do not overlap (greedy by program order, same shape and dtype).

>>> slots, arena_bytes, kinds = assign_buffers(graph, fresh={"matmul", "sum"})
"""
from __future__ import annotations

import numpy as np

from .graph import Graph


def results(n) -> list:
    """The Vars a node writes (several for a fused kernel)."""
    return getattr(n.op, "results", None) or [n.out]


def liveness(g: Graph) -> tuple[dict, dict]:
    """(defined at, last used at): node indices per Var id; outputs live to the end."""
    born, last = {}, {}
    for i, n in enumerate(g.nodes):
        for a in n.vars:
            last[a.id] = i
        for v in results(n):
            born[v.id] = i
    for v in g.outputs:
        last[v.id] = len(g.nodes)
    return born, last


def peak_bytes(g: Graph) -> int:
    """Most bytes of values computed by the program alive at once (views, inputs and constants
    not counted): what a run of the compiled function allocates at its worst point."""
    born, last = liveness(g)
    size = {}
    for n in g.nodes:
        if not getattr(n.op, "view", False):
            for v in results(n):
                size[v.id] = v.nbytes
    ends: dict = {}
    for vid, i in born.items():
        ends.setdefault(last.get(vid, i), []).append(vid)
    live = peak = 0
    for i, n in enumerate(g.nodes):
        live += sum(size.get(v.id, 0) for v in results(n))
        peak = max(peak, live)
        live -= sum(size.get(vid, 0) for vid in ends.get(i, ()))
    return peak


def assign_buffers(g: Graph, fresh: set) -> tuple[dict, int, list]:
    """{Var id: slot index} for the planned temporaries, the bytes of all slots and each slot's
    (shape, dtype).
    ``fresh``: names of ops whose kernels always return new arrays (safe readers)."""
    born, last = liveness(g)
    users = g.users()
    out_ids = {v.id for v in g.outputs}

    def plannable(v) -> bool:
        if v.id in out_ids or v.nbytes < (1 << 16):  # small arrays come from malloc's free lists
            return False
        return all(getattr(u.op, "results", None) is not None and u.op.kernel is not None
                   or u.op.name in fresh for u in users.get(v.id, ()))

    slots: dict = {}
    kinds: list = []  # slot -> (shape, dtype)
    free: dict = {}  # (shape, dtype) -> [slot]
    ends: dict = {}
    for i, n in enumerate(g.nodes):
        if getattr(n.op, "results", None) is not None and n.op.kernel is not None:
            for v in n.op.results:
                if plannable(v):
                    key = (v.shape, v.dtype.str)
                    pool = free.get(key)
                    if pool:
                        s = pool.pop()
                    else:
                        s = len(kinds)
                        kinds.append((v.shape, v.dtype))
                    slots[v.id] = s
                    ends.setdefault(last.get(v.id, i), []).append(v.id)
        for vid in ends.pop(i, ()):  # free after the node: no kernel reads and writes one buffer
            free.setdefault((kinds[slots[vid]][0], kinds[slots[vid]][1].str), []).append(slots[vid])
    nbytes = sum(int(np.prod(s, dtype=np.int64)) * d.itemsize for s, d in kinds)
    return slots, nbytes, kinds
