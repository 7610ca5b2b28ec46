"""Seeded random number generation. ``ember.manual_seed(0)`` makes every random op, weight
initialization and DataLoader shuffle reproducible."""
from __future__ import annotations

import numpy as np


class Generator:
    """An independent random stream (PCG64). ``g = ember.Generator(seed=1)``; ``g.np`` is the
    ``numpy.random.Generator`` that ember draws from."""

    def __init__(self, seed: int | None = None):
        self.manual_seed(np.random.SeedSequence().entropy if seed is None else seed)

    def manual_seed(self, seed: int) -> "Generator":
        self._seed = int(seed)
        self.np = np.random.Generator(np.random.PCG64(self._seed))
        return self

    def initial_seed(self) -> int:
        return self._seed

    def get_state(self) -> dict:
        """A JSON-able snapshot of the stream (for checkpoints)."""
        st = self.np.bit_generator.state
        return {"bit_generator": st["bit_generator"], "state": {k: int(v) for k, v in st["state"].items()},
                "has_uint32": int(st["has_uint32"]), "uinteger": int(st["uinteger"]), "seed": self._seed}

    def set_state(self, state: dict) -> None:
        st = dict(state)
        self._seed = int(st.pop("seed", self._seed))
        self.np.bit_generator.state = st


default_generator = Generator(0)


def manual_seed(seed: int) -> Generator:
    """Seed ember's default generator. ``ember.manual_seed(0)``."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """Seed the default generator from OS entropy; returns the seed."""
    s = int(np.random.SeedSequence().entropy % (2 ** 63))
    default_generator.manual_seed(s)
    return s


def get_rng_state() -> dict:
    return default_generator.get_state()


def set_rng_state(state: dict) -> None:
    default_generator.set_state(state)
