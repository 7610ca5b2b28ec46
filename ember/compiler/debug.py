"""Tools that look inside a compiled function: a node-by-node interpreter that checks every
compiled node against eager NumPy execution of the traced graph (``jit(fn, check=True)``, like
Theano's DebugMode), and ``explain``, the list of kernels and the ops each one fused.

>>> print(explain(graph))
"""
from __future__ import annotations

import numpy as np

from ..errors import EmberError
from .graph import ArgRef, Graph, Var
from .runtime import _arg_refs, kernel_of


class CheckError(EmberError, AssertionError):
    """A compiled node computed something else than eager execution of the traced graph."""


def _resolve(v, args):
    if isinstance(v, ArgRef):
        return args[int(v)]
    if isinstance(v, tuple):
        return tuple(_resolve(x, args) for x in v)
    return v


def run_node(n, env: dict, compiled: bool = True) -> dict:
    """Compute node ``n`` from ``env`` (Var id -> array); returns {Var id: array} of its results."""
    def val(a):
        if type(a) is not Var:
            return a
        return env[a.id] if a.id in env else a.const
    fused = getattr(n.op, "results", None)
    if fused is not None:
        ins = [val(a) for a in n.op.inputs]
        if compiled and n.op.kernel is not None:
            outs = [np.empty(v.shape, v.dtype) for v in fused]
            n.op.kernel(*[np.ascontiguousarray(a) for a in ins], *outs)
        else:
            outs = n.op.numpy(*ins)
        return {v.id: o for v, o in zip(fused, outs)}
    args = [val(a) for a in n.args]
    params = {k: _resolve(p, args) for k, p in n.params.items()}
    pos = [a for j, a in enumerate(args) if j not in _arg_refs(n.params)]
    return {n.out.id: kernel_of(n)(*pos, **params)}


def interpret(g: Graph, ins, compiled: bool = True, on_node=None, draws=None) -> tuple:
    """Run ``g`` one node at a time; ``on_node(index, node, results)`` sees each node's results.
    ``draws``: results of random nodes to reuse instead of drawing again."""
    env = {v.id: a for v, a in zip(g.inputs, ins)}
    for i, n in enumerate(g.nodes):
        if draws is not None and n.op.kind == "random" and n.out.id in draws:
            res = {n.out.id: draws[n.out.id]}
        else:
            res = run_node(n, env, compiled)
        if on_node is not None:
            on_node(i, n, res)
        env.update(res)
    return tuple(env[v.id] if v.id in env else v.const for v in g.outputs)


def tolerance(dtype) -> tuple:
    """(rtol, atol) for comparing a compiled value with eager: fused C may reorder float math."""
    dt = np.dtype(dtype)
    if dt.kind != "f":
        return 0.0, 0.0
    return (1e-9, 1e-12) if dt.itemsize >= 8 else (1e-4, 1e-5)


def checked_run(traced: Graph, optimized: Graph, *ins) -> tuple:
    """Run ``optimized`` node by node, comparing each value that the traced graph also computes
    with eager (NumPy, unfused, unrewritten) execution; raise CheckError at the first mismatch."""
    ref: dict = {}
    interpret(traced, ins, compiled=False, on_node=lambda i, n, r: ref.update(r))

    def compare(i, n, res):
        for vid, got in res.items():
            want = ref.get(vid)
            if want is None:
                continue  # a value the rewrites introduced: checked through its consumers
            got, want = np.asarray(got), np.asarray(want)
            rtol, atol = tolerance(want.dtype)
            if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True):
                diff = "shape " + str(got.shape) if got.shape != want.shape else \
                    f"max abs difference {np.nanmax(np.abs(got.astype(np.float64) - want)):.3g}"
                raise CheckError(
                    f"ember.jit(check=True): node {i} `{n!r}` disagrees with eager execution on "
                    f"%{vid} ({diff}; rtol={rtol}, atol={atol}). Run without check to get the "
                    f"compiled result anyway, or report this node with fn.ir().")
    return interpret(optimized, ins, compiled=True, on_node=compare, draws=ref)


def explain(g: Graph) -> str:
    """One line per kernel of the compiled graph: fused C kernels with the ops they fused and
    their loop shape, then NumPy/BLAS calls."""
    lines = []
    for i, n in enumerate(g.nodes):
        op = n.op
        if getattr(op, "results", None) is not None:
            how = "C kernel" if op.kernel is not None else "NumPy (no compiler)"
            red = f", ends with {op.reduce.op.name}" if op.reduce is not None else ""
            lines.append(f"{i:4d}  {how} over {list(op.loop)}{red}: fuses {len(op.nodes)} ops "
                         f"[{', '.join(m.op.name for m in op.nodes)}]; reads {len(op.inputs)}, "
                         f"writes {len(op.results)}")
        else:
            shapes = ", ".join(a.type_str for a in n.vars)
            name = op.describe() if hasattr(op, "describe") else op.name
            lines.append(f"{i:4d}  {name}({shapes}) -> {n.out.type_str}")
    n_fused = sum(getattr(n.op, "results", None) is not None for n in g.nodes)
    lines.append(f"{len(g.nodes)} kernels, {n_fused} of them fused")
    return "\n".join(lines)
