"""THE op registry. An op is declared once — name, shape rule, dtype rule, kernel per backend,
vjp written in ember ops, C/CUDA scalar expression, ONNX name — and ``Op.__call__`` is the one
dispatch point that eager execution, autograd and the tracer share.

Calling convention: tensors are positional, static parameters are keyword-only (``axis=``).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes as D
from ..backends import backend_for
from ..device import cpu
from ..errors import DeviceError, DTypeError, ShapeError, shape_str
from ..tensor import Tensor, _new

REGISTRY: dict[str, "Op"] = {}

# Dispatch state, read on every call, so kept as module globals (fastest lookup).
_grad_enabled = True
_tracer = None  # set by ember.compiler while tracing: tracer(op, args, params) -> Tensor


def set_grad_enabled(flag: bool) -> bool:
    """Set grad recording on or off; returns the previous state."""
    global _grad_enabled
    prev, _grad_enabled = _grad_enabled, bool(flag)
    return prev


def is_grad_enabled() -> bool:
    return _grad_enabled


def set_tracer(tracer):
    """Install (or remove, with None) the compiler's tracer; returns the previous one."""
    global _tracer
    prev, _tracer = _tracer, tracer
    return prev


class Meta:
    """Stand-in for an input whose vjp reads only its shape/dtype/device (saves memory and
    avoids false in-place errors). ``dtype`` here is the backend (NumPy) dtype."""

    __slots__ = ("shape", "dtype", "device")

    @property
    def ndim(self) -> int:
        return len(self.shape)


_object_new = object.__new__


class Node:
    """One recorded op application: the edge from an output back to its inputs' nodes."""

    __slots__ = ("op", "parents", "inputs", "params", "out", "out_dev", "versions", "hooks",
                 "__weakref__")

    def __init__(self, op, parents, inputs, params, out, out_dev, versions):
        self.op = op
        self.parents = parents  # per input: Node, leaf Tensor, or None (no grad flows there)
        self.inputs = inputs  # what the vjp receives: Tensors, Meta stand-ins or Python scalars
        self.params = params
        self.out = out  # the output array (not the Tensor: that would be a reference cycle)
        self.out_dev = out_dev
        self.versions = versions
        self.hooks = None

    def __repr__(self) -> str:
        return f"<{self.op.name}Backward>"

    @property
    def name(self) -> str:
        return f"{self.op.name}Backward"


def _record(op, out: Tensor, inputs, params) -> None:
    """Attach a Node to ``out`` if any input needs a gradient (called only in grad mode)."""
    if out._data.dtype.kind not in "fc":
        return  # integer and bool results carry no gradient
    parents = tuple([(x._node or x) if type(x) is Tensor and x.requires_grad else None for x in inputs])
    for p in parents:
        if p is not None:
            break
    else:
        return
    if op.saves:
        saved = inputs
        versions = tuple([x._vc[0] if type(x) is Tensor and x._vc is not None else 0 for x in inputs])
        if op.bilinear:  # an input's value matters only if its partner needs a gradient
            versions = (versions[0] if parents[1] is not None else -1,
                        versions[1] if parents[0] is not None else -1)
    else:
        saved = tuple([_meta(x) if type(x) is Tensor else x for x in inputs])
        versions = None
    out._node = Node(op, parents, saved, params, out._data, out._dev, versions)
    out.requires_grad = True


def _meta(t: Tensor) -> Meta:
    m = _object_new(Meta)
    m.shape, m.dtype, m.device = t._data.shape, t._data.dtype, t._dev
    return m


def _device_error(op, tensors):
    devs = ", ".join(f"{t._dev}" for t in tensors if type(t) is Tensor)
    return DeviceError(f"{op.name}: expected all tensors on one device, got {devs}; "
                       f"move them with .to(device) first")


