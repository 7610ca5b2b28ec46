"""The one place where the order of the compiler's passes is decided.

>>> graph, report = optimize(traced_graph); run = executor(graph)
"""
from __future__ import annotations

from .graph import Graph
from . import runtime

PASSES: list = []  # (name, function Graph -> Graph), run in this order


def optimize(graph: Graph):
    """Run every pass in order on a copy of ``graph``; returns (graph, list of (pass, nodes))."""
    g = graph.copy()
    report = [("traced", len(g.nodes))]
    for name, p in PASSES:
        g = p(g)
        report.append((name, len(g.nodes)))
    return g, report


def executor(graph: Graph):
    """A callable running ``graph`` on arrays."""
    return runtime.build(graph)
