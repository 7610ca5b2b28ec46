"""Layout rewrites: compute a value directly in the memory layout its readers want.

- ``permute(matmul(a, b), (1, 0))`` -> ``matmul(permute(b), permute(a))``: a weight gradient
  ``(x.T @ g).T`` comes out of BLAS contiguous (transposed operands are free views for BLAS)
  instead of as a transposed view that every later reader (the optimizer's fused kernel, the
  ``.grad`` write-back) must copy. Same math; BLAS may round the last bit differently.

>>> g = rewrite(g, RULES)
"""
from __future__ import annotations

from ...ops import linalg as L
from ...ops import movement as M
from . import rule

RULES: dict = {}


@rule(RULES, "permute")
def transposed_product(n, rw):
    if n.params["axes"] != (1, 0):
        return None
    mm = rw.prod(n.args[0], "matmul")
    if mm is None or rw.uses.get(mm.out.id, 0) != 1:  # another reader needs the product as is
        return None
    a, b = mm.args
    if len(a.shape) != 2 or len(b.shape) != 2:
        return None
    return rw.emit(L.matmul_, _t(b, rw), _t(a, rw))


def _t(x, rw):
    """x transposed, seeing through a transpose that made x."""
    inner = rw.prod(x, "permute")
    if inner is not None and inner.params["axes"] == (1, 0):
        return inner.args[0]
    return rw.emit(M.permute_, x, axes=(1, 0))
