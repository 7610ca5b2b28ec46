"""The executor: turns a Graph into one straight-line Python function that calls each node's
kernel (NumPy for plain ops, a generated C function for fused kernels) with locals only, so a
call costs one Python call per kernel and nothing per value. Temporaries are deleted after
their last use so their memory is reused at once.

>>> run = build(graph); outs = run(*input_arrays)
"""
from __future__ import annotations

import numpy as np

from .graph import ArgRef, Graph, Var
from .plan import assign_buffers


class Stale(Exception):
    """The program no longer fits its inputs (a value-dependent shape changed): trace again."""


# Ops whose NumPy kernels always return new arrays (never views of their inputs).
CONTIGUOUS_OUT = {"matmul", "sum", "max", "min", "prod", "cat", "pad", "index_add", "index_put",
                  "scatter_add", "cumsum", "argmax", "argmin", "all", "any"}
# Those whose result is also C-contiguous whatever the inputs' layout. NumPy's reductions,
# cumsum and batched matmul lay the result out like a permuted input; 2-D matmul and the
# native kernels (np.empty results) are always C-contiguous (see _c_order).
C_ORDER_OUT = {"cat", "pad", "index_add", "index_put"}


def _c_order(n) -> bool:
    return (n.op.name in C_ORDER_OUT or getattr(n.op, "kind", None) == "native"
            or n.op.name == "matmul" and len(n.out.shape) <= 2)


def _cat_c_order(*xs, axis):
    """np.concatenate into a C-contiguous result (NumPy lays out the result like its inputs:
    permuted views would give a permuted result; C_ORDER_OUT promises C order)."""
    axis = axis % xs[0].ndim
    shape = list(xs[0].shape)
    shape[axis] = sum(x.shape[axis] for x in xs)
    return np.concatenate(xs, axis=axis, out=np.empty(shape, np.result_type(*xs)))


# Ops whose eager dispatch does not call their kernel on CPU arrays, or whose compiled kernel
# must also promise a C-contiguous result.
_CPU_OVERRIDES = {"to_device": lambda x, device: x,  # everything compiled here lives on the CPU
                  "cat": _cat_c_order}


def kernel_of(node):
    """The callable that computes a node from arrays: its op's CPU kernel (or its own)."""
    if getattr(node.op, "kind", None) == "native":
        return node.op.cpu
    k = _CPU_OVERRIDES.get(node.op.name) or getattr(node.op, "cpu", None)
    return k if k is not None else node.op.kernel


def build(graph: Graph, kernel=kernel_of, name: str = "run", inplace: bool = True):
    """Python source for ``graph`` (inputs -> tuple of outputs), compiled; returns the function.
    Fused kernels' temporaries live in buffers allocated here once (see plan.py), so the
    function is not reentrant: one call at a time per built function."""
    glob: dict = {"np": np, "Stale": Stale, "empty": np.empty, "asc": np.ascontiguousarray}
    slots, arena_bytes, kinds = assign_buffers(graph, CONTIGUOUS_OUT)
    for k, (shape, dtype) in enumerate(kinds):
        glob[f"s{k}"] = np.empty(shape, dtype)
    names: dict[int, str] = {}

    def const_name(value) -> str:
        n = f"c{len(glob)}"
        glob[n] = value
        return n

    for i, v in enumerate(graph.inputs):
        names[v.id] = f"a{i}"

    def ref(a) -> str:
        if type(a) is Var:
            if a.id not in names:
                if a.const is None:
                    raise RuntimeError(f"graph error: {a} is used before it is computed")
                names[a.id] = const_name(np.ascontiguousarray(a.const))
            return names[a.id]
        if a is None or isinstance(a, (bool, int, float, str)) and type(a) in (bool, int, float, str):
            return repr(a)
        return const_name(a)

    last = {}
    for i, n in enumerate(graph.nodes):
        for a in n.vars:
            last[a.id] = i
    keep = {v.id for v in graph.outputs}
    lines = [f"def {name}({', '.join(names[v.id] for v in graph.inputs)}):"]
    contiguous: set = set()  # Vars known to be C-contiguous arrays
    for i, n in enumerate(graph.nodes):
        fused = getattr(n.op, "results", None)
        if fused is not None and n.op.kernel is not None:
            # A C kernel: contiguous inputs, outputs allocated here, written in place.
            k = const_name(n.op.kernel)
            ins = [ref(a) if a.id in contiguous or a.const is not None else f"asc({ref(a)})"
                   for a in n.op.inputs]
            outs = []
            alias = n.op.alias if inplace else {}
            by_id = {a.id: a for a in n.op.inputs}
            for v in fused:
                if v.id in alias:  # written over its input (contiguous: checked by the caller)
                    names[v.id] = ref(by_id[alias[v.id]])
                    outs.append(names[v.id])
                    contiguous.add(v.id)
                    continue
                names[v.id] = f"v{v.id}"
                outs.append(names[v.id])
                if v.id in slots:
                    lines.append(f"    {names[v.id]} = s{slots[v.id]}")
                else:
                    lines.append(f"    {names[v.id]} = empty({v.shape!r}, {const_name(v.dtype)})")
                contiguous.add(v.id)
            lines.append(f"    {k}({', '.join(ins + outs)})")
        elif fused is not None:
            k = const_name(n.op.numpy)
            for v in fused:
                names[v.id] = f"v{v.id}"
            outs = "".join(names[v.id] + ", " for v in fused)
            lines.append(f"    {outs}= {k}({', '.join(ref(a) for a in n.op.inputs)})")
        else:
            k = const_name(kernel(n))
            refs = _arg_refs(n.params)
            pos = [ref(a) for j, a in enumerate(n.args) if j not in refs]
            kw = [f"{p}={_src(v, n.args, ref, const_name)}" for p, v in n.params.items()]
            out = names[n.out.id] = f"v{n.out.id}"
            lines.append(f"    {out} = {k}({', '.join(pos + kw)})")
            if _c_order(n):
                contiguous.add(n.out.id)
        if n.out.id in graph.shape_checks:
            lines.append(f"    if {out}.shape != {n.out.shape!r}: raise Stale")
        dead = [names[a.id] for a in {a.id: a for a in n.vars}.values()
                if last.get(a.id) == i and a.id not in keep and a.const is None
                and not names[a.id].startswith("a")]
        if dead:
            lines.append(f"    del {', '.join(dead)}")
    lines.append(f"    return ({''.join(ref(v) + ', ' for v in graph.outputs)})")
    src = "\n".join(lines)
    exec(compile(src, f"<ember.jit {name}>", "exec"), glob)
    fn = glob[name]
    fn.source = src
    fn.arena_bytes = arena_bytes
    return fn


def _arg_refs(params) -> set:
    out = set()

    def walk(v):
        if isinstance(v, ArgRef):
            out.add(int(v))
        elif isinstance(v, tuple):
            for x in v:
                walk(x)
    for v in params.values():
        walk(v)
    return out


def _src(v, args, ref, const_name) -> str:
    if isinstance(v, ArgRef):
        return ref(args[int(v)])
    if isinstance(v, tuple):
        return "(" + "".join(_src(x, args, ref, const_name) + ", " for x in v) + ")"
    if v is None or type(v) in (bool, int, float, str):
        return repr(v)
    return const_name(v)
