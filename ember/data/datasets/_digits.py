"""The UCI optical-recognition handwritten digits, bundled: 1,797 8x8 images, no network needed.

digits.npz (made by tools/make_digits.py from scikit-learn's copy of the UCI data) holds uint8
pixels 0..16 and labels 0..9, already split: 1,437 train / 360 test, a permutation seeded with 0
(the csv row numbers are stored as train_index / test_index).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import ember
from ._fetch import DatasetError

__all__ = ["digits", "DIGITS_FILE"]

DIGITS_FILE = Path(__file__).with_name("digits.npz")


def digits(flatten: bool = False):
    """(x_train, y_train), (x_test, y_test) of the bundled digits.

    Example: (x_train, y_train), (x_test, y_test) = ember.data.datasets.digits()

    x is float32 in [0, 1] (pixels / 16) of shape (N, 1, 8, 8), or (N, 64) with flatten=True;
    y is int64 in 0..9. N is 1,437 for train and 360 for test; the split never changes.
    """
    try:
        with np.load(DIGITS_FILE, allow_pickle=False) as f:
            parts = [(f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])]
    except (OSError, KeyError, ValueError) as e:
        raise DatasetError(f"digits: the bundled file {DIGITS_FILE} is missing or corrupt ({e}); "
                           "reinstall ember or rebuild it with tools/make_digits.py") from None
    out = []
    for x, y in parts:
        x = x.astype(np.float32) / np.float32(16)  # (N, 8, 8) in [0, 1]
        x = x.reshape(len(x), 64) if flatten else x[:, None]  # (N, 64) or (N, 1, 8, 8)
        out.append((ember.from_numpy(np.ascontiguousarray(x)), ember.from_numpy(y.astype(np.int64))))
    return tuple(out)
