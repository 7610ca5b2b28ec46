"""``ember.jit``: trace a function once per input signature, rewrite and compile the graph,
then run the compiled program on later calls and write its state updates back.

>>> step = ember.jit(lambda x, y: ((model(x) - y) ** 2).mean())
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Callable

import numpy as np

from ..device import cpu
from ..ops import inplace as I
from ..tensor import Tensor, _new
from . import pipeline
from .graph import Var
from .debug import checked_run, explain
from .dot import render, to_dot
from .plan import peak_bytes
from .runtime import Stale as _Stale
from .trace import TraceError, trace

MAX_VARIANTS = 8  # distinct input signatures kept per function; the oldest is dropped


class Program:
    """One compiled variant: runs the graph and writes state back."""

    def __init__(self, tr, graph, run, report):
        self.trace, self.graph, self.run, self.report = tr, graph, run, report
        self.caps = tr.captures
        self.n_out = len(_tree_vars(tr.out_tree))
        self.writes = tr.writes
        self.grads = tr.grad_sets
        self.guards = tr.grad_guards
        outs = graph.outputs
        gvars = outs[self.n_out + len(self.writes):]
        # A gradient must own writable memory (optimizers update .grad in place).
        seen, self.grad_copy = set(), []
        producers = {v.id: n for n in graph.nodes for v in (getattr(n.op, "results", None) or [n.out])}
        for v in gvars:
            p = producers.get(v.id)
            self.grad_copy.append(v.id in seen or p is None or getattr(p.op, "view", False))
            seen.add(v.id)
        self.single = type(tr.out_tree) is Var
        self.arg_effects = any(c.kind == "arg" for c in self.writes) or any(type(t) is int for t, _ in self.grads)
        # Inputs that fused kernels overwrite in place (optimizer updates): their arrays must
        # be contiguous, writable and not views of or viewed by another input, else run.safe.
        aliased = {u for n in graph.nodes for u in getattr(n.op, "alias", {}).values()}
        self.inplace = [i for i, v in enumerate(graph.inputs) if v.id in aliased]

    def __call__(self, flat: list):
        for t, none in self.guards:
            if ((flat[t] if type(t) is int else t).grad is None) is not none:
                raise _Stale
        ins = [t._data for t in flat]
        for c in self.caps:
            a = c.read()
            if a is None:
                raise _Stale
            ins.append(a)
        outs = (self.run if not self.inplace or _may_overwrite(ins, self.inplace) else self.run.safe)(*ins)
        i = self.n_out
        for c in self.writes:
            if c.kind == "arg":
                t = flat[c.ref]
                if outs[i] is not t._data:
                    np.copyto(t._data, outs[i])
                I._bump(t)
            elif type(c.ref) is Tensor:
                t = c.ref.grad if c.kind == "grad" else c.ref
                if outs[i] is not t._data:
                    np.copyto(t._data, outs[i])
                I._bump(t)
            elif outs[i] is not c.ref:
                np.copyto(c.ref, outs[i])
            i += 1
        copies = iter(self.grad_copy)
        for t, has in self.grads:
            if type(t) is int:
                t = flat[t]
            if has:
                a = outs[i]
                i += 1
                t.grad = _new(a.copy() if next(copies) else a, t._dev)
            else:
                t.grad = None
        if self.single:
            return _new(outs[0], cpu)
        it = iter(outs[:self.n_out])
        return _unflatten(self.trace.out_tree, it)


class JitFunction:
    """A function compiled by ``ember.jit``; call it like the original."""

    def __init__(self, fn: Callable, check: bool = False):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.check = check
        self.variants: OrderedDict = OrderedDict()
        self._modules = self._optims = None
        self.last: Program | None = None

    def __call__(self, *args, **kwargs):
        flat: list = []
        key = (_sig(args, flat), _sig(kwargs, flat) if kwargs else None, self._mode())
        prog = self.variants.get(key)
        if len(flat) > 1 and (prog is None or prog.arg_effects) and _overlapping(flat):
            # A program treats its arguments as distinct values: one traced from shared memory
            # would merge them, and writes or gradients into shared arguments need eager order.
            return self.fn(*args, **kwargs)
        if prog is not None:
            if all(t._dev is cpu for t in flat):
                try:
                    return prog(flat)
                except _Stale:
                    del self.variants[key]
            else:
                return self.fn(*args, **kwargs)
        return self._compile(key, args, kwargs, flat)

    def _compile(self, key, args, kwargs, flat):
        if not all(t._dev is cpu for t in flat):
            return self.fn(*args, **kwargs)  # the compiler targets CPU for now: run eagerly
        tr = trace(self.fn, args, kwargs, flat)
        graph, report = pipeline.optimize(tr.graph)
        run = pipeline.executor(graph, _writeback_pairs(tr, graph))
        if self.check:
            run = functools.partial(checked_run, tr.graph, graph)
        prog = Program(tr, graph, run, report)
        self.variants[key] = self.last = prog
        if len(self.variants) > MAX_VARIANTS:
            self.variants.popitem(last=False)
        return tr.eager_out

    def _mode(self):
        """Guards on Python state the trace bakes in: train/eval flags of the modules the
        function can see, and the hyperparameters (lr...) of its optimizers, which
        schedulers change between calls (a change compiles a new variant)."""
        if self._modules is None:
            self._modules, self._optims = _find_state(self.fn)
        if not self._modules and not self._optims:
            return None
        return (tuple([m.training for m in self._modules]),
                tuple([tuple([tuple(v) if type(v) is list else v for k, v in g.items() if k != "params"])
                       for o in self._optims for g in o.param_groups]))

    def ir(self, which: str = "both") -> str:
        """The graph of the last compiled variant: before and/or after the rewrites."""
        p = self._need_program()
        before = f"# traced\n{p.trace.graph}"
        after = f"# optimized\n{p.graph}"
        return {"before": before, "after": after}.get(which, before + "\n" + after)

    def explain(self) -> str:
        """The kernels of the last compiled variant, in order: each fused C kernel with its loop
        shape and the ops it fused, and each NumPy/BLAS call."""
        return explain(self._need_program().graph)

    def memory(self) -> dict:
        """Bytes of the last compiled variant: ``peak`` (most bytes of computed values alive at
        once in a call), ``arena`` (buffers kept between calls for fused temporaries, part of
        the peak), ``inputs`` (arguments and captured state read)."""
        p = self._need_program()
        return {"peak": peak_bytes(p.graph), "arena": getattr(p.run, "arena_bytes", 0),
                "inputs": sum(v.nbytes for v in p.graph.inputs)}

    def dot(self, path: str | None = None, which: str = "after") -> str:
        """The graph of the last compiled variant in Graphviz DOT ("before" or "after" the
        rewrites); with ``path``, also written there (rendered by Graphviz for .svg/.png/.pdf)."""
        p = self._need_program()
        src = to_dot(p.trace.graph if which == "before" else p.graph, getattr(self.fn, "__name__", "ember"))
        if path is not None:
            render(src, path)
        return src

    def _need_program(self) -> Program:
        if self.last is None:
            raise TraceError(f"{getattr(self.fn, '__name__', 'function')}: call the jitted "
                             f"function once (it compiles on the first call) before inspecting it")
        return self.last


def jit(fn: Callable | None = None, *, check: bool = False):
    """Compile ``fn`` (forward, backward and optimizer step included) on its first call.
    ``check=True`` runs every compiled node next to eager (unfused, unrewritten NumPy)
    execution of the traced graph and raises CheckError naming the first node that disagrees.

    >>> @ember.jit
    ... def step(x, y): ...
    """
    if fn is None:
        return lambda f: JitFunction(f, check=check)
    return JitFunction(fn, check=check)


def _overlapping(flat: list) -> bool:
    """Whether two tensor arguments share memory (the same tensor twice, or views of one
    array): a traced program treats them as independent values, which writes break."""
    arrs = [t._data for t in flat]
    roots = [id(a if a.base is None else a.base) for a in arrs]
    return len(set(roots)) != len(roots)


def _may_overwrite(ins: list, idx: list) -> bool:
    """Whether the inputs at ``idx`` can be written in place: contiguous, writable arrays that
    are no view, that no other input views, and no array is passed twice."""
    bases = {id(a.base) for a in ins if a.base is not None}
    if len({id(a) for a in ins}) != len(ins):  # one array passed twice
        return False
    for i in idx:
        a = ins[i]
        if a.base is not None or id(a) in bases or not (a.flags.c_contiguous and a.flags.writeable):
            return False
    return True


def _writeback_pairs(tr, graph) -> dict:
    """{id of the output Var written back to a piece of state: id of the input Var reading that
    state} (the candidates for in-place writes)."""
    pos = {v.id: i for i, v in enumerate(graph.inputs)}
    outs = graph.outputs[len(_tree_vars(tr.out_tree)):]
    pairs = {}
    for c, v in zip(tr.writes, outs):
        u = graph.inputs[c.ref] if c.kind == "arg" else c.var
        if u.id in pos and v.id != u.id:
            pairs[v.id] = u.id
    return pairs


def _sig(obj, flat: list):
    """Hashable signature of an argument; appends its tensors to ``flat``."""
    if type(obj) is Tensor:
        flat.append(obj)
        d = obj._data
        return (d.shape, d.dtype, obj._dev, obj.requires_grad)
    if isinstance(obj, (tuple, list)):
        return (type(obj),) + tuple([_sig(x, flat) for x in obj])
    if isinstance(obj, dict):
        return (dict,) + tuple([(k, _sig(obj[k], flat)) for k in obj])
    try:
        hash(obj)
        return obj
    except TypeError:
        return ("id", id(obj))


def _tree_vars(tree) -> list:
    if type(tree) is Var:
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [v for x in tree for v in _tree_vars(x)]
    if isinstance(tree, dict):
        return [v for x in tree.values() for v in _tree_vars(x)]
    return []


def _unflatten(tree, it):
    if type(tree) is Var:
        return _new(next(it), cpu)
    if isinstance(tree, (tuple, list)):
        return type(tree)(_unflatten(x, it) for x in tree)
    if isinstance(tree, dict):
        return {k: _unflatten(x, it) for k, x in tree.items()}
    return tree


def _find_state(fn):
    """Modules and optimizers reachable from the function's closure, the globals it names and
    its ``self``."""
    from ..nn.module import Module
    from ..optim.optimizer import Optimizer
    objs = []
    if hasattr(fn, "__self__"):
        objs.append(fn.__self__)
    f = getattr(fn, "__func__", fn)
    if isinstance(fn, Module):
        objs.append(fn)
        f = type(fn).forward
    code = getattr(f, "__code__", None)
    if code is not None:
        for cell in getattr(f, "__closure__", None) or ():
            try:
                objs.append(cell.cell_contents)
            except ValueError:
                pass
        g = getattr(f, "__globals__", {})
        objs += [g[n] for n in code.co_names if n in g]
    mods, optims, seen = [], [], set()
    for o in objs:
        if isinstance(o, Module):
            for m in o.modules():
                if id(m) not in seen:
                    seen.add(id(m))
                    mods.append(m)
        elif isinstance(o, Optimizer) and id(o) not in seen:
            seen.add(id(o))
            optims.append(o)
    return mods, optims
