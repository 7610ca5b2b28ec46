"""Slice scatters: gradients of slices of one tensor (attention's q, k, v cut out of one
projection) come back as ``index_add`` into zeros, one full-size array per slice, then added
up. Two such scatters into adjacent ranges of one axis are one scatter of their concatenation;
when the ranges cover the axis, the sum is the concatenation itself (no zero-filled arrays, no
adds: ~0.5 ms per attention layer of the GPT step). Only -0.0 may come out as -0.0 where the
adds gave +0.0.

>>> g = rewrite(g, RULES)
"""
from __future__ import annotations

from ...ops import movement as M
from . import rule

RULES: dict = {}


def _range(n):
    """(axis, start, stop) when index_add node ``n`` writes a step-1 slice of one axis (all
    other axes whole) into zeros, else None."""
    index, shape = n.params.get("index"), n.out.shape
    if not isinstance(index, tuple) or index.count(Ellipsis) > 1:
        return None
    if Ellipsis in index:
        at = index.index(Ellipsis)
        index = index[:at] + (slice(None),) * (len(shape) - len(index) + 1) + index[at + 1:]
    if len(index) > len(shape) or not all(type(i) is slice for i in index):
        return None
    cut = [(d, i.indices(shape[d])) for d, i in enumerate(index) if i != slice(None)]
    if len(cut) != 1 or cut[0][1][2] != 1:
        return None
    d, (start, stop, _) = cut[0]
    return (d, start, stop) if stop > start else None


@rule(RULES, "add")
def adjacent_slice_scatters(n, rw):
    a, b = (rw.prod(x, "index_add") for x in n.args)
    if a is None or b is None or any(rw.uses.get(p.out.id, 0) > 1 for p in (a, b)):
        return None
    ra, rb = _range(a), _range(b)
    if ra is None or rb is None or ra[0] != rb[0] or not a.out.shape == b.out.shape == n.out.shape:
        return None
    if rb[2] == ra[1]:  # b's range comes first
        a, b, ra, rb = b, a, rb, ra
    if ra[2] != rb[1] or a.out.dtype != n.out.dtype or b.out.dtype != n.out.dtype:
        return None
    d = ra[0]
    both = _cat(rw, (a.args[0], b.args[0]), d)
    if both.shape == n.out.shape:
        return both
    index = (slice(None),) * d + (slice(ra[1], rb[2]),)
    return rw.emit(M.index_add_, both, shape=n.out.shape, index=index)


def _cat(rw, parts, axis):
    """cat of ``parts``, splicing in the pieces of a part that is itself a cat on ``axis``
    read nowhere else (three slices make one cat, not two)."""
    flat = _spliced(rw, parts, axis)
    merged = _unmerged(rw, flat, axis)
    if merged is not None:  # cat the unmerged arrays, then merge once: a free view
        shape = flat[0].shape[:axis] + (sum(x.shape[axis] for x in flat),)
        return rw.emit(M.reshape_, rw.emit(M.cat_, *_spliced(rw, merged, axis), axis=axis), shape=shape)
    return rw.emit(M.cat_, *flat, axis=axis)


def _spliced(rw, parts, axis) -> list:
    flat = []
    for x in parts:
        inner = rw.prod(x, "cat")
        keep = inner is None or inner.params["axis"] != axis or rw.uses.get(x.id, 0) > 1
        flat += [x] if keep else list(inner.args)
    return flat


def _unmerged(rw, parts, axis):
    """When every part is a reshape merging trailing dims (axis on, the same dims after the
    first for every part) of some array, those arrays: concatenating them and reshaping once
    skips one copy per part (the heads of attention's gradients, permuted views that a
    reshape must copy)."""
    if axis != len(parts[0].shape) - 1:
        return None
    srcs = []
    for x in parts:
        r = rw.prod(x, "reshape")
        if r is None:
            return None
        src = r.args[0]
        if src.shape[:axis] != x.shape[:axis] or len(src.shape) <= axis + 1:
            return None
        srcs.append(src)
    if len({s.shape[axis + 1:] for s in srcs}) != 1:
        return None
    return srcs
