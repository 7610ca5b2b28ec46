"""Movement: reshape, permute, expand, indexing, pad, cat, flip, gather/scatter, device copies.
Primitives move data and compute nothing; the rest (squeeze, stack, split, tril...) are ember
code on top of them."""
from __future__ import annotations

import math

import numpy as np

from .. import dtypes as D
from ..backends import backend_for
from ..device import cpu
from ..errors import DeviceError, ShapeError, shape_str
from ..tensor import Tensor, _new
from .registry import Op, _record, normalize_dim
from . import registry as R


def _reshape_kernel(xp):
    def reshape(x, shape):
        return x.reshape(shape)
    return reshape


def _infer_shape(shape, numel: int, op: str = "reshape") -> tuple:
    """Resolve one -1 in ``shape`` against ``numel``, with a clear error when it cannot fit."""
    shape = tuple(int(s) for s in shape)
    known = 1
    free = [i for i, s in enumerate(shape) if s == -1]
    for s in shape:
        if s != -1:
            known *= s
    if len(free) > 1 or (free and (known == 0 or numel % known)) or (not free and known != numel):
        raise ShapeError(f"{op}: shape {list(shape)} is invalid for a tensor of {numel} elements")
    if free:
        shape = shape[:free[0]] + (numel // known,) + shape[free[0] + 1:]
    return shape


reshape_ = Op("reshape", _reshape_kernel, vjp=lambda g, out, x, shape: (g.reshape(x.shape),),
              saves=False, view=True, shape=lambda s, shape: shape, dtype=lambda d, shape: d,
              onnx="Reshape")
permute_ = Op("permute", lambda xp: lambda x, axes: x.transpose(axes),
              vjp=lambda g, out, x, axes: (g.permute(*np.argsort(axes).tolist()),), saves=False, view=True,
              shape=lambda s, axes: tuple(s[a] for a in axes), dtype=lambda d, axes: d, onnx="Transpose")
expand_ = Op("expand", lambda xp: lambda x, shape: xp.broadcast_to(x, shape),
             vjp=lambda g, out, x, shape: (g,), saves=False, view=True,  # the engine sums back
             shape=lambda s, shape: shape, dtype=lambda d, shape: d, onnx="Expand")
flip_ = Op("flip", lambda xp: lambda x, axes: xp.flip(x, axes),
           vjp=lambda g, out, x, axes: (g.flip(axes),), saves=False, view=True,
           shape=lambda s, axes: s, dtype=lambda d, axes: d)


# -- indexing -------------------------------------------------------------------------------
def _is_basic(index: tuple) -> bool:
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in index)


def _getitem_kernel(xp):
    def getitem(x, index):
        r = x[index]
        return r if isinstance(r, xp.ndarray) else xp.asarray(r)
    return getitem


def _index_add_kernel(xp):
    def index_add_into_zeros(g, shape, index):
        z = xp.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            z[index] = g
        else:
            _add_at(xp, z, index, g)  # accumulates repeated indices
        return z
    return index_add_into_zeros


def _add_at(xp, out, index, values) -> None:
    """out[index] += values, accumulating repeated indices."""
    if xp is np:
        np.add.at(out, index, values)
    else:
        import cupyx
        cupyx.scatter_add(out, index, values)


def _index_put_kernel(xp):
    def index_put(x, v, index):
        out = x.copy()
        out[index] = v
        return out
    return index_put


getitem_ = Op("getitem", _getitem_kernel, saves=False, view=True,
              vjp=lambda g, out, x, index: (index_add_(g, shape=tuple(x.shape), index=index),),
              shape=None, dtype=lambda d, index: d, onnx="Gather")
index_add_ = Op("index_add", _index_add_kernel, saves=False,
                vjp=lambda g, out, src, shape, index: (getitem_(g, index=index),),
                shape=lambda s, shape, index: shape, dtype=lambda d, shape, index: d, onnx="ScatterND")
index_put_ = Op("index_put", _index_put_kernel, saves=False,
                vjp=lambda g, out, x, v, index: (index_put_(g, 0.0, index=index), getitem_(g, index=index)),
                shape=lambda s, vs, index: s, dtype=lambda d, vd, index: d, onnx="ScatterND")


