"""``ember.onnx.export``: trace a model's forward (eval mode, no grad) into the compiler's IR and
write each IR node as ONNX nodes (export_ops.EXPORT); parameters and buffers become initializers
named by their state_dict keys.

Dynamic axes: the forward is traced once more per dynamic axis with that axis one larger. A dim
baked into a param (a reshape target, an expand shape, a slice bound) that changes between the
traces is ``a * size + b`` of that axis; reshape writes it as -1, the others compute it from
``Shape`` of the input, so the file runs at any size of the axis.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..compiler.graph import ArgRef, Var
from ..compiler.trace import trace
from ..errors import EmberError
from ..creation import from_numpy
from ..nn.module import Module
from ..ops import registry as R
from ..tensor import Tensor
from .backend import MAX_OPSET
from .errors import OnnxError, OpsetError, UnsupportedOperatorError
from .export_ops import EXPORT, Sym, onnx_type
from .load import BUFFERS_KEY

DEFAULT_OPSET = 18  # reductions and Pad take axes/pads as inputs from 18 on: one form for all
MIN_OPSET = 18


def export(model, example_inputs, path, *, dynamic_axes: dict | None = None, opset: int = DEFAULT_OPSET,
           input_names: list[str] | None = None, output_names: list[str] | None = None) -> onnx.ModelProto:
    """Write ``model`` (an nn.Module or a function of tensors) as an ONNX file; returns the ModelProto.

    ``dynamic_axes`` as in torch.onnx.export: ``{"input": {0: "batch"}}`` (or ``{"input": [0]}``).
    Example: ember.onnx.export(model, (x,), "model.onnx", dynamic_axes={"input": {0: "batch"}})
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise OpsetError(f"ember.onnx.export: opset {opset} is not supported; use {MIN_OPSET}..{MAX_OPSET}")
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    for i, a in enumerate(args):
        if not isinstance(a, Tensor):
            raise OnnxError(f"ember.onnx.export: example input {i} is a {type(a).__name__}; pass ember Tensors")
    in_names = list(input_names) if input_names else (["input"] if len(args) == 1 else [f"input_{i}" for i in range(len(args))])
    if len(in_names) != len(args):
        raise OnnxError(f"ember.onnx.export: {len(in_names)} input_names for {len(args)} inputs")
    dyn = _dynamic(dynamic_axes or {}, in_names, args)
    base = _trace(model, args)
    variants = {sym: _trace_resized(model, args, sym, axes) for sym, axes in dyn.items()}
    ex = _Exporter(base, variants, dyn, in_names, opset, _state_names(model), _buffer_names(model))
    proto = ex.build(output_names)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:  # a bug in a table entry, not the user's
        raise OnnxError(f"ember.onnx.export: the ONNX checker rejects the exported model: {e}") from None
    _write_atomic(proto, path)
    return proto


def _dynamic(dynamic_axes: dict, in_names: list, args) -> dict:
    """{symbol name: [(input index, dim), ...]} for the inputs among dynamic_axes."""
    out: dict = {}
    for name, axes in dynamic_axes.items():
        if name not in in_names:
            continue  # output entries: output dims follow from the inputs'
        i = in_names.index(name)
        if not isinstance(axes, dict):
            axes = {a: f"{name}_dim{a}" for a in axes}
        for d, sym in axes.items():
            if not -args[i].ndim <= d < args[i].ndim:
                raise OnnxError(f"ember.onnx.export: dynamic axis {d} of input {name!r} is out of range for "
                                f"its shape {tuple(args[i].shape)}")
            out.setdefault(sym, []).append((i, d % args[i].ndim))
    return out


def _state_names(model) -> dict:
    """id(array) -> state_dict key for the model's parameters and buffers."""
    if not isinstance(model, Module):
        return {}
    names = {}
    for k, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t is not None:
            names.setdefault(id(t._data), k)
    return names


def _buffer_names(model) -> set:
    return {k for k, _ in model.named_buffers()} if isinstance(model, Module) else set()


def _trace(model, args):
    was = [(m, m.training) for m in model.modules()] if isinstance(model, Module) else []
    if isinstance(model, Module):
        model.eval()
    prev = R.set_grad_enabled(False)
    try:
        return trace(model, args, {}, list(args))
    except EmberError:
        raise
    except Exception as e:
        raise OnnxError(f"ember.onnx.export: running the model on the example inputs failed: "
                        f"{type(e).__name__}: {e}") from e
    finally:
        R.set_grad_enabled(prev)
        for m, t in was:
            m.training = t


