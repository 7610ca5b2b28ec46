"""Regenerate ember/data/datasets/digits.npz from scikit-learn's copy of the UCI digits.

The 1,797 8x8 images of the UCI "Optical Recognition of Handwritten Digits" set ship inside
scikit-learn as `sklearn/datasets/data/digits.csv.gz` (64 pixel columns 0..16, then the label).
Get that file without making scikit-learn a dependency, e.g.:

    pip download scikit-learn --no-deps -d /tmp/skl
    unzip -o /tmp/skl/scikit_learn-*.whl 'sklearn/datasets/data/digits.csv.gz' -d /tmp/skl
    python tools/make_digits.py /tmp/skl/sklearn/datasets/data/digits.csv.gz

The fixed split is a permutation of the 1,797 rows by numpy's PCG64 seeded with SPLIT_SEED:
the first 1,437 rows train, the last 360 (20%) test. The row numbers into the csv are stored
too (`train_index`, `test_index`), so the split is checkable and never depends on a later
numpy's random stream: loading only reads the stored arrays.
"""
from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np

SPLIT_SEED = 0
N_TEST = 360
OUT = Path(__file__).resolve().parents[1] / "ember" / "data" / "datasets" / "digits.npz"


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 8, 8), labels uint8 (N,)) from digits.csv.gz."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.shape != (1797, 65) or table[:, :64].max() > 16 or table[:, 64].max() > 9:
        raise SystemExit(f"{path}: expected 1797 rows of 64 pixels (0..16) and a label, got {table.shape}")
    return table[:, :64].reshape(-1, 8, 8).astype(np.uint8), table[:, 64].astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="path to sklearn/datasets/data/digits.csv.gz")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    images, labels = read_csv(args.csv)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    train, test = np.sort(order[:-N_TEST]), np.sort(order[-N_TEST:])  # sorted: keep csv order within each split
    np.savez_compressed(args.out, x_train=images[train], y_train=labels[train],
                        x_test=images[test], y_test=labels[test],
                        train_index=train.astype(np.uint16), test_index=test.astype(np.uint16))
    print(f"wrote {args.out}: {len(train)} train, {len(test)} test")


if __name__ == "__main__":
    main()
