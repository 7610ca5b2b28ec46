"""Keras-style training: ``model.compile / fit / evaluate / predict / summary`` (nn.Module's
methods of those names delegate here), metrics, callbacks, progress display and History.

Example: model.compile("adam", "cross_entropy", ["accuracy"]); model.fit(x, y, epochs=5)
"""
from . import callbacks, metrics
from .fit import compile_model, evaluate, fit, predict
from .history import History
from .summary import summary

__all__ = ["compile_model", "fit", "evaluate", "predict", "summary", "History", "callbacks", "metrics"]
