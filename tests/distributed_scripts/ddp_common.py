"""Shared by the MPI helper scripts and tests/test_distributed.py: the digits CNN, the data and
one SGD step, so the single-process reference trains exactly what the ranks train."""
from __future__ import annotations

import ember as em
import ember.nn as nn

STEPS, PER_RANK, LR = 20, 16, 0.1


def digits_cnn() -> nn.Module:
    """A small LeNet-style CNN for the 8x8 digits (an MLP if the conv layers are missing)."""
    if not hasattr(nn, "Conv2d"):
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # (B, 8, 4, 4)
                         nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),      # (B, 256)
                         nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))


def batch(step: int, world: int):
    """The global batch of ``step``: ``world * PER_RANK`` digits; rank r takes rows r*PER_RANK..."""
    (x, y), _ = em.data.datasets.digits()
    n = world * PER_RANK
    lo = (step * n) % (len(x) - n)
    return x[lo:lo + n], y[lo:lo + n]


def sgd_step(model, opt, xb, yb) -> float:
    loss = nn.functional.cross_entropy(model(xb), yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()