class Op:
    """A primitive. ``impl`` is an array-module function name or a factory ``impl(xp)``.

    vjp(g, out, *inputs, **params) -> one gradient (or None) per input, in ember ops.
    shape(*input_shapes, **params) -> output shape; dtype(*input_dtypes, **params) -> dtype.
    """

    kind = "other"

    def __init__(self, name, impl, *, vjp=None, shape=None, dtype=None, saves=True, view=False,
                 bilinear=False, c=None, cuda=None, onnx=None, doc=""):
        if name in REGISTRY:
            raise ValueError(f"op {name!r} declared twice")
        self.name = name
        self.impl = impl
        self.vjp = vjp
        self.shape = shape
        self.dtype = dtype
        self.saves = saves  # False: the vjp reads only shapes/dtypes of its tensor inputs
        self.bilinear = bilinear  # the gradient for one input reads only the other (mul, matmul)
        self.view = view  # output may share memory with the first input
        self.c = c  # C scalar expression template, "{0}" the first operand
        self.cuda = cuda if cuda is not None else c
        self.onnx = onnx
        self.__doc__ = doc
        self._kernels = {}
        self.cpu = backend_for(cpu).kernel(impl)
        self.fn = self._make_fn()  # the dispatch closure; Tensor binds it as a method
        REGISTRY[name] = self

    @property
    def differentiable(self) -> bool:
        return self.vjp is not None

    def kernel(self, dev):
        k = self._kernels.get(dev.type)
        if k is None:
            k = self._kernels[dev.type] = backend_for(dev).kernel(self.impl)
        return k

    def __repr__(self) -> str:
        return f"<ember op {self.name}>"

    def __call__(self, *args, **params):
        return self.fn(*args, **params)

    def _make_fn(self):
        op = self

        def fn(*args, **params):
            return op._apply(args, params)
        fn.__name__ = self.name
        return fn

    def _apply(self, args, params):
        """Generic dispatch: every input a Tensor (or a Python scalar where the op allows)."""
        if _tracer is not None:
            return _tracer(self, args, params)
        dev = None
        arrays = []
        for a in args:
            if type(a) is Tensor:
                if dev is None:
                    dev = a._dev
                elif a._dev is not dev:
                    raise _device_error(self, args)
                arrays.append(a._data)
            else:
                arrays.append(a)
        if dev is None:
            dev = cpu
        k = self.cpu if dev is cpu else self.kernel(dev)
        try:
            out_arr = k(*arrays, **params)
        except (ValueError, IndexError, TypeError) as e:
            raise self.error(args, params, e) from None
        out = _new(out_arr, dev)
        if self.view and type(args[0]) is Tensor:
            _share_version(args[0], out)
        if _grad_enabled and self.vjp is not None:
            _record(self, out, args, params)
        return out

    def error(self, args, params, cause):
        shapes = [tuple(a.shape) for a in args if type(a) is Tensor]
        p = ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "index")
        return ShapeError(f"{self.name}: cannot apply to inputs of shape {shape_str(*shapes)}"
                          f"{' with ' + p if p else ''}: {cause}")


def _share_version(base: Tensor, view: Tensor) -> None:
    """Views share their base's version counter, so an in-place write through either is seen."""
    if base._vc is None:
        base._vc = [0]
    view._vc = base._vc
    view._base = base if base._base is None else base._base


# ---------------------------------------------------------------------------------------------
# Elementwise ops: fast paths for one and two operands, PyTorch dtype promotion.

def _float_of(np_dtype):
    return np_dtype if np_dtype.kind in "fc" else D.get_default_dtype().np


