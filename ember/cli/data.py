"""The data sets a run config names: images (digits, mnist, fashion_mnist, cifar10) or a text file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ember
from ..data import Dataset, Subset, TensorDataset
from .config import Config, ConfigError

__all__ = ["RunData", "TextWindows", "build_data", "encode_text"]


@dataclass
class RunData:
    """The train and test sets of a run, and what a model needs to know about them."""
    train: Dataset
    test: Dataset
    sample_shape: tuple[int, ...]  # one input: (C, H, W), (features,) or (seq_len,)
    num_classes: int  # classes, or the vocabulary size of a text
    vocab: str | None = None  # a text's characters in id order


class TextWindows(Dataset):
    """Next-character prediction on consecutive windows of ``seq_len + 1`` ids: sample i is
    (ids[i*L : i*L+L], ids[i*L+1 : i*L+L+1]).

    Batches (``__getitems__``, which the DataLoader uses) hold targets flattened to (B * L,) so they
    line up with logits (B * L, vocab): the language model is then an ordinary classifier.

    Example: TextWindows(encode_text("hello world", "dehlorw ")[0], seq_len=4)[0]
    """

    def __init__(self, ids: np.ndarray, seq_len: int):
        n = (len(ids) - 1) // seq_len
        if n < 1:
            raise ConfigError(f"TextWindows: the text has {len(ids)} characters, fewer than seq_len + 1 "
                              f"= {seq_len + 1}; use a longer text or a smaller [data] seq_len")
        self.x = ids[:n * seq_len].reshape(n, seq_len)                # (N, L)
        self.y = ids[1:n * seq_len + 1].reshape(n, seq_len)           # (N, L), shifted by one

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return ember.from_numpy(self.x[i]), ember.from_numpy(self.y[i])

    def __getitems__(self, idx):
        idx = np.asarray(idx)
        return ember.from_numpy(self.x[idx]), ember.from_numpy(np.ascontiguousarray(self.y[idx].reshape(-1)))


def encode_text(text: str, vocab: str | None = None) -> tuple[np.ndarray, str]:
    """Character ids (int64) of ``text`` and the vocabulary (its sorted distinct characters, unless given).

    Example: ids, vocab = encode_text("abca")   # [0, 1, 2, 0], "abc"
    """
    vocab = vocab if vocab is not None else "".join(sorted(set(text)))
    table = {c: i for i, c in enumerate(vocab)}
    unknown = sorted(set(text) - set(table))
    if unknown:
        raise ConfigError(f"the text has characters the model's vocabulary lacks: {''.join(unknown)[:20]!r}")
    return np.fromiter((table[c] for c in text), np.int64, len(text)), vocab


def read_text(cfg: Config) -> str:
    path = Path(cfg.data.path).expanduser()
    if not path.is_file():
        raise ConfigError(f"{cfg.source}: [data] path = {cfg.data.path!r}: no such file "
                          f"(relative paths are taken from the working directory, {Path.cwd()})")
    return path.read_text(encoding="utf-8")


def build_data(cfg: Config) -> RunData:
    """Load the data set of ``cfg.data`` (downloading mnist/fashion_mnist/cifar10 on first use)."""
    d = cfg.data
    if d.name == "text":
        text = read_text(cfg)
        ids, vocab = encode_text(text)
        cut = int(len(ids) * (1 - d.test_fraction))
        train, test = TextWindows(ids[:cut], d.seq_len), TextWindows(ids[cut:], d.seq_len)
        shape, classes = (d.seq_len,), len(vocab)
    else:
        datasets = ember.data.datasets
        root = d.root or None
        if d.name == "digits":
            (xtr, ytr), (xte, yte) = datasets.digits(flatten=d.flatten)
        elif d.name == "cifar10":
            (xtr, ytr), (xte, yte) = datasets.cifar10(root=root)
            if d.flatten:
                xtr, xte = xtr.reshape(len(xtr), -1), xte.reshape(len(xte), -1)
        else:
            (xtr, ytr), (xte, yte) = getattr(datasets, d.name)(root=root, flatten=d.flatten)
        train, test = TensorDataset(xtr, ytr), TensorDataset(xte, yte)
        shape, classes, vocab = tuple(xtr.shape[1:]), int(ytr.numpy().max()) + 1, None
    return RunData(_first(train, d.train_subset), _first(test, d.test_subset), shape, classes, vocab)


def _first(ds: Dataset, n: int) -> Dataset:
    """The first ``n`` samples (all when n is 0 or at least the size), keeping fast batching."""
    if n <= 0 or n >= len(ds):
        return ds
    if isinstance(ds, TensorDataset):
        return TensorDataset(*(t[:n] for t in ds.tensors))
    if isinstance(ds, TextWindows):
        ds.x, ds.y = ds.x[:n], ds.y[:n]
        return ds
    return Subset(ds, list(range(n)))
