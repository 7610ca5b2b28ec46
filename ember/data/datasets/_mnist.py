"""MNIST and Fashion-MNIST: four IDX files each (gzip-compressed), downloaded on first use.

IDX format (http://yann.lecun.com/exdb/mnist/): two zero bytes, a type code, the number of
dimensions n, then n big-endian uint32 sizes, then the values, big-endian, row-major.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

import ember
from ._fetch import DatasetError, RemoteFile, fetch

__all__ = ["read_idx", "mnist", "fashion_mnist", "FASHION_MNIST_SYSTEM_DIR"]

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# Where the Debian/Ubuntu package dataset-fashion-mnist installs the same four files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_SIZES = ("9.5 MB", "29 KB", "1.6 MB", "5 KB")

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "https://storage.googleapis.com/cvdf-datasets/mnist/")
MNIST_MD5 = ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "d53e105ee54ea40749a09fcbcd1e9432",
             "9fb629c4189551a2d022fa330f9573f3", "ec29112dd5afa0611ce80d1b7f02629c")

FASHION_MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
FASHION_MD5 = ("8d4fb7e6c68d591d4c3dfef9ec88bf0d", "25c81989df183df01b3e8a0aad5dffbe",
               "bef4ecab320f06d8554ea6380940ec79", "bb300cfdad3c16e7a12a480ee83cd310")
# The Debian package's files hold the same data; only their gzip headers lack the file name.
FASHION_DEBIAN_SHA256 = ("b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                         "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                         "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                         "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05")
FASHION_SIZES = ("26 MB", "29 KB", "4.4 MB", "5 KB")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (plain or gzip-compressed) into a native-endian numpy array.

    Example: read_idx("train-labels-idx1-ubyte.gz").shape == (60000,)
    """
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"  # gzip magic: decide by content, not by file name
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"read_idx: {path}: cannot decompress ({e}); "
                           "delete the file and load again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"read_idx: {path} is not an IDX file (magic bytes {raw[:4].hex() or 'missing'})")
    ndim, dtype = raw[3], np.dtype(_IDX_TYPES[raw[2]])
    start = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4)) if len(raw) >= start else None
    expected = None if dims is None else int(np.prod(dims)) * dtype.itemsize
    if expected is None or len(raw) - start != expected:
        raise DatasetError(f"read_idx: {path}: header says shape {dims} of {dtype.str[1:]} = {expected} "
                           f"data bytes, but the file holds {max(len(raw) - start, 0)}: it is "
                           "truncated or corrupt; delete it and load again")
    return np.frombuffer(raw, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))


def _load(name: str, files: list[RemoteFile], root, download: bool, flatten: bool,
          also_look_in: tuple[Path, ...] = (), offline_hint: str = ""):
    paths = fetch(name, files, root, download, also_look_in, offline_hint)
    out = []
    for images, labels in ((_FILES[0], _FILES[1]), (_FILES[2], _FILES[3])):
        x, y = read_idx(paths[images]), read_idx(paths[labels])
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DatasetError(f"{name}: {paths[images]} has shape {x.shape} and {paths[labels]} "
                               f"{y.shape}; expected (N, H, W) images and N labels")
        x = x.astype(np.float32) / np.float32(255)  # (N, H, W) in [0, 1]
        x = x.reshape(len(x), -1) if flatten else x[:, None]  # (N, H*W) or (N, 1, H, W)
        out.append((ember.from_numpy(np.ascontiguousarray(x)), ember.from_numpy(y.astype(np.int64))))
    return tuple(out)


def _remote(mirrors: tuple[str, ...], digests, sizes) -> list[RemoteFile]:
    return [RemoteFile(f, tuple(m + f for m in mirrors), tuple(d), s)
            for f, d, s in zip(_FILES, digests, sizes)]


def mnist(root: str | os.PathLike | None = None, download: bool = True, flatten: bool = False):
    """MNIST handwritten digits: (x_train, y_train), (x_test, y_test); 60,000 / 10,000 images.

    Example: (x_train, y_train), (x_test, y_test) = ember.data.datasets.mnist()

    x is float32 (N, 1, 28, 28) in [0, 1] ((N, 784) with flatten=True), y is int64 in 0..9.
    Files are looked for in `root` (default: see `dataset_root`) and downloaded there if missing.
    """
    files = _remote(MNIST_MIRRORS, [(f"md5:{m}",) for m in MNIST_MD5], _SIZES)
    return _load("mnist", files, root, download, flatten)


def fashion_mnist(root: str | os.PathLike | None = None, download: bool = True, flatten: bool = False):
    """Fashion-MNIST (Zalando clothing images), same layout and shapes as `mnist`.

    Example: (x_train, y_train), (x_test, y_test) = ember.data.datasets.fashion_mnist()

    Also found, without network, where the Debian/Ubuntu package dataset-fashion-mnist puts
    the files (/usr/share/datasets/fashion-mnist).
    """
    digests = [(f"md5:{m}", f"sha256:{s}") for m, s in zip(FASHION_MD5, FASHION_DEBIAN_SHA256)]
    files = _remote(FASHION_MIRRORS, digests, FASHION_SIZES)
    return _load("fashion-mnist", files, root, download, flatten, (FASHION_MNIST_SYSTEM_DIR,),
                 "Or install them system-wide: apt-get install dataset-fashion-mnist")
