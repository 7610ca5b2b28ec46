"""Numerically stable forms: rewrites that change rounding but avoid overflow and
cancellation (log of a softmax, log-sum-exp, log(1+x), log of a sigmoid).

>>> g = rewrite(g, RULES)
"""
from __future__ import annotations

from ...ops import elementwise as E
from ...ops import movement as M
from ...ops import reduce as Rd
from ..graph import Var
from . import rule, scalar_value

RULES: dict = {}


@rule(RULES, "log")
def log_of_softmax(n, rw):
    """log(exp(z) / s) -> z - log(s): a softmax's log never underflows to log(0)."""
    d = rw.prod(n.args[0], "div")
    if d is None:
        return None
    e = rw.prod(d.args[0], "exp")
    if e is None or e.out.shape != n.out.shape or type(d.args[1]) is not Var:
        return None
    return rw.emit(E.sub, e.args[0], rw.emit(E.log, d.args[1]))


@rule(RULES, "log")
def log_sum_exp(n, rw):
    """log(sum(exp(x))) -> log(sum(exp(x - m))) + m with m = max(x) (finite where possible)."""
    s = rw.prod(n.args[0], "sum")
    e = rw.prod(s.args[0], "exp") if s is not None else None
    if e is None:
        return None
    x, axis, keep = e.args[0], s.params.get("axis"), s.params.get("keepdims", False)
    m = rw.emit(Rd.max_, x, axis=axis, keepdims=True)
    m = rw.emit(E.where, rw.emit(E.isfinite, m), m, x.dtype.type(0))
    t = rw.emit(Rd.sum_, rw.emit(E.exp, rw.emit(E.sub, x, m)), axis=axis, keepdims=True)
    out = rw.emit(E.add, rw.emit(E.log, t), m)
    return out if keep else rw.emit(M.reshape_, out, shape=n.out.shape)


@rule(RULES, "log")
def log_one_plus(n, rw):
    """log(1 + x) -> log1p(x): exact for small x."""
    a = rw.prod(n.args[0], "add")
    if a is None:
        return None
    p, q = a.args
    for one, x in ((p, q), (q, p)):
        if scalar_value(one) == 1 and type(x) is Var and x.shape == n.out.shape:
            return rw.emit(E.log1p, x)


def _softplus(rw, z):
    """log(1 + exp(z)) = relu(z) + log1p(exp(-|z|)), finite for every z."""
    return rw.emit(E.add, rw.emit(E.relu, z), rw.emit(E.log1p, rw.emit(E.exp, rw.emit(E.neg, rw.emit(E.abs, z)))))


@rule(RULES, "log")
def log_of_sigmoid(n, rw):
    """log(sigmoid(x)) -> -softplus(-x); log(1 - sigmoid(x)) -> -softplus(x) (sigmoid
    cross-entropy in its stable form)."""
    s = rw.prod(n.args[0], "sigmoid")
    if s is not None:
        return rw.emit(E.neg, _softplus(rw, rw.emit(E.neg, s.args[0])))
    d = rw.prod(n.args[0], "sub")
    if d is not None and scalar_value(d.args[0]) == 1:
        s = rw.prod(d.args[1], "sigmoid")
        if s is not None and s.out.shape == n.out.shape:
            return rw.emit(E.neg, _softplus(rw, s.args[0]))
