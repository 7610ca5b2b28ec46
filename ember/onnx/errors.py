"""Errors of ember.onnx: each names the file, node or op involved and what to do about it."""
from __future__ import annotations

from ..errors import EmberError


class OnnxError(EmberError, ValueError):
    """A model cannot be exported to, or read from, ONNX."""


class UnsupportedOperatorError(OnnxError):
    """An ONNX operator (import) or an ember op (export) has no counterpart on the other side."""


class OpsetError(OnnxError):
    """The model's opset is newer than ember knows, or the requested export opset is unsupported."""