def _convert_index(x: Tensor, key, op: str):
    """A user index -> a tuple of ints/slices/None/Ellipsis/backend arrays (device-checked)."""
    if not isinstance(key, tuple):
        key = (key,)
    out = []
    for k in key:
        if isinstance(k, Tensor):
            if k._dev is not x._dev:
                raise DeviceError(f"{op}: index tensor is on {k._dev} but the tensor is on {x._dev}")
            if k._data.dtype.kind not in "iub":
                raise ShapeError(f"{op}: tensors used as indices must be integer or bool, got {k.dtype.name}")
            out.append(k._data)
        elif isinstance(k, (list, np.ndarray)):
            a = np.asarray(k)
            if a.size == 0:
                a = a.astype(np.int64)
            out.append(backend_for(x._dev).from_host(a, x._dev) if x._dev is not cpu else a)
        elif isinstance(k, (bool, np.bool_)):
            out.append(bool(k))
        elif isinstance(k, (int, np.integer)):
            out.append(int(k))
        elif k is None or k is Ellipsis or isinstance(k, slice):
            if isinstance(k, slice) and k.step is not None and k.step <= 0:
                raise ShapeError(f"{op}: slice step must be positive (got {k.step}); use .flip() to reverse")
            out.append(k)
        else:
            raise ShapeError(f"{op}: unsupported index of type {type(k).__name__}")
    return tuple(out)


def getitem(x: Tensor, key) -> Tensor:
    """``x[key]``: ints, slices with steps, None, ..., integer and boolean tensors/arrays."""
    index = _convert_index(x, key, "getitem")
    try:
        return getitem_(x, index=index)
    except ShapeError as e:
        raise ShapeError(f"getitem: index {key!r} does not fit a tensor of shape "
                         f"{tuple(x.shape)}: {e.__cause__ or e}") from None


def setitem(x: Tensor, key, value) -> None:
    """``x[key] = value`` in place. Under autograd the write is recorded (like PyTorch)."""
    from .inplace import apply_inplace
    index = _convert_index(x, key, "setitem")
    if not isinstance(value, Tensor):
        value = Tensor._const(value, x.dtype, x._dev)
    elif value._dev is not x._dev:
        raise DeviceError(f"setitem: value is on {value._dev} but the tensor is on {x._dev}")
    apply_inplace(x, lambda t: index_put_(t, value.to(t.dtype), index=index), "setitem",
                  others=(value,))


# -- shape-changing primitives -----------------------------------------------------------------
def _pad_kernel(xp):
    def pad(x, widths, value=0.0):
        return xp.pad(x, widths, mode="constant", constant_values=value)
    return pad


def _pad_vjp(g, out, x, widths, value=0.0):
    return (g[tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))],)


pad_ = Op("pad", _pad_kernel, vjp=_pad_vjp, saves=False, onnx="Pad",
          shape=lambda s, widths, value=0.0: tuple(n + b + a for n, (b, a) in zip(s, widths)),
          dtype=lambda d, widths, value=0.0: d)


def _cat_vjp(g, out, *xs, axis):
    grads, start = [], 0
    for x in xs:
        n = x.shape[axis]
        grads.append(g[(slice(None),) * axis + (slice(start, start + n),)])
        start += n
    return tuple(grads)


def _cat_shape(*shapes, axis):
    s = list(shapes[0])
    s[axis] = sum(sh[axis] for sh in shapes)
    return tuple(s)


cat_ = Op("cat", lambda xp: lambda *xs, axis: xp.concatenate(xs, axis=axis), vjp=_cat_vjp, saves=False,
          shape=_cat_shape, dtype=lambda *ds, axis: ds[0], onnx="Concat")


def _gather_kernel(xp):
    def gather(x, index, axis):
        # PyTorch allows index to be smaller than x outside ``axis``: crop x to match.
        crop = tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))
        return xp.take_along_axis(x[crop], index, axis=axis)
    return gather


def _scatter_add_kernel(xp):
    def scatter_add(x, index, src, axis):
        out = x.copy()
        grids = list(xp.indices(index.shape, sparse=True))
        grids[axis] = index
        src = src[tuple(slice(0, n) for n in index.shape)]
        _add_at(xp, out, tuple(grids), src)
        return out
    return scatter_add


def _gather_vjp(g, out, x, index, axis):
    from ..creation import zeros
    return scatter_add_(zeros(x.shape, dtype=g.dtype, device=g.device), index, g, axis=axis), None


