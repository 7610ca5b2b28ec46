"""Clip gradients in place, by their total norm or elementwise by value."""
from __future__ import annotations

from typing import Iterable

from ...autograd import no_grad
from ...creation import tensor
from ...errors import EmberError
from ...ops import clamp, norm, stack
from ...tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _grads(parameters: Tensor | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p.grad for p in parameters if p.grad is not None]


@no_grad()
def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint ``norm_type``-norm is at most
    ``max_norm``; returns the norm before clipping (a 0-d tensor).

    Example: clip_grad_norm_(model.parameters(), max_norm=1.0)
    """
    grads = _grads(parameters)
    if not grads:
        return tensor(0.0)
    norm_type = float(norm_type)
    total = norm(stack([norm(g.reshape(-1), norm_type) for g in grads]), norm_type)
    if error_if_nonfinite and not total.isfinite().item():
        raise EmberError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is "
                         f"{total.item()}, so they cannot be clipped; find the nan/inf gradient "
                         f"(ember.detect_anomaly()), or pass error_if_nonfinite=False")
    # Like PyTorch: always multiply (by at most 1), so no data-dependent branch for a tracer.
    coef = clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype))
    return total


@no_grad()
def clip_grad_value_(parameters: Tensor | Iterable[Tensor], clip_value: float) -> None:
    """Clamp every gradient element into [-clip_value, clip_value], in place.

    Example: clip_grad_value_(model.parameters(), clip_value=0.5)
    """
    clip_value = float(clip_value)
    for g in _grads(parameters):
        g.clamp_(-clip_value, clip_value)
