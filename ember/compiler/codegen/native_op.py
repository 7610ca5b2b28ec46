"""The base of the ops that generated C functions run in place of a node's registry kernel
(pool.py, bmm.py, scatter.py, xent.py, cat.py).

>>> node.op = BatchedMatmul(node.op, getattr(module, "p7"))
"""
from __future__ import annotations


class NativeOp:
    """A node's op computed by the generated C function ``fn``. It keeps the original op
    (``orig``: the subclasses hand it inputs it must reject, so its errors are raised) and its
    name, so the graph reads the same. Subclasses give ``cpu(*arrays, **params)``."""

    kind = "native"
    view = False

    def __init__(self, op, fn):
        self.orig, self.fn, self.name = op, fn, op.name

    def describe(self) -> str:
        return f"native.{self.name}"
