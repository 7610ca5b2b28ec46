"""Tracing: run the user's function once, eagerly, with every op call recorded into a Graph.

The registry's tracer hook sees every op call (forward, the vjps run by ``backward()``, the
optimizer's updates), executes it for real and records a node, so shapes, dtypes and values are
concrete and autograd and optimizers work unchanged. Values are tracked by the identity of the
array that holds them: ``env[id(array)]`` is the Var that array holds now.

Tensors the function reads that no op produced (parameters, optimizer state, ``p.grad`` from an
earlier call) become *captures*: inputs read again at every call. Those still alive after the
trace are external state; the others were temporaries made inside (``ones`` for the root
gradient, constants) and are frozen as constants. In-place writes to external state and
``.grad`` assignments become outputs that the runtime writes back after each call.

A few eager paths write memory without an op; they are patched for the duration of the trace
(see ``_patched``) so that the writes are recorded too. (``x.add_(y)`` under no_grad and the
copy of a leaf's gradient check for the tracer themselves and go through ops.)
"""
from __future__ import annotations

import linecache
import os
import sys
import weakref

import numpy as np

from .. import creation as C
from .. import dtypes as D
from .. import random as RND
from ..errors import EmberError
from ..ops import elementwise as E
from ..ops import inplace as I
from ..ops import movement as M
from ..ops import registry as R
from ..tensor import Tensor, _new
from .graph import ArgRef, Graph, Var
from .rng import RecordingGenerator

_EMBER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class TraceError(EmberError, RuntimeError):
    """The function cannot be traced as written (data-dependent Python control flow...)."""


class Capture:
    """How to read one piece of external state at call time."""

    __slots__ = ("kind", "ref", "var")

    def __init__(self, kind: str, ref, var: Var):
        # "data": ref is a Tensor (or an ndarray); "grad": ref is the grad's owner;
        # "arg": ref is the index of a flat argument (only as a write-back target)
        self.kind = kind
        self.ref = ref
        self.var = var

    def read(self):
        if self.kind == "grad":
            g = self.ref.grad
            return None if g is None else g._data
        return self.ref if type(self.ref) is np.ndarray else self.ref._data

    def __repr__(self) -> str:
        return f"{self.var}<-{self.kind}"


class Trace:
    """The result of tracing: a Graph plus how its inputs and outputs map to the outside."""

    def __init__(self, graph, n_args, captures, writes, grad_sets, grad_guards, out_tree, eager_out):
        self.graph = graph  # inputs = flat tensor args + captures; outputs = results + writes + grads
        self.n_args = n_args
        self.captures = captures  # list of Capture (inputs after the args)
        self.writes = writes  # list of Capture whose data the function overwrote
        self.grad_sets = grad_sets  # (Tensor or flat-arg index, has_value): .grad assignments
        self.grad_guards = grad_guards  # (Tensor or arg index, whether its .grad was None)
        self.out_tree = out_tree  # the function's return structure with Vars as leaves
        self.eager_out = eager_out  # what the traced (eager) call returned, detached


