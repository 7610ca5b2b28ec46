"""CIFAR-10, binary version (cifar-10-binary.tar.gz): read straight from the archive, never unpickled.

Each .bin file is a run of 3,073-byte records: one label byte (0..9), then a 32x32 image as
1,024 red, 1,024 green and 1,024 blue bytes, row-major (https://www.cs.toronto.edu/~kriz/cifar.html).
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np

import ember
from ._fetch import DatasetError, RemoteFile, dataset_root, fetch

__all__ = ["read_cifar_bin", "cifar10", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_RECORD = 1 + 3 * 32 * 32
_FOLDER = "cifar-10-batches-bin"
_TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
_TEST = ("test_batch.bin",)
ARCHIVE = RemoteFile("cifar-10-binary.tar.gz",
                     ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                     ("md5:c32a1d4ab5d03f1284b67883e8d87530",
                      "sha256:c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"),
                     "163 MB")


def read_cifar_bin(raw: bytes, source: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Parse CIFAR-10 binary records into (images uint8 (N, 3, 32, 32), labels uint8 (N,)).

    Example: x, y = read_cifar_bin(open("test_batch.bin", "rb").read())
    """
    if len(raw) == 0 or len(raw) % _RECORD:
        raise DatasetError(f"cifar10: {source} holds {len(raw)} bytes, not a whole number of "
                           f"{_RECORD}-byte records: it is truncated or corrupt; delete it and load again")
    table = np.frombuffer(raw, np.uint8).reshape(-1, _RECORD)
    labels = table[:, 0].copy()
    if labels.max() > 9:
        raise DatasetError(f"cifar10: {source} has label {labels.max()} (expected 0..9); "
                           "is it CIFAR-100 or corrupt?")
    return table[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _read_members(archive: Path) -> dict[str, bytes]:
    """The six .bin members of the archive, by base name, read without extracting anything."""
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name in _TRAIN + _TEST:
                member = tar.getmember(f"{_FOLDER}/{name}")
                if not member.isfile():
                    raise KeyError(member.name)
                out[name] = tar.extractfile(member).read()
    except (tarfile.TarError, KeyError, OSError, EOFError) as e:
        raise DatasetError(f"cifar10: cannot read {archive} ({type(e).__name__}: {e}); "
                           "delete it and load again") from None
    return out


def cifar10(root: str | os.PathLike | None = None, download: bool = True):
    """CIFAR-10: (x_train, y_train), (x_test, y_test); 50,000 / 10,000 colour 32x32 images.

    Example: (x_train, y_train), (x_test, y_test) = ember.data.datasets.cifar10()

    x is float32 (N, 3, 32, 32) in [0, 1], y is int64 in 0..9 (names in CIFAR10_CLASSES).
    Uses `root`/cifar-10-batches-bin/*.bin if already extracted there, else the archive
    cifar-10-binary.tar.gz in `root`, downloaded on first use and checked by MD5.
    """
    folder = dataset_root("cifar-10", root) / _FOLDER
    if all((folder / n).is_file() for n in _TRAIN + _TEST):
        members = {n: (folder / n).read_bytes() for n in _TRAIN + _TEST}
    else:
        paths = fetch("cifar-10", [ARCHIVE], root, download,
                      offline_hint=f"Or place its extracted folder {_FOLDER}/ there.")
        members = _read_members(paths[ARCHIVE.name])
    out = []
    for names in (_TRAIN, _TEST):
        parts = [read_cifar_bin(members[n], n) for n in names]
        x = np.concatenate([p[0] for p in parts]).astype(np.float32) / np.float32(255)
        y = np.concatenate([p[1] for p in parts]).astype(np.int64)
        out.append((ember.from_numpy(x), ember.from_numpy(y)))
    return tuple(out)
