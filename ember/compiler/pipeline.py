"""The one place where the order of the compiler's passes is decided.

>>> graph, report = optimize(traced_graph); run = executor(graph)
"""
from __future__ import annotations

import warnings

from .graph import Graph
from .plan import liveness
from ..ops import native
from . import cache, runtime, threads
from .codegen import c as cgen
from .codegen import bmm, cat, gemm, pool, scatter, xent
from .passes import layout, rewrite, simplify, slices, stable
from .passes.cse import cse
from .passes.dce import dce
from .passes.fold import fold
from .passes.fuse import fuse
from .passes.rowfuse import rowfuse


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
    ("slices", _rules(slices.RULES)),
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
        g = rowfuse(g)
        report.append(("rowfuse", len(g.nodes)))
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


# Ops that get a native kernel of their own: (supported(node), render(name, node), op class).
NATIVES = [(pool.supported, pool.render, pool.Native),
           (scatter.supported, scatter.render, scatter.ScatterRows),
           (bmm.supported, bmm.render, bmm.BatchedMatmul),
           (xent.supported, xent.render, xent.CrossEntropy),
           (cat.supported, cat.render, cat.Cat)]
BLAS_OPS = {"matmul", "conv2d", "conv_transpose2d", "conv2d_weight_grad"}  # may call OpenBLAS


def compile_kernels(graph: Graph) -> None:
    """Generate, compile (or load from the cache) and attach the C code of every fused node."""
    products = [n for n in graph.nodes if gemm.supported(n)]
    blas = native.gemm() if products else None  # built on first need only
    if blas is not None:
        for n in products:
            n.op = gemm.Gemm(n.op, blas)
    fused = [n.op for n in graph.nodes if getattr(n.op, "results", None) is not None]
    natives = [(f"p{i}", n, gen) for i, n in enumerate(graph.nodes) for gen in NATIVES if gen[0](n)]
    if not fused and not natives:
        return
    kernels = [(f"k{i}", f) for i, f in enumerate(fused)]
    # OpenBLAS's threads spin for a while after each product: an OpenMP loop started then waits
    # for a core they hold (LeNet step 46 ms with parallel kernels, 33 ms without). Products on
    # our own threads (gemm.Gemm) don't wake them; other BLAS calls (NumPy's conv path, layouts
    # gemm.c declines) do, so kernels stay serial unless those threads sleep soon, as they do
    # unless the user set OPENBLAS_THREAD_TIMEOUT higher (threads.calm_openblas).
    openblas = any(n.op.name in BLAS_OPS and not isinstance(n.op, gemm.Gemm) for n in graph.nodes)
    parallel = not openblas or threads.openblas_sleeps()
    par_min = cgen.PAR_MIN if parallel else 1 << 62
    mod = cache.load(cgen.render_module(kernels, parallel=parallel,
                                        extra=[(name, gen[1](name, n, par_min)) for name, n, gen in natives]))
    for name, f in kernels:
        f.kernel = getattr(mod, name)
    for name, n, gen in natives:
        n.op = gen[2](n.op, getattr(mod, name))


def plan_inplace(graph: Graph, pairs: dict) -> None:
    """Let a fused kernel write an output over the input it replaces (an optimizer's update of
    a parameter or its state: ``pairs`` maps the output Var id to the input Var id it is
    written back to) when that input is read by no later node and both have the loop's shape:
    no new array, and no copy back afterwards."""
    _, last = liveness(graph)
    out_ids = [v.id for v in graph.outputs]
    claimed = set()
    for i, n in enumerate(graph.nodes):
        f = n.op
        if getattr(f, "results", None) is None or not getattr(f, "inplace_ok", True):
            continue
        ins = {v.id: v for v in f.inputs}
        for v in f.results:
            u = ins.get(pairs.get(v.id))
            if (u is not None and u.id not in claimed and last.get(u.id) == i and u.id not in out_ids
                    and out_ids.count(v.id) == 1 and u.shape == v.shape == tuple(f.loop)
                    and u.dtype == v.dtype and v is not getattr(f.reduce, "out", None)):
                f.alias[v.id] = u.id
                claimed.add(u.id)


def executor(graph: Graph, inplace: dict | None = None):
    """A callable running ``graph`` on arrays (C kernels compiled first). With ``inplace``
    (see plan_inplace) it has an attribute ``safe``: the same program writing nothing in place,
    for calls whose arrays overlap."""
    if inplace:
        plan_inplace(graph, inplace)
    compile_kernels(graph)
    run = runtime.build(graph)
    run.safe = runtime.build(graph, inplace=False) if inplace else run
    return run
