"""The compiler: ``ember.jit`` traces a function (forward, backward, optimizer step) into a
flat graph, rewrites it, fuses elementwise chains into generated C and runs the result.

Pipeline: trace.py -> passes/ (order in pipeline.py) -> codegen/ -> cache.py -> runtime.py.
"""
from .api import JitFunction, jit
from .trace import TraceError

__all__ = ["jit", "JitFunction", "TraceError"]
