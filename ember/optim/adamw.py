"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter)."""
from __future__ import annotations

from typing import Iterable

from ..tensor import Tensor
from .adam import Adam

__all__ = ["AdamW"]


class AdamW(Adam):
    r"""Adam whose weight decay shrinks the parameters directly, as ``torch.optim.AdamW``.

    .. code-block:: text

        p = p * (1 - lr * weight_decay)      then the Adam update of ember.optim.Adam
                                             (the gradient itself gets no decay term)

    Example: opt = ember.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    """

    _decoupled = True

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)
