"""The compiler: ``ember.jit`` traces a function (forward, backward, optimizer step) into a
flat graph, rewrites it, fuses elementwise chains into generated C and runs the result.

Pipeline: trace.py -> passes/ (order in pipeline.py; fusion with rematerialization last) ->
plan.py (liveness, buffers reused across calls, in-place optimizer updates) -> codegen/ (fused
C kernels; native kernels for pooling, the embedding backward, small batched matmuls and
cross-entropy, listed in pipeline.NATIVES) -> cache.py -> runtime.py. Random draws are replayed per
call (rng.py). Tools on a jitted function: ``ir()``, ``explain()``, ``memory()``, ``dot()``, and
``jit(fn, check=True)`` (debug.py) which names the first compiled node that disagrees with eager.
"""
from .api import JitFunction, jit
from .trace import TraceError

__all__ = ["jit", "JitFunction", "TraceError"]
