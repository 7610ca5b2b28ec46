"""Train a small CNN on the bundled 8x8 digits (1,437 train / 360 test images, no network).

Run: python examples/digits_cnn.py [--epochs 10] [--seed 0]

Prints the mean training loss of every epoch, then the test accuracy (about 98-99%), in a
few seconds on two cores.
"""
from __future__ import annotations

import argparse
import time

import ember as em
from ember import nn


def make_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # (B, 16, 4, 4)
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 32, 2, 2)
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))


def train_epoch(model: nn.Module, loader, opt, loss_fn, sched) -> float:
    """One pass over the loader; returns the mean loss. The 1cycle schedule steps per batch."""
    model.train()
    total, n = 0.0, 0
    for xb, yb in loader:  # xb (B, 1, 8, 8) float32 in [0, 1], yb (B,) int64
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        total += loss.item() * len(yb)
        n += len(yb)
    return total / n


@em.no_grad()
def accuracy(model: nn.Module, x: em.Tensor, y: em.Tensor) -> float:
    model.eval()
    return (model(x).argmax(1) == y).float().mean().item()


def main(epochs: int = 10, seed: int = 0, batch_size: int = 32, max_lr: float = 1e-2, log=print) -> float:
    """Train from scratch; returns the test accuracy."""
    em.manual_seed(seed)  # weights and the shuffling order both come from this generator
    (x_train, y_train), (x_test, y_test) = em.data.datasets.digits()
    loader = em.data.DataLoader(em.data.TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
    model = make_model()
    opt = em.optim.Adam(model.parameters(), lr=max_lr)
    # 1cycle: warm up, then anneal; it makes the final epochs settle instead of hopping around.
    sched = em.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, epochs=epochs, steps_per_epoch=len(loader))
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        loss = train_epoch(model, loader, opt, loss_fn, sched)
        log(f"epoch {epoch:2d}/{epochs}  loss {loss:.4f}  ({time.perf_counter() - start:.1f}s)")
    acc = accuracy(model, x_test, y_test)
    log(f"test accuracy {acc:.2%} ({len(y_test)} images)")
    return acc


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    main(args.epochs, args.seed)
