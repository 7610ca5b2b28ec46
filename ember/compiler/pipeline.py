"""The one place where the order of the compiler's passes is decided.

>>> graph, report = optimize(traced_graph); run = executor(graph)
"""
from __future__ import annotations

import warnings

from .graph import Graph
from . import cache, runtime
from .codegen import c as cgen
from .codegen import pool
from .passes import layout, rewrite, simplify, stable
from .passes.cse import cse
from .passes.dce import dce
from .passes.fold import fold
from .passes.fuse import fuse


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
    ("layout", _rules(layout.RULES)),
    ("dce", dce),
]


def optimize(graph: Graph, native: bool | None = None):
    """Run every pass in order on a copy of ``graph``, then fuse when C code can be built.
    Returns (graph, list of (pass, node count))."""
    g = graph.copy()
    report = [("traced", len(g.nodes))]
    for name, p in PASSES:
        g = p(g)
        report.append((name, len(g.nodes)))
    if native is None:
        native = has_compiler()
    if native:
        g = dce(fuse(g))
        report.append(("fuse", len(g.nodes)))
    return g, report


_warned = []


def has_compiler() -> bool:
    """Whether C kernels can be built; warns once when they cannot."""
    if cache.compiler() is not None:
        return True
    if not _warned:
        _warned.append(True)
        warnings.warn("ember.jit: no C compiler (or no Python headers) found; compiled functions run "
                      "through NumPy without fusion. Install gcc (and python3-dev) or set EMBER_CC.",
                      RuntimeWarning, stacklevel=3)
    return False


BLAS_OPS = {"matmul", "conv2d", "conv_transpose2d", "conv2d_weight_grad"}  # kernels calling GEMM


def compile_kernels(graph: Graph) -> None:
    """Generate, compile (or load from the cache) and attach the C code of every fused node."""
    fused = [n.op for n in graph.nodes if getattr(n.op, "results", None) is not None]
    natives = [(f"p{i}", n) for i, n in enumerate(graph.nodes) if pool.supported(n)]
    if not fused and not natives:
        return
    kernels = [(f"k{i}", f) for i, f in enumerate(fused)]
    # NumPy's BLAS threads spin for a while after each call: an OpenMP loop started then waits
    # for a core they hold (measured: LeNet step 46 ms with parallel kernels, 33 ms without).
    blas = any(n.op.name in BLAS_OPS for n in graph.nodes)
    mod = cache.load(cgen.render_module(kernels, parallel=not blas,
                                        extra=[(name, pool.render(name, n)) for name, n in natives]))
    for name, f in kernels:
        f.kernel = getattr(mod, name)
    for name, n in natives:
        n.op = pool.Native(n.op, getattr(mod, name))


def executor(graph: Graph):
    """A callable running ``graph`` on arrays (C kernels compiled first)."""
    compile_kernels(graph)
    return runtime.build(graph)
