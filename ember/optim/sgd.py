"""SGD with momentum, dampening, Nesterov momentum, weight decay and maximize."""
from __future__ import annotations

from typing import Iterable

from ..autograd import no_grad
from ..tensor import Tensor
from .optimizer import Optimizer, OptimizerStateError

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), as ``torch.optim.SGD``.

    .. code-block:: text

        for t = 1 ... :
            g = -grad if maximize else grad
            if weight_decay != 0:  g = g + weight_decay * p
            if momentum != 0:
                b = g                                       (t = 1)
                b = momentum * b + (1 - dampening) * g      (t > 1)
                g = g + momentum * b  if nesterov else  b
            p = p - lr * g

    Example: opt = ember.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False):
        if lr < 0.0:
            raise OptimizerStateError(f"SGD: invalid learning rate {lr}; it must be >= 0")
        if momentum < 0.0:
            raise OptimizerStateError(f"SGD: invalid momentum {momentum}; it must be >= 0")
        if weight_decay < 0.0:
            raise OptimizerStateError(f"SGD: invalid weight_decay {weight_decay}; it must be >= 0")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise OptimizerStateError(f"SGD: Nesterov momentum requires momentum > 0 and dampening = 0, "
                                      f"got momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = self._closure_loss(closure)
        state = self.state
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if maximize:
                    g = -g
                if weight_decay != 0:
                    g = g + p * weight_decay
                if momentum != 0:
                    s = state.get(p)
                    if s is None:
                        buf = g.clone()
                        state[p] = {"momentum_buffer": buf}
                    else:
                        buf = s["momentum_buffer"]
                        buf.mul_(momentum).add_(g, alpha=1 - dampening)
                    g = g + buf * momentum if nesterov else buf
                p.add_(g, alpha=-lr)
        return loss
