"""Data sets: `digits` is bundled; `mnist`, `fashion_mnist` and `cifar10` download on first use.

Downloads go to ~/.cache/ember/datasets/<name> (or $EMBER_DATA/<name>, or root=...), are
checked against known checksums, and are parsed from their original formats (IDX; CIFAR-10's
binary version), never unpickled.
"""
from ._fetch import DATA_ENV, DatasetError, dataset_root
from ._cifar import CIFAR10_CLASSES, cifar10
from ._digits import digits
from ._mnist import fashion_mnist, mnist

__all__ = ["DATA_ENV", "DatasetError", "dataset_root", "digits", "mnist", "fashion_mnist",
           "cifar10", "CIFAR10_CLASSES"]
