"""Loss functions (PyTorch's names, arguments and reduction semantics).

Reductions: "mean" (weighted mean where a loss takes class weights), "sum", "none".
Cross-entropy over class indices runs as one fused op (``ops.nnops.cross_entropy``)."""
from __future__ import annotations

import warnings

from ...errors import ShapeError
from ...ops import elementwise as E
from ...ops import nnops
from ...ops.movement import gather
from ...tensor import Tensor

__all__ = ["cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(name: str, reduction: str, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"{name}: reduction must be one of {', '.join(map(repr, allowed))}, "
                         f"got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _class_setup(name: str, input: Tensor, target: Tensor, weight: Tensor | None,
                 ignore_index: int):
    """Validate (N, C, d1...) input against integer (N, d1...) targets. Returns the class axis,
    targets with ignored entries replaced by 0, and per-element coefficients (class weight, 0
    where ignored)."""
    if input.ndim == 0:
        raise ShapeError(f"{name}: input must have a class dimension, got a 0-d tensor")
    axis = 1 if input.ndim >= 2 else 0
    c = input.shape[axis]
    expect = tuple(input.shape[:axis]) + tuple(input.shape[axis + 1:])
    if tuple(target.shape) != expect:
        raise ShapeError(f"{name}: input of shape {tuple(input.shape)} (classes in dim {axis}) needs "
                         f"class-index targets of shape {expect}, got {tuple(target.shape)}")
    if weight is not None and tuple(weight.shape) != (c,):
        raise ShapeError(f"{name}: weight must have shape ({c},), one entry per class, got "
                         f"{tuple(weight.shape)}")
    nnops.check_index_range(target, c, f"{name}: target", "classes", ignore=ignore_index)
    keep = target != ignore_index
    safe = E.where(keep, target, 0)
    coef = keep.to(input.dtype)
    if weight is not None:
        coef = weight.detach().to(input.dtype)[safe] * coef
    return axis, safe, coef


def cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy of logits ``input`` (N, C, d1...) against class indices (N, d1...) or class
    probabilities (same shape as input). ``F.cross_entropy(logits, labels)``."""
    name = "cross_entropy"
    _check_reduction(name, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not input.dtype.is_floating_point:
        raise ShapeError(f"{name}: logits must be floating point, got {input.dtype.name}")
    if target.dtype.is_floating_point:
        return _cross_entropy_probs(input, target, weight, reduction, label_smoothing)
    axis, safe, coef = _class_setup(name, input, target, weight, ignore_index)
    loss = nnops.cross_entropy_(input, safe, coef, axis=axis)
    if label_smoothing > 0:
        c = input.shape[axis]
        logp = nnops.log_softmax_(input, axis=axis)
        if weight is not None:
            shape = [1] * input.ndim
            shape[axis] = c
            logp = logp * weight.detach().to(input.dtype).reshape(shape)
        smooth = -logp.sum(dim=axis) * (coef != 0)
        loss = loss * (1 - label_smoothing) + smooth * (label_smoothing / c)
    if reduction == "mean":  # weighted mean: divide by the summed weights of the kept targets
        return loss.sum() / coef.sum()
    return _reduce(loss, reduction)


def _cross_entropy_probs(input, target, weight, reduction, label_smoothing):
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"cross_entropy: class-probability targets must have the input's shape "
                         f"{tuple(input.shape)}, got {tuple(target.shape)}")
    axis = 1 if input.ndim >= 2 else 0
    c = input.shape[axis]
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / c
    q = target.to(input.dtype)
    if weight is not None:
        shape = [1] * input.ndim
        shape[axis] = c
        q = q * weight.to(input.dtype).reshape(shape)
    loss = -(nnops.log_softmax_(input, axis=axis) * q).sum(dim=axis)
    if reduction == "mean":  # PyTorch divides by the number of samples, not the weight sum
        return loss.sum() / max(input.numel() // c, 1) if input.numel() else loss.sum() * float("nan")
    return _reduce(loss, reduction)


def nll_loss(input: Tensor, target: Tensor, weight: Tensor | None = None, ignore_index: int = -100,
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C, d1...) at class indices.
    ``F.nll_loss(F.log_softmax(x, 1), labels)``."""
    _check_reduction("nll_loss", reduction)
    axis, safe, coef = _class_setup("nll_loss", input, target, weight, ignore_index)
    loss = -gather(input, axis, safe.unsqueeze(axis)).squeeze(axis) * coef
    if reduction == "mean":
        return loss.sum() / coef.sum()
    return _reduce(loss, reduction)