def _scatter_add_vjp(g, out, x, index, src, axis):
    gs = gather_(g, index, axis=axis)
    if tuple(gs.shape) != tuple(src.shape):  # src larger than index: the rest gets no gradient
        gs = pad_(gs, widths=tuple((0, s - n) for s, n in zip(src.shape, gs.shape)))
    return g, None, gs


gather_ = Op("gather", _gather_kernel, vjp=_gather_vjp, onnx="GatherElements",
             shape=lambda s, i, axis: i, dtype=lambda d, i, axis: d)
scatter_add_ = Op("scatter_add", _scatter_add_kernel, vjp=_scatter_add_vjp,
                  onnx="ScatterElements", shape=lambda s, i, src, axis: s, dtype=lambda d, i, sd, axis: d)


class _ToDevice(Op):
    """Copy between devices: the one op whose input and output backends differ."""

    def _make_fn(self):
        op = self

        def to_device(x: Tensor, *, device):
            return op._move(x, device)
        return to_device

    def _move(self, x: Tensor, device):
        if R._tracer is not None:
            return R._tracer(self, (x,), {"device": device})
        host = backend_for(x._dev).to_host(x._data)
        out = _new(backend_for(device).from_host(host, device), device)
        if R._grad_enabled and x.requires_grad:
            _record(self, out, (x,), {"device": device})
        return out


to_device = _ToDevice("to_device", "asarray", vjp=lambda g, out, x, device: (g.to(x.device),), saves=False,
                      shape=lambda s, device: s, dtype=lambda d, device: d)


# -- public functions (PyTorch names) -------------------------------------------------------
def _shape_args(shape) -> tuple:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(s) for s in shape)


def reshape(x: Tensor, *shape) -> Tensor:
    """Same data, new shape; one dim may be -1. ``x.reshape(2, -1)``."""
    shape = _infer_shape(_shape_args(shape), x.numel())
    if shape == x.shape:
        return x
    return reshape_(x, shape=shape)


view = reshape


def view_as(x: Tensor, other: Tensor) -> Tensor:
    return reshape(x, other.shape)


