"""Adam (with AMSGrad, L2 or decoupled weight decay, maximize)."""
from __future__ import annotations

from typing import Iterable

from ..autograd import no_grad
from ..creation import zeros, zeros_like
from ..ops import maximum
from ..tensor import Tensor
from .optimizer import Optimizer, OptimizerStateError

__all__ = ["Adam"]


class Adam(Optimizer):
    r"""Adam, as ``torch.optim.Adam``.

    .. code-block:: text

        for t = 1 ... :
            g = -grad if maximize else grad
            if decoupled (AdamW):        p = p * (1 - lr * weight_decay)
            elif weight_decay != 0:      g = g + weight_decay * p
            m = lerp(m, g, 1 - beta1)                  # m = beta1 m + (1 - beta1) g
            v = beta2 * v + (1 - beta2) * g * g
            if amsgrad:  v_max = max(v_max, v);  v_hat = v_max  else  v_hat = v
            denom = sqrt(v_hat) / sqrt(1 - beta2^t) + eps
            p = p - lr / (1 - beta1^t) * m / denom

    Example: opt = ember.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    """

    _decoupled = False  # AdamW sets it: weight decay shrinks p instead of adding to g

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, maximize: bool = False):
        name = type(self).__name__
        if lr < 0.0:
            raise OptimizerStateError(f"{name}: invalid learning rate {lr}; it must be >= 0")
        if eps < 0.0:
            raise OptimizerStateError(f"{name}: invalid eps {eps}; it must be >= 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise OptimizerStateError(f"{name}: invalid betas {betas}; both must be in [0, 1)")
        if weight_decay < 0.0:
            raise OptimizerStateError(f"{name}: invalid weight_decay {weight_decay}; it must be >= 0")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    @no_grad()
    def step(self, closure=None):
        """Update every parameter that has a gradient; returns ``closure()`` if given."""
        loss = self._closure_loss(closure)
        state, decoupled = self.state, self._decoupled
        for group in self.param_groups:
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            weight_decay, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                s = state.get(p)
                if s is None:
                    s = state[p] = {"step": zeros(()), "exp_avg": zeros_like(p), "exp_avg_sq": zeros_like(p)}
                    if amsgrad:
                        s["max_exp_avg_sq"] = zeros_like(p)
                if maximize:
                    g = -g
                if weight_decay != 0:
                    if decoupled:
                        p.mul_(1 - lr * weight_decay)
                    else:
                        g = g + p * weight_decay
                # The step count is a tensor (as in PyTorch) and the bias corrections are ember ops
                # in float64, so a traced step stays right at every step count.
                step = s["step"].add_(1).double()
                exp_avg, exp_avg_sq = s["exp_avg"], s["exp_avg_sq"]
                exp_avg.lerp_(g, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                if amsgrad:
                    v = s["max_exp_avg_sq"].copy_(maximum(s["max_exp_avg_sq"], exp_avg_sq))
                else:
                    v = exp_avg_sq
                denom = (v.sqrt() / (1 - beta2 ** step).sqrt()).add_(eps)
                p.sub_(exp_avg / denom * (lr / (1 - beta1 ** step)))
        return loss
