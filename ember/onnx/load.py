"""``ember.onnx.load``: an ONNX file as an ember Module whose initializers are Parameters.

Floating-point initializers become Parameters (so an imported model fine-tunes), the others
buffers; an ember export marks its buffers (running statistics) so they come back as buffers.
Dotted initializer names become nested submodules, so an ember model's exported state_dict keys
survive the round trip: ``load("m.onnx").state_dict().keys() == model.state_dict().keys()``.
"""
from __future__ import annotations

import re

import onnx

from ..nn.module import Module
from ..nn.parameter import Parameter
from .backend import as_tensors, check_supported, initializers, model_opset, read_model, run_graph
from .import_ops import const

BUFFERS_KEY = "ember.buffers"  # metadata_props entry: comma-separated buffer names


class OnnxModule(Module):
    """An ONNX graph run by ember's backend. ``OnnxModule(onnx.load("m.onnx"))(x)``."""

    def __init__(self, model: onnx.ModelProto):
        super().__init__()
        object.__setattr__(self, "_proto", model)
        object.__setattr__(self, "_opset", model_opset(model))
        check_supported(model.graph)
        props = {p.key: p.value for p in model.metadata_props}
        buffers = set(filter(None, props.get(BUFFERS_KEY, "").split(",")))
        paths = {}
        for name, arr in initializers(model.graph).items():
            path = _path(name)
            owner = self._owner(path[:-1])
            if owner is None or path[-1] in owner._modules or path[-1] in owner._parameters or path[-1] in owner._buffers:
                path = (re.sub(r"\W", "_", name) or "_",)  # a clash: keep it flat
                owner = self
            t = const(arr.copy())
            if arr.dtype.kind == "f" and name not in buffers:
                owner.register_parameter(path[-1], Parameter(t))
            else:
                owner.register_buffer(path[-1], t)
            paths[name] = path
        object.__setattr__(self, "_paths", paths)

    def _owner(self, prefix: tuple):
        mod = self
        for part in prefix:
            if part in mod._parameters or part in mod._buffers:
                return None
            if part not in mod._modules:
                mod.add_module(part, Module())
            mod = mod._modules[part]
        return mod

    def forward(self, *inputs):
        graph = self._proto.graph
        env = as_tensors(graph, list(inputs), skip=set(self._paths))
        for name, path in self._paths.items():
            mod = self
            for part in path[:-1]:
                mod = mod._modules[part]
            env[name] = getattr(mod, path[-1])
        outs = run_graph(graph, env, self._opset)
        return outs[0] if len(outs) == 1 else tuple(outs)

    @property
    def input_names(self) -> list:
        return [i.name for i in self._proto.graph.input if i.name not in self._paths]

    @property
    def output_names(self) -> list:
        return [o.name for o in self._proto.graph.output]

    def extra_repr(self) -> str:
        return f"opset={self._opset}, nodes={len(self._proto.graph.node)}, inputs={self.input_names}"


def _path(name: str) -> tuple:
    return tuple(re.sub(r"\W", "_", p) or "_" for p in name.split("."))


def load(path) -> OnnxModule:
    """Read an ONNX file (or bytes / ModelProto) as an ember Module.

    Example: model = ember.onnx.load("model.onnx"); logits = model(x)
    """
    return OnnxModule(read_model(path))


__all__ = ["OnnxModule", "load"]
