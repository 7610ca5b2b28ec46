"""Dead-code elimination: drop every node whose value no output needs (nodes with an effect,
random draws, stay: dropping one would shift the random stream of the draws after it).

>>> g = dce(g)
"""
from __future__ import annotations

from ..graph import Graph


def dce(g: Graph) -> Graph:
    live = {v.id for v in g.outputs}
    kept = []
    for n in reversed(g.nodes):
        if n.out.id in live or getattr(n.op, "effect", False):
            kept.append(n)
            live.update(a.id for a in n.vars)
    kept.reverse()
    g.nodes = kept
    return g