def _pair(name: str, input: Tensor, target: Tensor, reduction: str) -> Tensor:
    _check_reduction(name, reduction)
    if tuple(target.shape) != tuple(input.shape):
        # PyTorch broadcasts here too, but an (N, 1) vs (N,) mix-up is usually a bug: say so.
        warnings.warn(f"{name}: target shape {tuple(target.shape)} differs from input shape "
                      f"{tuple(input.shape)}; they will be broadcast, which is likely not intended",
                      stacklevel=3)
    return input - target


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Squared error. ``F.mse_loss(pred, y)``."""
    d = _pair("mse_loss", input, target, reduction)
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """Absolute error. ``F.l1_loss(pred, y)``."""
    return _reduce(_pair("l1_loss", input, target, reduction).abs(), reduction)


def smooth_l1_loss(input: Tensor, target: Tensor, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta. ``F.smooth_l1_loss(pred, y, beta=0.5)``."""
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    d = _pair("smooth_l1_loss", input, target, reduction)
    a = d.abs()
    if beta == 0:
        return _reduce(a, reduction)
    return _reduce(E.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input: Tensor, target: Tensor, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta). ``F.huber_loss(pred, y)``."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    d = _pair("huber_loss", input, target, reduction)
    a = d.abs()
    return _reduce(E.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta), reduction)


def _clamped_log(x: Tensor) -> Tensor:
    """max(log(x), -100) as PyTorch's BCE uses, with finite gradients at x = 0."""
    pos = x > 0
    return E.where(pos, E.where(pos, x, 1.0).log(), -100.0).clamp(min=-100.0)


def binary_cross_entropy(input: Tensor, target: Tensor, weight: Tensor | None = None,
                         reduction: str = "mean") -> Tensor:
    """-(y log p + (1 - y) log(1 - p)) for probabilities p in [0, 1]; logs clamped at -100.
    ``F.binary_cross_entropy(torch.sigmoid(x), y)``; prefer the stabler ``..._with_logits``."""
    _check_reduction("binary_cross_entropy", reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"binary_cross_entropy: target shape {tuple(target.shape)} must equal input "
                         f"shape {tuple(input.shape)}")
    if ((input.detach() < 0) | (input.detach() > 1)).any().item():
        raise ValueError("binary_cross_entropy: input values must be probabilities in [0, 1]; apply "
                         "sigmoid first, or use binary_cross_entropy_with_logits on the raw logits")
    loss = -(target * _clamped_log(input) + (1 - target) * _clamped_log(1 - input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor, weight: Tensor | None = None,
                                     reduction: str = "mean", pos_weight: Tensor | None = None) -> Tensor:
    """Sigmoid + binary cross-entropy in one stable expression (no overflow for large logits).
    ``F.binary_cross_entropy_with_logits(logits, y, pos_weight=w)``."""
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    if tuple(target.shape) != tuple(input.shape):
        raise ShapeError(f"binary_cross_entropy_with_logits: target shape {tuple(target.shape)} must "
                         f"equal input shape {tuple(input.shape)}")
    # softplus(-x) = relu(-x) + log1p(exp(-|x|)); -|x| written as a where so the gradient at 0 is
    # the true -1/2 (abs's subgradient 0 would give 0 there).
    neg_abs = E.where(input < 0, input, -input)
    softplus_neg = (-input).relu() + neg_abs.exp().log1p()
    if pos_weight is not None:
        softplus_neg = softplus_neg * ((pos_weight - 1) * target + 1)
    loss = (1 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def kl_div(input: Tensor, target: Tensor, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL(target || exp(input)) pointwise, with ``input`` log-probabilities. Use
    ``reduction="batchmean"`` for the true KL divergence per sample. ``F.kl_div(logq, p, "batchmean")``."""
    _check_reduction("kl_div", reduction, _REDUCTIONS + ("batchmean",))
    if log_target:
        loss = target.exp() * (target - input)
    else:
        pos = target > 0  # 0 * log 0 = 0, as in PyTorch's xlogy
        loss = E.where(pos, target * E.where(pos, target, 1.0).log(), 0.0) - target * input
    if reduction == "batchmean":
        return loss.sum() / (input.shape[0] if input.ndim else 1)
    return _reduce(loss, reduction)
