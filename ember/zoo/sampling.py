"""Autoregressive sampling shared by the language models."""
from __future__ import annotations

import numpy as np

import ember
from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["generate"]


def generate(model, idx: Tensor, max_new_tokens: int, block_size: int, temperature: float = 1.0,
             top_k: int | None = None, generator: "ember.Generator | None" = None) -> Tensor:
    """Append ``max_new_tokens`` ids to ``idx`` (B, T), each drawn from the model's next-token
    distribution given the last ``block_size`` ids. ``temperature`` < 1 sharpens it; ``top_k``
    keeps only the k most likely tokens. Runs in eval mode without gradients and restores the mode.

    Example: out = generate(model, ember.tensor([[0]]), 100, block_size=128, top_k=10)
    """
    if temperature <= 0:
        raise ValueError(f"generate: temperature must be > 0, got {temperature}")
    rng = (generator or ember.random.default_generator).np
    was_training = model.training
    model.eval()
    ids = idx.numpy().astype(np.int64)                          # (B, T)
    try:
        with no_grad():
            for _ in range(max_new_tokens):
                logits = model(ember.from_numpy(ids[:, -block_size:]))[:, -1, :].numpy()  # (B, V)
                logits = logits.astype(np.float64) / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = np.sort(logits, axis=-1)[:, -top_k][:, None]
                    logits = np.where(logits < kth, -np.inf, logits)
                p = np.exp(logits - logits.max(axis=-1, keepdims=True))
                p /= p.sum(axis=-1, keepdims=True)
                nxt = [rng.choice(p.shape[-1], p=row) for row in p]
                ids = np.concatenate([ids, np.asarray(nxt, np.int64)[:, None]], axis=1)
    finally:
        model.train(was_training)
    return ember.from_numpy(ids)