class Tracer:
    def __init__(self):
        self.g = Graph()
        self.env: dict[int, Var] = {}
        self.keep: list = []  # strong refs: ids in env stay unique while tracing
        self.caps: list = []  # (Capture, weakref to the array, snapshot copy)
        self.grad_owners: dict[int, weakref.ref] = {}
        self.grad_reads: dict = {}  # id(t) -> (weakref, t.grad was None) at its first read
        self.draws = 0  # random nodes emitted (each gets its number: CSE must not merge them)

    # -- values ------------------------------------------------------------------------------
    def bind(self, arr, v: Var) -> None:
        self.env[id(arr)] = v
        self.keep.append(arr)

    def var_of(self, t: Tensor) -> Var:
        v = self.env.get(id(t._data))
        return v if v is not None else self.capture(t._data, "data", t)

    def capture(self, arr, kind, ref) -> Var:
        v = self.g.var(arr.shape, arr.dtype)
        self.g.inputs.append(v)
        self.caps.append((Capture(kind, weakref.ref(ref), v), weakref.ref(arr), np.array(arr, copy=True)))
        self.bind(arr, v)
        return v

    def arg(self, a):
        """A node argument: Tensors become Vars, everything else stays static."""
        return self.var_of(a) if type(a) is Tensor else a

    def assign(self, t: Tensor, value) -> None:
        """Record that ``t``'s memory now holds ``value`` (a Var, array or scalar)."""
        self.var_of(t)  # an external tensor written before it is read is still a capture
        if type(value) is Var:
            v = value
        elif id(value) in self.env:  # an op's result (an array, or a NumPy scalar for 0-d)
            v = self.env[id(value)]
        else:
            v = self.g.const(np.array(value, dtype=t._data.dtype, copy=True))
        dt, shape = t._data.dtype, t._data.shape
        if v.dtype != dt:
            v = self.g.emit(E.cast, (v,), {"dtype": D.from_numpy(dt)}, v.shape, dt)
        if v.shape != shape:
            v = self.g.emit(M.expand_, (v,), {"shape": shape}, shape, dt)
        self.bind(t._data, v)

    # -- the registry hook ------------------------------------------------------------------
    def __call__(self, op, args, params):
        prev = R.set_tracer(None)
        try:
            out = op.fn(*args, **params)
        finally:
            R.set_tracer(prev)
        arr = out._data
        self.dynamic = False
        if op.kind == "elementwise":
            vargs = self._elementwise_args(op, args)
        else:
            vargs = [self.arg(a) for a in args]
            params = {k: self._lift(p, vargs, op) for k, p in params.items()}
        v = self.g.emit(op, tuple(vargs), params, arr.shape, arr.dtype)
        if self.dynamic:
            self.g.shape_checks.add(v.id)
        self.bind(arr, v)
        return out

    def _elementwise_args(self, op, args):
        """Make the promotion eager dispatch does explicit: cast nodes, typed scalars."""
        if op.nin == 1:
            x = args[0]
            cd = x._data.dtype
            if op.out_dtype == "float" and cd.kind not in "fc":
                cd = D.get_default_dtype().np
            ops = [x]
        elif op.nin == 2:
            cd = op._compute_dtypes(*args).np
            ops = list(args)
        else:
            c, a, b = args
            cd = op._compute_dtypes(a, b).np
            ops = [a, b]
        out = []
        for a in ops:
            if type(a) is Tensor:
                v = self.var_of(a)
                if v.dtype != cd:
                    v = self.g.emit(E.cast, (v,), {"dtype": D.from_numpy(cd)}, v.shape, cd)
                out.append(v)
            else:
                out.append(cd.type(a))
        if op.nin == 3:
            c = args[0]
            out.insert(0, self.var_of(c) if type(c) is Tensor else np.bool_(c))
        return out

    def _lift(self, p, vargs, op):
        """Arrays inside params (index arrays of getitem) become node args."""
        if isinstance(p, tuple):
            return tuple(self._lift(x, vargs, op) for x in p)
        if isinstance(p, np.ndarray):
            v = self.env.get(id(p))
            if v is None:
                v = self.capture(p, "data", p)
            if p.dtype == np.bool_:  # a data-dependent shape: the program checks it
                self.dynamic = True
            vargs.append(v)
            return ArgRef(len(vargs) - 1)
        return p

    # -- the end of the trace -----------------------------------------------------------------
    def finish(self, flat_args, box: list, grad_log: dict):
        result = box.pop()
        out_tree = _map_tensors(result, self.var_of)
        eager_out = _map_tensors(result, lambda t: _new(t._data, t._dev))
        final_grads = []
        for ref in grad_log.values():
            t = ref()
            if t is not None:
                g = t.grad
                final_grads.append((ref, None if g is None else self.var_of(g)))
        final = {c.var.id: self.env[id(arr)] for c, wr, _ in self.caps if (arr := wr()) is not None}
        # Forget everything that could keep a temporary alive, then see what survives. (A
        # temporary kept alive by a reference cycle is read as an input: slower, still correct.)
        del result, grad_log
        self.env.clear()
        self.keep.clear()
        captures, writes = [], []
        arg_ids = {id(t._data): i for i, t in reversed(list(enumerate(flat_args)))}
        arg_vars = []
        for c, wr, snap in self.caps:
            arr, src = wr(), c.ref()
            if arr is not None and id(arr) in arg_ids and c.kind == "data":
                arg_vars.append((id(arr), c.var))
                fv = final.get(c.var.id)
                if fv is not None and fv is not c.var:  # the function wrote into an argument
                    writes.append((Capture("arg", arg_ids[id(arr)], c.var), fv))
                continue
            if src is None if c.kind == "grad" else arr is None:
                c.var.const = snap  # a temporary made inside the function: a constant
                continue
            # Read through the tensor while it still holds this array (p.data may be replaced);
            # a detached temporary that died leaves only the array itself.
            keep = src is not None and (c.kind == "grad" or (type(src) is Tensor and src._data is arr))
            c.ref = src if keep else arr
            captures.append(c)
            fv = final.get(c.var.id)
            if fv is not None and fv is not c.var:
                writes.append((c, fv))
        # Inputs: the flat args (in order), then external captures.
        by_arr = dict(arg_vars)
        g = self.g
        arg_in = []
        for t in flat_args:
            v = by_arr.get(id(t._data))
            if v is None:
                v = g.var(t._data.shape, t._data.dtype)  # an argument the function never read
            by_arr[id(t._data)] = v
            arg_in.append(v)
        g.inputs = arg_in + [c.var for c in captures]
        outs = _leaves(out_tree)
        pos = {id(t): i for i, t in reversed(list(enumerate(flat_args)))}
        # .grad of an argument goes to the argument of each call (by position).
        grad_sets = [(pos.get(id(ref()), ref()), v) for ref, v in final_grads if ref() is not None]
        g.outputs = outs + [v for _, v in writes] + [v for _, v in grad_sets if v is not None]
        guards = [(pos.get(id(t), t), none) for ref, none in self.grad_reads.values()
                  if (t := ref()) is not None]
        return Trace(g, len(flat_args), captures, [c for c, _ in writes],
                     [(t, v is not None) for t, v in grad_sets], guards, out_tree, eager_out)