def permute(x: Tensor, *dims) -> Tensor:
    """Reorder dimensions. ``x.permute(0, 2, 1)``."""
    dims = _shape_args(dims)
    if len(dims) != x.ndim:
        raise ShapeError(f"permute: got {len(dims)} dims {list(dims)} for a tensor of shape "
                         f"{tuple(x.shape)}; give one entry per dimension")
    axes = tuple(normalize_dim(d, x.ndim, "permute") for d in dims)
    if sorted(axes) != list(range(x.ndim)):
        raise ShapeError(f"permute: dims {list(dims)} repeat a dimension")
    if axes == tuple(range(x.ndim)):
        return x
    return permute_(x, axes=axes)


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swap two dimensions. ``x.transpose(0, 1)``."""
    n = x.ndim
    if n < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return x
    axes = list(range(n))
    a, b = normalize_dim(dim0, n, "transpose"), normalize_dim(dim1, n, "transpose")
    axes[a], axes[b] = axes[b], axes[a]
    return permute(x, *axes)


def expand(x: Tensor, *shape) -> Tensor:
    """Broadcast to a larger shape without copying; -1 keeps a dimension. ``x.expand(4, -1)``."""
    shape = _shape_args(shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ShapeError(f"expand: target shape {list(shape)} has fewer dims than the tensor {tuple(x.shape)}")
    full = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(shape))
    for i, s in enumerate(x.shape):
        if s != 1 and s != full[i + lead]:
            raise ShapeError(f"expand: cannot expand shape {tuple(x.shape)} to {list(shape)}: "
                             f"dimension {i} has size {s}, which is not 1")
    if full == x.shape:
        return x
    return expand_(x, shape=full)


broadcast_to = expand


def expand_as(x: Tensor, other: Tensor) -> Tensor:
    return expand(x, other.shape)


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Remove size-1 dims (all, or those in ``dim``)."""
    if dim is None:
        dims = [i for i, s in enumerate(x.shape) if s == 1]
    else:
        dims = [normalize_dim(d, x.ndim, "squeeze") for d in (dim if isinstance(dim, (tuple, list)) else (dim,))]
    shape = tuple(s for i, s in enumerate(x.shape) if not (i in dims and s == 1))
    return reshape(x, shape)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Insert a size-1 dimension at ``dim``."""
    d = normalize_dim(dim, x.ndim + 1, "unsqueeze")
    return reshape(x, x.shape[:d] + (1,) + x.shape[d:])


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims start_dim..end_dim into one. ``x.flatten(1)``."""
    if x.ndim == 0:
        return reshape(x, (1,))
    s = normalize_dim(start_dim, x.ndim, "flatten")
    e = normalize_dim(end_dim, x.ndim, "flatten")
    return reshape(x, x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def unflatten(x: Tensor, dim: int, sizes) -> Tensor:
    d = normalize_dim(dim, x.ndim, "unflatten")
    return reshape(x, x.shape[:d] + tuple(sizes) + x.shape[d + 1:])


def flip(x: Tensor, dims) -> Tensor:
    """Reverse the order of elements along ``dims``."""
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    return flip_(x, axes=tuple(normalize_dim(d, x.ndim, "flip") for d in dims))


def _common(tensors, op):
    tensors = list(tensors)
    if not tensors:
        raise ShapeError(f"{op}: expected a non-empty list of tensors")
    d = tensors[0].dtype
    for t in tensors[1:]:
        d = D.promote(d, t.dtype)
    return [t if t.dtype is d else t.to(d) for t in tensors]


def cat(tensors, dim: int = 0) -> Tensor:
    """Concatenate along an existing dimension. ``ember.cat([a, b], dim=1)``."""
    ts = _common(tensors, "cat")
    ax = normalize_dim(dim, ts[0].ndim, "cat")
    for t in ts[1:]:
        if t.ndim != ts[0].ndim or any(a != b for i, (a, b) in enumerate(zip(t.shape, ts[0].shape)) if i != ax):
            raise ShapeError(f"cat: shapes {shape_str(*(x.shape for x in ts))} must match except in "
                             f"dimension {dim}")
    if len(ts) == 1:
        return ts[0]
    return cat_(*ts, axis=ax)


concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    """Join tensors of equal shape along a new dimension."""
    ts = _common(tensors, "stack")
    for t in ts[1:]:
        if t.shape != ts[0].shape:
            raise ShapeError(f"stack: all tensors must have the same shape, got {shape_str(*(x.shape for x in ts))}")
    d = normalize_dim(dim, ts[0].ndim + 1, "stack")
    return cat([unsqueeze(t, d) for t in ts], dim=d)


def split(x: Tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Split into chunks of a size, or of the given sizes. ``x.split(2, dim=1)``."""
    d = normalize_dim(dim, x.ndim, "split")
    n = x.shape[d]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        sizes = [min(step, n - i) for i in range(0, n, step)] if n else [0]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ShapeError(f"split: sizes {sizes} sum to {sum(sizes)}, but dimension {dim} has size {n}")
    out, start = [], 0
    for s in sizes:
        out.append(getitem(x, (slice(None),) * d + (slice(start, start + s),)))
        start += s
    return tuple(out)


def chunk(x: Tensor, chunks: int, dim: int = 0) -> tuple:
    """Split into ``chunks`` nearly equal pieces."""
    n = x.shape[normalize_dim(dim, x.ndim, "chunk")]
    return split(x, max(1, -(-n // chunks)), dim)


def unbind(x: Tensor, dim: int = 0) -> tuple:
    d = normalize_dim(dim, x.ndim, "unbind")
    return tuple(getitem(x, (slice(None),) * d + (i,)) for i in range(x.shape[d]))


def narrow(x: Tensor, dim: int, start: int, length: int) -> Tensor:
    d = normalize_dim(dim, x.ndim, "narrow")
    return getitem(x, (slice(None),) * d + (slice(start, start + length),))


def pad(x: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """PyTorch's pad: ``pad`` lists (left, right) for the last dim, then the one before...
    Modes: constant, reflect, replicate, circular."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ShapeError(f"pad: padding {list(pad)} must have an even length of at most 2*{x.ndim}")
    widths = [(0, 0)] * x.ndim
    for i in range(len(pad) // 2):
        widths[x.ndim - 1 - i] = (int(pad[2 * i]), int(pad[2 * i + 1]))
    if mode == "constant":
        if any(b < 0 or a < 0 for b, a in widths):  # negative padding crops
            x = getitem(x, tuple(slice(-b if b < 0 else 0, n + a if a < 0 else n) for (b, a), n in zip(widths, x.shape)))
            widths = [(max(b, 0), max(a, 0)) for b, a in widths]
        return pad_(x, widths=tuple(widths), value=value) if any(b or a for b, a in widths) else x
    if mode not in ("reflect", "replicate", "circular"):
        raise ShapeError(f"pad: unknown mode {mode!r}; use constant, reflect, replicate or circular")
    for d, (b, a) in enumerate(widths):
        if not (b or a):
            continue
        n = x.shape[d]
        sl = lambda s: getitem(x, (slice(None),) * d + (s,))
        if mode == "reflect":
            if b >= n or a >= n:
                raise ShapeError(f"pad: reflect padding ({b}, {a}) must be smaller than dimension {d} of size {n}")
            left = flip(sl(slice(1, b + 1)), d) if b else None
            right = flip(sl(slice(n - 1 - a, n - 1)), d) if a else None
        elif mode == "replicate":
            left = expand(sl(slice(0, 1)), *[b if i == d else -1 for i in range(x.ndim)]) if b else None
            right = expand(sl(slice(n - 1, n)), *[a if i == d else -1 for i in range(x.ndim)]) if a else None
        else:
            left = sl(slice(n - b, n)) if b else None
            right = sl(slice(0, a)) if a else None
        x = cat([p for p in (left, x, right) if p is not None], dim=d)
    return x


def gather(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """``out[i][j] = x[index[i][j]][j]`` for dim 0 (PyTorch's gather)."""
    return gather_(x, index, axis=normalize_dim(dim, x.ndim, "gather"))


def scatter_add(x: Tensor, dim: int, index: Tensor, src: Tensor) -> Tensor:
    """Out-of-place: ``out = x.clone(); out[index[i][j]][j] += src[i][j]`` for dim 0."""
    return scatter_add_(x, index, src.to(x.dtype), axis=normalize_dim(dim, x.ndim, "scatter_add"))


def index_select(x: Tensor, dim: int, index: Tensor) -> Tensor:
    """Pick entries ``index`` (1-D integer tensor) along ``dim``."""
    d = normalize_dim(dim, x.ndim, "index_select")
    return getitem(x, (slice(None),) * d + (index,))


def masked_fill(x: Tensor, mask: Tensor, value) -> Tensor:
    """Where ``mask`` is True, use ``value``; else ``x``."""
    from .elementwise import where
    if isinstance(value, Tensor):
        value = value.to(x.dtype)
    return where(mask, value, x)


def _tri(x: Tensor, diagonal: int, lower: bool) -> Tensor:
    from .elementwise import where
    n, m = x.shape[-2], x.shape[-1]
    keep = np.tri(n, m, diagonal, dtype=bool) if lower else ~np.tri(n, m, diagonal - 1, dtype=bool)
    return where(Tensor._const(keep, D.bool_, x._dev), x, 0)


def tril(x: Tensor, diagonal: int = 0) -> Tensor:
    """Keep the lower triangle (on and below ``diagonal``) of the last two dims."""
    return _tri(x, diagonal, True)


def triu(x: Tensor, diagonal: int = 0) -> Tensor:
    """Keep the upper triangle (on and above ``diagonal``) of the last two dims."""
    return _tri(x, diagonal, False)


def repeat(x: Tensor, *sizes) -> Tensor:
    """Tile the tensor ``sizes`` times along each dim (PyTorch's repeat)."""
    sizes = _shape_args(sizes)
    x = reshape(x, (1,) * (len(sizes) - x.ndim) + tuple(x.shape))
    inter = []
    for s, n in zip(sizes, x.shape):
        inter += [s, n]
    y = expand(reshape(x, tuple(v for n in x.shape for v in (1, n))), *inter)
    return reshape(y, tuple(s * n for s, n in zip(sizes, x.shape)))


def contiguous(x: Tensor) -> Tensor:
    return x if x._data.flags.c_contiguous else clone(x)


def clone(x: Tensor) -> Tensor:
    """A copy with its own memory (gradients flow through it)."""
    from .elementwise import copy
    return copy(x)


def movedim(x: Tensor, source: int, destination: int) -> Tensor:
    s, d = normalize_dim(source, x.ndim, "movedim"), normalize_dim(destination, x.ndim, "movedim")
    order = [i for i in range(x.ndim) if i != s]
    order.insert(d, s)
    return permute(x, *order)
