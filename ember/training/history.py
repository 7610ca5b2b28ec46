"""History: what ``fit`` returns. ``history.history`` maps each log key to one value per epoch.

Example: h = model.fit(x, y, epochs=5, validation_split=0.1); h.history["val_loss"][-1]; h.plot("curves.png")
"""
from __future__ import annotations

import os

from ..errors import EmberError
from .callbacks import Callback

__all__ = ["History"]


class History(Callback):
    """Records the epoch logs: ``history`` {"loss": [...], "val_loss": [...], ...} and
    ``epoch`` (the epoch numbers, 0-based, as Keras)."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path: str | os.PathLike) -> None:
        """Draw one panel per quantity (loss, each metric), training and validation curves
        together, into an image file (the format follows the suffix: .png, .pdf, .svg).
        Needs matplotlib (``pip install matplotlib``, or the ``plot`` extra of ember)."""
        try:
            from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone
        except ImportError:
            raise EmberError("History.plot needs matplotlib, which is not installed; "
                             "run `pip install matplotlib` (or `pip install ember[plot]`)") from None
        names = [k for k in self.history if not k.startswith("val_")]
        names += [k[4:] for k in self.history if k.startswith("val_") and k[4:] not in self.history]
        if not names:
            raise EmberError("History.plot: nothing to plot; the history is empty (did fit run an epoch?)")
        fig = Figure(figsize=(4.5 * len(names), 3.5))
        axes = fig.subplots(1, len(names), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                if key in self.history:
                    ax.plot(epochs[-len(self.history[key]):], self.history[key], marker=".", label=label)
            ax.set_title(name)
            ax.set_xlabel("epoch")
            ax.legend()
        fig.tight_layout()
        fig.savefig(path)
