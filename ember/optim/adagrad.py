"""Adagrad (with learning-rate decay, initial accumulator, weight decay, maximize)."""
from __future__ import annotations

from typing import Iterable

from ..autograd import no_grad
from ..creation import full_like, zeros
from ..tensor import Tensor
from .optimizer import Optimizer, OptimizerStateError

__all__ = ["Adagrad"]


class Adagrad(Optimizer):
    r"""Adagrad, as ``torch.optim.Adagrad``.

    .. code-block:: text

        sum = initial_accumulator_value                 (for every parameter, at construction)
        for t = 1 ... :
            g = -grad if maximize else grad
            if weight_decay != 0:  g = g + weight_decay * p
            clr = lr / (1 + (t - 1) * lr_decay)
            sum = sum + g * g
            p = p - clr * g / (sqrt(sum) + eps)

    Example: opt = ember.optim.Adagrad(model.parameters(), lr=1e-2, lr_decay=1e-4)
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0, eps: float = 1e-10,
                 *, maximize: bool = False):
        for name, v in (("learning rate", lr), ("lr_decay", lr_decay), ("weight_decay", weight_decay),
                        ("initial_accumulator_value", initial_accumulator_value), ("eps", eps)):
            if v < 0.0:
                raise OptimizerStateError(f"Adagrad: invalid {name} {v}; it must be >= 0")
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      maximize=maximize))
        # As in PyTorch, the accumulators exist from the start (they hold the initial value).
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p] = {"step": zeros(()), "sum": full_like(p, group["initial_accumulator_value"])}

    @no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, lr_decay, eps = group["lr"], group["lr_decay"], group["eps"]
            weight_decay, maximize = group["weight_decay"], group["maximize"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                s = state.get(p)
                if s is None:  # a group added after construction
                    s = state[p] = {"step": zeros(()), "sum": full_like(p, group["initial_accumulator_value"])}
                step = s["step"].add_(1)
                if maximize:
                    g = -g
                if weight_decay != 0:
                    g = g + p * weight_decay
                # A tensor step keeps the decayed rate right in a traced step.
                clr = lr if lr_decay == 0 else lr / ((step.double() - 1) * lr_decay + 1)
                state_sum = s["sum"].addcmul_(g, g)
                p.sub_(g / state_sum.sqrt().add_(eps) * clr)
        return loss