class ElementwiseOp(Op):
    """An elementwise primitive. ``out_dtype`` is "same" (promoted inputs), "float" (promoted,
    then integers become the default float) or "bool"."""

    kind = "elementwise"
    nin = 0

    def __init__(self, name, impl, *, out_dtype="same", **kw):
        self.out_dtype = out_dtype
        kw.setdefault("dtype", self._result_dtype)
        super().__init__(name, impl, shape=_broadcast_shapes, **kw)

    def _result_dtype(self, *dts):
        d = dts[0]
        for x in dts[1:]:
            d = D.promote(d, x)
        if self.out_dtype == "bool":
            return D.bool_
        if self.out_dtype == "float" and not d.is_floating_point:
            return D.get_default_dtype()
        return d

    def _compute_dtypes(self, a, b):
        """Compute dtype for two operands, each a Tensor or a Python scalar (PyTorch rules)."""
        ta, tb = type(a) is Tensor, type(b) is Tensor
        da = a.dtype if ta else D.scalar_dtype(a)
        db = b.dtype if tb else D.scalar_dtype(b)
        weak_a = not ta or a._data.ndim == 0
        weak_b = not tb or b._data.ndim == 0
        if weak_a == weak_b:
            d = D.promote(da, db)
        elif weak_a:
            d = D.promote_weak(db, da, not ta)
        else:
            d = D.promote_weak(da, db, not tb)
        if self.out_dtype == "float" and not d.is_floating_point:
            d = D.get_default_dtype()
        return d


def _broadcast_shapes(*shapes, **params):
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        raise ShapeError(f"shapes {shape_str(*shapes)} cannot be broadcast together") from None


class UnaryOp(ElementwiseOp):
    nin = 1

    def _make_fn(self):
        op, kcpu, to_float, has_vjp = self, self.cpu, self.out_dtype == "float", self.vjp is not None

        def fn(x, **params):
            if _tracer is not None:
                return _tracer(op, (x,), params)
            if type(x) is not Tensor:
                raise DTypeError(f"{op.name}: expected a Tensor, got {type(x).__name__}; "
                                 f"wrap it with ember.tensor(...)")
            d = x._data
            if to_float and d.dtype.kind not in "fc":
                d = d.astype(_float_of(d.dtype))
            dev = x._dev
            out = _new((kcpu if dev is cpu else op.kernel(dev))(d, **params), dev)
            if _grad_enabled and has_vjp and x.requires_grad:
                _record(op, out, (x,), params)
            return out
        fn.__name__ = self.name
        return fn


class BinaryOp(ElementwiseOp):
    nin = 2

    def _make_fn(self):
        op, kcpu, has_vjp = self, self.cpu, self.vjp is not None
        to_float = self.out_dtype == "float"
        cast = self._cast

        def fn(a, b):
            if _tracer is not None:
                return _tracer(op, (a, b), {})
            if type(a) is Tensor:
                dev = a._dev
                da = a._data
                if type(b) is Tensor:
                    if b._dev is not dev:
                        raise _device_error(op, (a, b))
                    db = b._data
                    if da.dtype is not db.dtype or (to_float and da.dtype.kind not in "fc"):
                        da, db = cast(a, b, da, db)
                else:
                    db = b
                    tb = type(b)
                    # A Python scalar keeps the tensor's dtype unless it is of a higher kind.
                    if to_float or (da.dtype.kind not in "fc" if tb is float else
                                    da.dtype.kind == "b" if tb is int else True):
                        da, db = cast(a, b, da, db)
            elif type(b) is Tensor:
                dev = b._dev
                da, db = cast(a, b, a, b._data)
            else:
                raise DTypeError(f"{op.name}: at least one operand must be a Tensor, got "
                                 f"{type(a).__name__} and {type(b).__name__}")
            try:
                out = _new((kcpu if dev is cpu else op.kernel(dev))(da, db), dev)
            except ValueError:
                raise ShapeError(f"{op.name}: shapes {shape_str(_shape(a), _shape(b))} cannot be "
                                 f"broadcast together; make the trailing dimensions equal or 1 "
                                 f"(reshape or unsqueeze one operand)") from None
            if _grad_enabled and has_vjp and (
                    (type(a) is Tensor and a.requires_grad) or (type(b) is Tensor and b.requires_grad)):
                _record(op, out, (a, b), {})
            return out
        fn.__name__ = self.name
        return fn

    def _cast(self, a, b, da, db):
        """Cast operands to the promoted dtype; scalars become 0-d arrays of that dtype."""
        if type(a) is not Tensor and type(a) not in (float, int, bool):
            raise DTypeError(f"{self.name}: unsupported operand type {type(a).__name__}")
        if type(b) is not Tensor and type(b) not in (float, int, bool):
            raise DTypeError(f"{self.name}: unsupported operand type {type(b).__name__}")
        npd = self._compute_dtypes(a, b).np
        da = da.astype(npd, copy=False) if type(a) is Tensor else np.asarray(da, npd)
        db = db.astype(npd, copy=False) if type(b) is Tensor else np.asarray(db, npd)
        return da, db


