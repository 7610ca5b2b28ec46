"""Data loading: datasets, the DataLoader, image transforms and bundled/downloadable data sets.

Example: loader = ember.data.DataLoader(ember.data.TensorDataset(x, y), batch_size=64, shuffle=True)
"""
from . import datasets, transforms
from .dataset import DataError, Dataset, Subset, TensorDataset, random_split
from .loader import CollateError, DataLoader, default_collate

__all__ = ["Dataset", "TensorDataset", "Subset", "random_split", "DataLoader", "default_collate",
           "DataError", "CollateError", "datasets", "transforms"]
