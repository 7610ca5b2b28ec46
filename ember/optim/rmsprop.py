"""RMSprop (with momentum, centered variant, weight decay, maximize)."""
from __future__ import annotations

from typing import Iterable

from ..autograd import no_grad
from ..creation import zeros, zeros_like
from ..tensor import Tensor
from .optimizer import Optimizer, OptimizerStateError

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    r"""RMSprop, as ``torch.optim.RMSprop``.

    .. code-block:: text

        for t = 1 ... :
            g = -grad if maximize else grad
            if weight_decay != 0:  g = g + weight_decay * p
            v = alpha * v + (1 - alpha) * g * g
            if centered:  a = lerp(a, g, 1 - alpha);  avg = sqrt(v - a * a) + eps
            else:         avg = sqrt(v) + eps
            if momentum > 0:  b = momentum * b + g / avg;  p = p - lr * b
            else:             p = p - lr * g / avg

    Example: opt = ember.optim.RMSprop(model.parameters(), lr=1e-2, alpha=0.99, centered=True)
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, *, maximize: bool = False):
        for name, v in (("learning rate", lr), ("eps", eps), ("momentum", momentum),
                        ("weight_decay", weight_decay), ("alpha", alpha)):
            if v < 0.0:
                raise OptimizerStateError(f"RMSprop: invalid {name} {v}; it must be >= 0")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, alpha, eps, weight_decay = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
            momentum, centered, maximize = group["momentum"], group["centered"], group["maximize"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                s = state.get(p)
                if s is None:
                    s = state[p] = {"step": zeros(()), "square_avg": zeros_like(p)}
                    if momentum > 0:
                        s["momentum_buffer"] = zeros_like(p)
                    if centered:
                        s["grad_avg"] = zeros_like(p)
                s["step"].add_(1)
                if maximize:
                    g = -g
                if weight_decay != 0:
                    g = g + p * weight_decay
                square_avg = s["square_avg"]
                square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
                if centered:
                    grad_avg = s["grad_avg"].lerp_(g, 1 - alpha)
                    avg = (square_avg - grad_avg * grad_avg).sqrt_()
                else:
                    avg = square_avg.sqrt()
                avg.add_(eps)
                if momentum > 0:
                    buf = s["momentum_buffer"]
                    buf.mul_(momentum).addcdiv_(g, avg)
                    p.add_(buf, alpha=-lr)
                else:
                    p.sub_(g / avg * lr)
        return loss