def _trace_resized(model, args, sym, axes):
    """The trace with dynamic axis ``sym`` one larger (one smaller if larger does not run)."""
    errors = []
    for delta in (1, -1):
        new = list(args)
        ok = True
        for i, d in axes:
            n = args[i].shape[d] + delta
            if n < 1:
                ok = False
                break
            arr = new[i].detach().numpy()  # repeat existing entries: token ids stay valid
            new[i] = from_numpy(np.ascontiguousarray(np.take(arr, np.arange(n) % arr.shape[d], axis=d)))
        if not ok:
            continue
        try:
            return _trace(model, tuple(new)), delta
        except EmberError as e:
            errors.append(str(e))
    raise OnnxError(f"ember.onnx.export: the model does not run when dynamic axis {sym!r} changes size, so it "
                    f"cannot be exported with that axis dynamic: {'; '.join(errors)}")


class _Exporter:
    def __init__(self, base, variants, dyn, in_names, opset, state_names, buffer_names):
        self.tr, self.g = base, base.graph
        self.variants, self.dyn, self.in_names, self.opset = variants, dyn, in_names, opset
        self.state_names, self.buffer_names = state_names, buffer_names
        self.nodes, self.inits, self.names = [], [], {}
        self.sym_cache: dict = {}
        self._n = 0
        self._check_alignment()

    # -- naming ------------------------------------------------------------------------------
    def fresh(self, hint: str = "t") -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def x(self, a) -> str:
        """The ONNX name of a node argument: a Var, or a typed scalar made a constant."""
        if type(a) is Var:
            name = self.names.get(a.id)
            if name is None:
                if a.const is None:
                    raise OnnxError(f"ember.onnx.export: internal: value {a} used before it is defined")
                name = self.names[a.id] = self.const(a.const)
            return name
        return self.const(np.asarray(a))

    def const(self, arr) -> str:
        name = self.fresh("const")
        self.nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(arr), name)))
        return name

    def emit(self, op_type: str, inputs: list, **attrs) -> str:
        out = self.fresh(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def ints(self, values) -> str:
        """An int64 1-D tensor of ``values``; ``Sym`` entries are computed from input shapes."""
        values = list(values)
        if not any(isinstance(v, Sym) for v in values):
            return self.const(np.array(values, np.int64))
        parts = [self.sym(v) if isinstance(v, Sym) else self.const(np.array([v], np.int64)) for v in values]
        return self.emit("Concat", parts, axis=0)

    def sym(self, s: Sym) -> str:
        if s.axis is None:
            raise OnnxError(f"ember.onnx.export: {s.what}; make only one of those axes dynamic")
        key = (s.a, s.b, s.axis)
        if key not in self.sym_cache:
            i, d = s.axis
            y = self.emit("Shape", [self.in_names[i]], start=d, end=d + 1)
            if s.a != 1:
                y = self.emit("Mul", [y, self.const(np.array([s.a], np.int64))])
            if s.b:
                y = self.emit("Add", [y, self.const(np.array([s.b], np.int64))])
            self.sym_cache[key] = y
        return self.sym_cache[key]

    # -- dynamic axes ------------------------------------------------------------------------
    def _check_alignment(self):
        ops = [n.op.name for n in self.g.nodes]
        for sym, ((tr, _)) in self.variants.items():
            other = [n.op.name for n in tr.graph.nodes]
            if other != ops:
                raise OnnxError(f"ember.onnx.export: the model runs different ops when dynamic axis {sym!r} "
                                f"changes size (Python control flow on a shape), so that axis cannot be dynamic")

    def _symbolize(self, base, others, where: str):
        """``base`` with ints that differ in the resized traces replaced by ``Sym``."""
        if isinstance(base, (tuple, list)):
            return type(base)(self._symbolize(b, [o[k] for o in others], where) for k, b in enumerate(base))
        if isinstance(base, slice):
            parts = [self._symbolize(getattr(base, f), [getattr(o, f) for o in others], where)
                     for f in ("start", "stop", "step")]
            return slice(*parts)
        if isinstance(base, (int, np.integer)) and not isinstance(base, (bool, ArgRef)):
            sym = None
            for (name, (_, delta)), o in zip(self.variants.items(), others):
                if o != base:
                    if sym is not None:  # a product of two dynamic axes: fine as reshape's -1 only
                        return Sym(0, 0, None, f"{where}: a size that depends on two dynamic axes")
                    sym = (name, (o - base) // delta)
            if sym is None:
                return base
            name, a = sym
            i, d = self.dyn[name][0]
            size = self.tr_in_shape(i)[d]
            return Sym(a, int(base) - a * size, (i, d))
        if isinstance(base, np.ndarray) or isinstance(base, (float, np.floating)):
            return base
        return base

    def tr_in_shape(self, i):
        return self.g.inputs[i].shape

    def node_params(self, k: int) -> dict:
        n = self.g.nodes[k]
        if not self.variants:
            return n.params
        others = [tr.graph.nodes[k] for tr, _ in self.variants.values()]
        for j, a in enumerate(n.args):
            bs = [o.args[j] for o in others]
            if type(a) is Var and a.const is not None and any(a.const.shape != b.const.shape for b in bs):
                if a.id not in self.names and all(_uniform(c) for c in [a.const] + [b.const for b in bs]):
                    # zeros(B, H) & co.: a fill value expanded to a shape computed from the input
                    shape = self._symbolize(a.const.shape, [b.const.shape for b in bs], n.op.name)
                    fill = self.const(a.const.reshape(-1)[:1].reshape(()))
                    self.names[a.id] = self.emit("Expand", [fill, self.ints(shape)])
                if a.id not in self.names:
                    raise OnnxError(f"ember.onnx.export: op {n.op.name!r} reads a constant of shape {a.const.shape} "
                                    f"made inside the model whose shape changes with a dynamic axis (an arange or "
                                    f"mask sized by the input); that axis cannot be dynamic")
            if type(a) is not Var and any(a != b for b in bs):
                raise OnnxError(f"ember.onnx.export: op {n.op.name!r} takes the Python number {a!r}, which "
                                f"changes with a dynamic axis; compute it with tensor ops or keep the axis static")
        return {key: self._symbolize(v, [o.params[key] for o in others], n.op.name) for key, v in n.params.items()}

    def out_dims(self, k: int, v: Var) -> list:
        """Output dims as ints or symbol names (for the graph's declared output shapes)."""
        if not self.variants:
            return list(v.shape)
        dims = list(v.shape)
        for name, (tr, _) in self.variants.items():
            ov = tr.graph.outputs[k]
            for j, (a, b) in enumerate(zip(v.shape, ov.shape)):
                if a != b:
                    i, d = self.dyn[name][0]
                    dims[j] = name if a == self.g.inputs[i].shape[d] else None
        return dims

    # -- the graph ------------------------------------------------------------------------------
    def build(self, output_names) -> onnx.ModelProto:
        g, tr = self.g, self.tr
        graph_inputs = []
        for i, v in enumerate(g.inputs[:tr.n_args]):
            self.names[v.id] = self.in_names[i]
            dims = list(v.shape)
            for sym, axes in self.dyn.items():
                for ii, d in axes:
                    if ii == i:
                        dims[d] = sym
            graph_inputs.append(helper.make_tensor_value_info(self.in_names[i], onnx_type(v.dtype), dims))
        used = set()
        for c in tr.captures:
            arr = c.read()
            if arr is None:
                continue
            key = self.state_names.get(id(arr)) or self.state_names.get(id(getattr(c.ref, "_data", None)))
            name = key if key and key not in used else self.fresh("tensor")
            used.add(name)
            self.names[c.var.id] = name
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        missing = sorted({n.op.name for n in g.nodes if n.op.name not in EXPORT})
        if missing:
            raise UnsupportedOperatorError(
                f"ember.onnx.export: op(s) {', '.join(missing)} have no ONNX form in ember's export table; "
                f"rewrite the model without them (or add an entry to ember/onnx/export_ops.py)")
        for k, n in enumerate(g.nodes):
            out = EXPORT[n.op.name](self, n, self.node_params(k))
            self.names[n.out.id] = out
        n_out = len(_leaves_count(tr.out_tree))
        outs = g.outputs[:n_out]
        out_names = list(output_names) if output_names else (["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)])
        if len(out_names) != n_out:
            raise OnnxError(f"ember.onnx.export: {len(out_names)} output_names for {n_out} outputs")
        graph_outputs = []
        for k, (v, name) in enumerate(zip(outs, out_names)):
            self.nodes.append(helper.make_node("Identity", [self.x(v)], [name]))
            graph_outputs.append(helper.make_tensor_value_info(name, onnx_type(v.dtype), self.out_dims(k, v)))
        graph = helper.make_graph(self.nodes, "ember", graph_inputs, graph_outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="ember", producer_version=_version())
        bufs = sorted(self.buffer_names & {t.name for t in self.inits})
        if bufs:
            helper.set_model_props(model, {BUFFERS_KEY: ",".join(bufs)})
        model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases of the last years
        return model


def _uniform(a: np.ndarray) -> bool:
    return a.size > 0 and bool(np.all(a == a.reshape(-1)[0]))


def _leaves_count(tree) -> list:
    if type(tree) is Var:
        return [tree]
    if isinstance(tree, (tuple, list)):
        return [v for x in tree for v in _leaves_count(x)]
    if isinstance(tree, dict):
        return [v for x in tree.values() for v in _leaves_count(x)]
    return []


def _version() -> str:
    from .. import __version__
    return __version__


def _write_atomic(proto: onnx.ModelProto, path) -> None:
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
