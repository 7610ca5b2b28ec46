"""ember's ONNX backend: read a ModelProto and run its graph with ember ops (import_ops.OPS).

Example: outputs = ember.onnx.run(onnx.load("model.onnx"), [x])
"""
from __future__ import annotations

import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from ..errors import DTypeError
from ..tensor import Tensor
from .errors import OnnxError, OpsetError, UnsupportedOperatorError
from .import_ops import OPS, NodeArgs, attr_value, const

MAX_OPSET = onnx.defs.onnx_opset_version()  # the newest opset of the installed onnx package
_DEFAULT = ("", "ai.onnx")


def read_model(source) -> onnx.ModelProto:
    """A ModelProto from a path, bytes or a ModelProto, checked: clear errors for files that are
    not ONNX, truncated files and opsets newer than ember knows."""
    if isinstance(source, onnx.ModelProto):
        model = source
    else:
        name = "bytes" if isinstance(source, (bytes, bytearray)) else os.fspath(source)
        data = bytes(source) if isinstance(source, (bytes, bytearray)) else None
        if data is None:
            if not os.path.exists(name):
                raise OnnxError(f"ember.onnx: no such file {name!r}")
            with open(name, "rb") as f:
                data = f.read()
        model = onnx.ModelProto()
        try:
            model.ParseFromString(data)
        except (DecodeError, RuntimeWarning, ValueError) as e:
            raise OnnxError(f"ember.onnx: {name} is not a valid ONNX model (truncated or another format): {e}") from None
        if not model.HasField("graph") or not model.opset_import:
            raise OnnxError(f"ember.onnx: {name} is not an ONNX model (no graph or opset found; "
                            f"{len(data)} bytes); export it with torch.onnx.export or ember.onnx.export")
    model_opset(model)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        raise OnnxError(f"ember.onnx: the ONNX checker rejects the model: {str(e).splitlines()[0]}") from None
    return model


def model_opset(model: onnx.ModelProto) -> int:
    """The default-domain opset, with a clear error when it is newer than this onnx/ember knows."""
    versions = [imp.version for imp in model.opset_import if imp.domain in _DEFAULT]
    if not versions:
        raise OnnxError("ember.onnx: the model imports no default-domain (ai.onnx) opset")
    v = max(versions)
    if v > MAX_OPSET:
        raise OpsetError(f"ember.onnx: the model uses opset {v}, newer than the newest ember knows "
                         f"({MAX_OPSET}, from onnx {onnx.__version__}); upgrade the onnx package or "
                         f"re-export the model with opset <= {MAX_OPSET}")
    return v


def unsupported_nodes(graph: onnx.GraphProto) -> list:
    """(op_type, node name) for every node the backend has no function for."""
    return [(n.op_type if n.domain in _DEFAULT else f"{n.domain}.{n.op_type}", n.name)
            for n in graph.node if n.domain not in _DEFAULT or n.op_type not in OPS]


def check_supported(graph: onnx.GraphProto) -> None:
    bad = unsupported_nodes(graph)
    if bad:
        ops = sorted({o for o, _ in bad})
        first = ", ".join(f"{o} (node {nm!r})" for o, nm in bad[:5])
        raise UnsupportedOperatorError(
            f"ember.onnx: operator(s) {', '.join(ops)} are not supported by ember's ONNX backend: {first}. "
            f"Supported: {len(OPS)} operators (ember.onnx.SUPPORTED_OPERATORS)")


def initializers(graph: onnx.GraphProto) -> dict:
    """name -> NumPy array of every initializer."""
    out = {}
    for t in graph.initializer:
        out[t.name] = numpy_helper.to_array(t)
    return out


def run_graph(graph: onnx.GraphProto, env: dict, opset: int) -> list:
    """Run the nodes (ONNX requires topological order) over ``env`` (name -> Tensor)."""
    for node in graph.node:
        ins = [env[x] if x else None for x in node.input]
        attrs = {a.name: attr_value(a) for a in node.attribute}
        if node.domain not in _DEFAULT or node.op_type not in OPS:
            check_supported(graph)
        n = NodeArgs(node.op_type, ins, attrs, opset, len(node.output), node.name)
        try:
            out = OPS[node.op_type](n)
        except (OnnxError, DTypeError):
            raise
        except Exception as e:
            raise OnnxError(f"ember.onnx: {node.op_type} node {node.name!r} failed on inputs of shape "
                            f"{[tuple(t.shape) if t is not None else None for t in ins]}: {type(e).__name__}: {e}") from e
        outs = out if isinstance(out, tuple) else (out,)
        for name, t in zip(node.output, outs):
            if name:
                env[name] = t
    return [env[o.name] for o in graph.output]


def as_tensors(graph: onnx.GraphProto, inputs, skip=()) -> dict:
    """Feeds (a list in graph-input order, or a dict by name) -> name -> Tensor."""
    names = [i.name for i in graph.input if i.name not in skip]
    if isinstance(inputs, dict):
        items = inputs.items()
    else:
        inputs = [inputs] if isinstance(inputs, (Tensor, np.ndarray)) else list(inputs)
        if len(inputs) > len(names):
            raise OnnxError(f"ember.onnx: the model takes {len(names)} input(s) ({', '.join(names)}), "
                            f"got {len(inputs)}")
        items = zip(names, inputs)
    env = {}
    for name, v in items:
        if name not in names:
            raise OnnxError(f"ember.onnx: the model has no input {name!r}; its inputs: {', '.join(names)}")
        env[name] = v if isinstance(v, Tensor) else const(np.asarray(v))
    missing = [n for n in names if n not in env]
    if missing:
        raise OnnxError(f"ember.onnx: missing input(s) {', '.join(missing)}")
    return env


def run(model, inputs) -> list:
    """Run an ONNX model (ModelProto, path or bytes) on ``inputs`` (list or dict of arrays/Tensors)
    with ember's backend; returns a list of ember Tensors.

    Example: (y,) = ember.onnx.run("mlp.onnx", [np.ones((2, 64), np.float32)])
    """
    model = read_model(model)
    opset = model_opset(model)
    check_supported(model.graph)
    init = initializers(model.graph)
    env = as_tensors(model.graph, inputs, skip=set(init))
    for k, v in init.items():
        env.setdefault(k, const(v))
    return run_graph(model.graph, env, opset)
