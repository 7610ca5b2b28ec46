"""Test cases for the registry sweep (tests/test_ops.py). Each file in this package defines
``CASES``: a list of Case. tests/test_ops.py fails if a registered op has no case, so a new op
cannot go untested. One file per op family; add cases next to the family you extend."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Case:
    op: str  # the registry name this case exercises (several cases may share one op)
    ember: Callable  # ember function of ember tensors -> tensor
    inputs: Callable  # rng (np.random.Generator) -> tuple of float64/int/bool NumPy arrays
    numpy: Callable | None = None  # independent NumPy reference of the same arrays
    torch: Callable | None = None  # PyTorch reference of torch tensors (the oracle)
    grad: bool = True  # check gradients of the floating inputs (finite differences + torch)
    name: str = ""  # id suffix, to tell cases of one op apart
    atol: float = 1e-6
    rtol: float = 1e-5
    fd_eps: float = 1e-6
    noncontiguous: bool = True  # also run with non-contiguous (transposed-copy) inputs

    @property
    def id(self) -> str:
        return self.op + (f"-{self.name}" if self.name else "")


def all_cases() -> list:
    cases = []
    for info in pkgutil.iter_modules(__path__):
        mod = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(getattr(mod, "CASES", []))
    return cases
