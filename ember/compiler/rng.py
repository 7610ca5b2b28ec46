"""Random numbers under ``ember.jit``: a draw from ember's generator (``rand``, ``randn``,
dropout masks) becomes a ``random`` node whose kernel draws again from the same generator at
every call, so masks are fresh per step instead of frozen at trace time. Draws run in program
order, so a jitted function consumes the stream exactly as eager execution does.

While tracing, ``creation._gen`` hands out a recording proxy of the generator (see trace.py).

>>> Random(ember.random.default_generator, "random")   # node: %3:f32[4,4] = random args=((4, 4),) ...
"""
from __future__ import annotations


class Random:
    """The op of a random node: ``getattr(gen.np, method)(*args, **kwargs)`` at run time.
    Not in the op registry (it has no gradient and eager code never calls it)."""

    kind = "random"
    view = False
    effect = True  # consumes the generator: never dropped, merged or folded

    def __init__(self, gen, method: str):
        self.gen, self.method = gen, method
        self.name = "random"

    def describe(self) -> str:
        return f"random.{self.method}"

    def cpu(self, *, args=(), kwargs=(), draw=0):
        return getattr(self.gen.np, self.method)(*args, **dict(kwargs))


class RecordingGenerator:
    """Stands in for ``generator.np`` while tracing: draws for real and records a node."""

    METHODS = ("random", "standard_normal")  # what rand/randn call; their result is used as is

    def __init__(self, gen, tracer):
        self._gen, self._tr = gen, tracer

    def __getattr__(self, method):
        real = getattr(self._gen.np, method)
        if method not in self.METHODS:
            return real  # integers/permutation results are cast by the caller: stay constants

        def draw(*args, **kwargs):
            arr = real(*args, **kwargs)
            tr = self._tr
            params = {"args": _static(args), "kwargs": tuple(sorted((k, _static(v)) for k, v in kwargs.items())),
                      "draw": tr.draws}
            tr.draws += 1
            v = tr.g.emit(Random(self._gen, method), (), params, arr.shape, arr.dtype)
            tr.bind(arr, v)
            return arr
        return draw


def _static(v):
    if isinstance(v, list):
        return tuple(_static(x) for x in v)
    if isinstance(v, tuple):
        return tuple(_static(x) for x in v)
    return v
