"""The one place where the order of the compiler's passes is decided.

>>> graph, report = optimize(traced_graph); run = executor(graph)
"""
from __future__ import annotations

from .graph import Graph
from . import runtime
from .passes import rewrite, simplify, stable
from .passes.cse import cse
from .passes.dce import dce
from .passes.fold import fold


def _rules(table):
    return lambda g: rewrite(g, table)


# (name, function Graph -> Graph), run in this order. Simplify before the stable forms so that
# their patterns see through no-op casts and copies; fold and CSE again after both.
PASSES: list = [
    ("dce", dce),
    ("cse", cse),
    ("fold", fold),
    ("simplify", _rules(simplify.RULES)),
    ("stable", _rules(stable.RULES)),
    ("fold", fold),
    ("cse", cse),
    ("simplify", _rules(simplify.RULES)),
    ("dce", dce),
]


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
