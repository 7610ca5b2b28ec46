"""Cases for the nn primitives in ember/ops/nnops.py: log_softmax, cross_entropy and its
gradient op cross_entropy_backward (whose own vjp gives cross-entropy's double backward)."""
import numpy as np

import ember as em
from ember.ops import nnops
from opcases import Case

try:
    import torch
except ImportError:  # the sweep skips oracle checks without torch
    torch = None


def log_softmax_np(x, axis):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


def onehot_np(t, c, axis):
    return np.moveaxis(np.eye(c)[t], -1, axis)


def logits_and_targets(shape, axis):
    def make(rng):
        x = rng.standard_normal(shape) * 3
        t = rng.integers(0, shape[axis], size=shape[:axis] + shape[axis + 1:])
        return x, t
    return make


def coef_of(t):
    """Per-element weights 1 or 1.5 (stands in for class weights / the ignore mask)."""
    return 1.0 + 0.5 * (np.asarray(t) % 2)


def _ce_ember(axis):
    def f(x, t):
        coef = 1.0 + 0.5 * (t % 2).to(x.dtype)  # ember ops, so the case also traces under jit
        return nnops.cross_entropy_(x, t, coef, axis=axis)
    return f


def _ce_np(axis):
    def f(x, t):
        picked = np.take_along_axis(log_softmax_np(x, axis), np.expand_dims(t, axis), axis)
        return -picked.squeeze(axis) * coef_of(t)
    return f


def _ce_torch(axis):
    def f(x, t):
        picked = torch.log_softmax(x, axis).gather(axis, t.unsqueeze(axis)).squeeze(axis)
        return -picked * torch.tensor(coef_of(t.numpy()), dtype=x.dtype)
    return f if torch else None


def _ceb_np(axis):
    def f(x, t, g):
        p = np.exp(log_softmax_np(x, axis))
        return (p - onehot_np(t, x.shape[axis], axis)) * np.expand_dims(g, axis)
    return f


def _ceb_torch(axis):
    def f(x, t, g):
        oh = torch.nn.functional.one_hot(t, x.shape[axis]).movedim(-1, axis).to(x.dtype)
        return (torch.softmax(x, axis) - oh) * g.unsqueeze(axis)
    return f if torch else None


def _ceb_inputs(shape, axis):
    def make(rng):
        x, t = logits_and_targets(shape, axis)(rng)
        return x, t, rng.standard_normal(t.shape)
    return make


CE_SHAPES = [((4, 5), 1, "2d"), ((3, 4, 2), 1, "3d"), ((6,), 0, "1d")]

CASES = [
    Case("log_softmax", lambda x: nnops.log_softmax(x, 1), lambda rng: (rng.standard_normal((3, 5)) * 3,),
         numpy=lambda x: log_softmax_np(x, 1),
         torch=(lambda x: torch.log_softmax(x, 1)) if torch else None, name="dim1"),
    Case("log_softmax", lambda x: nnops.log_softmax(x, 0), lambda rng: (rng.standard_normal((4, 2, 3)),),
         numpy=lambda x: log_softmax_np(x, 0),
         torch=(lambda x: torch.log_softmax(x, 0)) if torch else None, name="dim0-3d"),
]
for shape, axis, tag in CE_SHAPES:
    CASES.append(Case("cross_entropy", _ce_ember(axis), logits_and_targets(shape, axis),
                      numpy=_ce_np(axis), torch=_ce_torch(axis), name=tag))
    CASES.append(Case("cross_entropy_backward",
                      lambda x, t, g, axis=axis: nnops.cross_entropy_backward_(x, t, g, axis=axis),
                      _ceb_inputs(shape, axis), numpy=_ceb_np(axis), torch=_ceb_torch(axis), name=tag))
