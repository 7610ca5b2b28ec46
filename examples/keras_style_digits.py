"""Keras-style training on the bundled digits: Sequential, compile, fit with a validation
split, early stopping and checkpoints, then evaluate on the held-out test set (>= 97%).

Run: python examples/keras_style_digits.py [--epochs N] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import ember as em
from ember import nn


def build_model() -> nn.Module:
    # A small CNN: 8x8 digits need little depth; padding keeps the 8x8 grid for the second conv.
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),         # (N, 32, 8, 8)
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),        # (N, 64, 8, 8)
        nn.MaxPool2d(2),                                   # (N, 64, 4, 4)
        nn.Flatten(), nn.Dropout(0.25),                    # (N, 1024)
        nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def main(epochs: int = 40, out: str | None = None, verbose="auto") -> float:
    em.manual_seed(0)
    (x_train, y_train), (x_test, y_test) = em.data.datasets.digits()  # (N, 1, 8, 8) in [0, 1]
    model = build_model()
    model.compile(optimizer="adam", loss="cross_entropy", metrics=["accuracy"])
    model.summary(input_shape=(1, 1, 8, 8))

    folder = Path(out or tempfile.mkdtemp(prefix="digits-"))
    callbacks = [
        em.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
        em.callbacks.ModelCheckpoint(folder / "best.safetensors", monitor="val_accuracy",
                                     save_best_only=True, save_weights_only=True),
    ]
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_split=0.1,
              callbacks=callbacks, verbose=verbose)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss {loss:.4f}  test accuracy {accuracy:.4f}  (best checkpoint: {folder / 'best.safetensors'})")
    return accuracy


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--out", default=None, help="folder for checkpoints (default: a temporary folder)")
    args = p.parse_args()
    main(args.epochs, args.out)
