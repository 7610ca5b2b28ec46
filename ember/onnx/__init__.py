"""ONNX interoperability: ``export`` an ember model or function, ``load`` an ONNX file as an ember
Module (initializers become Parameters, so it fine-tunes), ``run`` a model with ember's backend.

Needs the ``onnx`` package (``pip install ember[onnx]``); onnxruntime is only used by the tests.

Example:
    ember.onnx.export(model, (x,), "model.onnx", dynamic_axes={"input": {0: "batch"}})
    m = ember.onnx.load("model.onnx"); y = m(x)
"""
from __future__ import annotations

try:
    import onnx  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    from ..errors import EmberError
    raise EmberError("ember.onnx needs the onnx package: pip install onnx (or ember[onnx])") from e

from .backend import MAX_OPSET, run
from .errors import OnnxError, OpsetError, UnsupportedOperatorError
from .export import export
from .import_ops import OPS
from .load import OnnxModule, load

SUPPORTED_OPERATORS = sorted(OPS)

__all__ = ["export", "load", "run", "OnnxModule", "OnnxError", "OpsetError", "UnsupportedOperatorError",
           "SUPPORTED_OPERATORS", "MAX_OPSET"]