def trace(fn, args, kwargs, flat_args) -> Trace:
    """Run ``fn(*args, **kwargs)`` once, recording it. ``flat_args``: the tensors in args."""
    tr = Tracer()
    for t in flat_args:
        if id(t._data) not in tr.env:
            tr.capture(t._data, "data", t)
    grad_log: dict = {}
    with _patched(tr, grad_log):
        box = [fn(*args, **kwargs)]
    return tr.finish(flat_args, box, grad_log)


def _map_tensors(obj, f):
    if type(obj) is Tensor:
        return f(obj)
    if isinstance(obj, (tuple, list)):
        return type(obj)(_map_tensors(x, f) for x in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(x, f) for k, x in obj.items()}
    return obj


def _leaves(tree) -> list:
    if type(tree) is Var:
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [v for x in tree for v in _leaves(x)]
    if isinstance(tree, dict):
        return [v for x in tree.values() for v in _leaves(x)]
    return []


# -- patches active while tracing ------------------------------------------------------------

def _user_line() -> str:
    """' at file.py:12 (`code`)' for the innermost frame outside ember."""
    f = sys._getframe(1)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(_EMBER_DIR):
        f = f.f_back
    if f is None:
        return ""
    code = linecache.getline(f.f_code.co_filename, f.f_lineno).strip()
    return f" at {f.f_code.co_filename}:{f.f_lineno} (`{code}`)"


class _patched:
    """Route the eager paths that write memory without an op through the tracer.

    - ``inplace._write`` (every in-place write): records that the tensor now holds the value.
    - ``inplace._new`` (the snapshot of a tensor before an in-place op under autograd): the copy
      holds the same value as the caller's local ``t``, read from the calling frame.
    - ``creation._gen`` (the generator ``rand``/``randn`` draw from) records each draw as a
      random node, drawn again at every call (rng.py).
    - ``Tensor.grad`` becomes a property: reads of a gradient from before the call are captured
      by their owner, assignments are logged and become outputs.
    - ``item()``, ``bool()``, ``float()``... on a traced value raise TraceError.
    """

    TO_PYTHON = ("item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy")

    def __init__(self, tr: Tracer, grad_log: dict):
        self.tr, self.grad_log = tr, grad_log
        self.saved = []

    def _set(self, obj, name, value):
        self.saved.append((obj, name, obj.__dict__[name] if name in obj.__dict__ else getattr(obj, name)))
        setattr(obj, name, value)

    def __enter__(self):
        tr = self.tr
        orig_write = I._write

        def write(t, value, name):
            orig_write(t, value, name)
            tr.assign(t, value)

        def copy_of(local):
            def new(array, dev):
                f = sys._getframe(1)
                src = f.f_locals.get(local)
                if type(src) is Tensor and src._data is not array and id(src._data) in tr.env:
                    tr.bind(array, tr.env[id(src._data)])
                return _new(array, dev)
            return new

        self._set(I, "_write", write)
        self._set(I, "_new", copy_of("t"))
        self._set(C, "_gen", lambda generator: RecordingGenerator(generator or RND.default_generator, tr))
        self._patch_grad()
        for name in self.TO_PYTHON:
            self._set(Tensor, name, _refuse(getattr(Tensor, name), name, tr))
        self.prev_tracer = R.set_tracer(tr)
        return self

    def _patch_grad(self):
        slot = Tensor.__dict__["grad"]
        tr, log, reads = self.tr, self.grad_log, self.tr.grad_reads

        def get(t):
            g = slot.__get__(t, Tensor)
            if id(t) not in log and id(t) not in reads:  # the program assumes this stays so
                reads[id(t)] = (weakref.ref(t), g is None)
            if g is not None and id(g._data) not in tr.env:
                tr.capture(g._data, "grad", t)
            return g

        def set_(t, value):
            try:
                slot.__get__(t, Tensor)
            except AttributeError:  # a fresh tensor (from _new): not an assignment to log
                slot.__set__(t, value)
                return
            slot.__set__(t, value)
            log.setdefault(id(t), weakref.ref(t))

        self.saved.append((Tensor, "grad", slot))
        Tensor.grad = property(get, set_)

    def __exit__(self, *exc):
        R.set_tracer(self.prev_tracer)
        for obj, name, value in reversed(self.saved):
            setattr(obj, name, value)


def _refuse(orig, name, tr):
    what = {"__bool__": "bool()", "__float__": "float()", "__int__": "int()", "__index__": "int()"}

    def method(self, *a, **k):
        if id(self._data) in tr.env:
            raise TraceError(
                f"ember.jit: {what.get(name, f'.{name}()')} of a traced tensor{_user_line()}: Python "
                f"control flow and Python values cannot depend on tensor values inside a jitted "
                f"function. Use ember.where(cond, a, b) for data-dependent choices, return the "
                f"tensor and convert it outside, or call the function without ember.jit.")
        return orig(self, *a, **k)
    method.__name__ = name
    return method