def _shape(x):
    return tuple(x.shape) if type(x) is Tensor else ()


class TernaryOp(ElementwiseOp):
    """where(cond, a, b): the last two operands are promoted like a binary op's."""

    nin = 3

    def _make_fn(self):
        op = self

        def fn(c, a, b):
            return op._where(c, a, b)
        fn.__name__ = self.name
        return fn

    def _where(self, c, a, b):
        if _tracer is not None:
            return _tracer(self, (c, a, b), {})
        if type(a) is not Tensor or type(b) is not Tensor or a._data.dtype is not b._data.dtype:
            ref = a if type(a) is Tensor else b if type(b) is Tensor else c
            if type(ref) is not Tensor:
                raise DTypeError(f"{self.name}: at least one operand must be a Tensor")
            d = self._compute_dtypes(a, b)
            a = a.to(d) if type(a) is Tensor else Tensor._const(a, d, ref._dev)
            b = b.to(d) if type(b) is Tensor else Tensor._const(b, d, ref._dev)
        if type(c) is not Tensor:
            c = Tensor._const(c, D.bool_, a._dev)
        return self._apply((c, a, b), {})


# ---------------------------------------------------------------------------------------------
# Reductions: params axis (tuple of non-negative ints, or None for all) and keepdims.

class ReduceOp(Op):
    kind = "reduce"

    def __init__(self, name, impl, *, out_dtype="same", **kw):
        self.out_dtype = out_dtype
        super().__init__(name, impl, shape=_reduce_shape, dtype=self._result_dtype, **kw)

    def _result_dtype(self, d, **params):
        if self.out_dtype == "same":
            return d
        if self.out_dtype == "sum":  # PyTorch sums integers and bools into int64
            return d if d.is_floating_point else D.int64
        return {"bool": D.bool_, "int64": D.int64}[self.out_dtype]


def _reduce_shape(shape, *, axis=None, keepdims=False, **params):
    if axis is None:
        axis = tuple(range(len(shape)))
    if keepdims:
        return tuple(1 if i in axis else s for i, s in enumerate(shape))
    return tuple(s for i, s in enumerate(shape) if i not in axis)


def normalize_axis(axis, ndim: int, op: str):
    """dim argument (int, tuple or None) -> sorted tuple of non-negative ints, or None."""
    if axis is None:
        return None
    if isinstance(axis, (list, tuple)):
        if len(axis) == 0:
            return None
        return tuple(sorted(normalize_dim(a, ndim, op) for a in axis))
    return (normalize_dim(axis, ndim, op),)


def normalize_dim(dim, ndim: int, op: str) -> int:
    n = max(ndim, 1)
    if not isinstance(dim, (int, np.integer)) or not -n <= dim < n:
        raise ShapeError(f"{op}: dim {dim!r} is out of range for a tensor with {ndim} dimension(s) "
                         f"(expected an int in [{-n}, {n - 1}])")
    return int(dim) % n


def declared(kind: str | None = None) -> list:
    """All registered ops (of one kind), in declaration order."""
    return [o for o in REGISTRY.values() if kind is None or o.kind == kind]
