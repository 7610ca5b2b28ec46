"""A native kernel for ``cat`` of large arrays: the parts are read with their strides (the
attention gradients are transposed views) and copied row by row, rows spread over threads.
NumPy's concatenate copies them on one thread (0.35 ms for the GPT step's 1.5 MB q/k/v
gradient, twice a step).

>>> source = render("c0", node, par_min)   # node: cat(a, b, ..., axis=k), arrays of one dtype
"""
from __future__ import annotations

import numpy as np

from ..graph import Var
from .c import CTYPE, ctype
from .native_op import NativeOp

MIN_ELEMENTS = 1 << 15  # smaller results: NumPy's single pass costs less than a thread wake-up


def _size(v) -> int:
    return int(np.prod(v.shape, dtype=np.int64))


def supported(node) -> bool:
    if node.op.name != "cat" or len(node.args) < 2 or _size(node.out) < MIN_ELEMENTS:
        return False
    out = node.out
    return (all(type(a) is Var and a.dtype == out.dtype and len(a.shape) == len(out.shape) for a in node.args)
            and np.dtype(out.dtype).name in CTYPE and len(out.shape) >= 1)


def render(name: str, node, par_min: int = 0) -> str:
    """C source: each part's rows (all dims but the last) copied to their place in the
    C-contiguous result; a wrapper that reads the parts' strides at run time."""
    parts, out = node.args, node.out
    t, nd, axis = ctype(out.dtype), len(out.shape), node.params["axis"] % len(out.shape)
    ostr = [int(np.prod(out.shape[d + 1:], dtype=np.int64)) for d in range(nd)]
    rows = [int(np.prod(p.shape[:-1], dtype=np.int64)) for p in parts]
    total = sum(rows)
    par = "" if _size(out) >= par_min else " if(0)"
    cases, first, offset = [], 0, 0
    for j, p in enumerate(parts):
        # the multi-index of row r of part j (row-major over its dims but the last)
        idx = []
        for d in range(nd - 2, -1, -1):
            idx.append(f"const int64_t i{d} = q % {p.shape[d]}; q /= {p.shape[d]};")
        src_off = " + ".join([f"i{d} * s[{j}][{d}]" for d in range(nd - 1)] or ["0"])
        dst_off = " + ".join([f"i{d} * {ostr[d]}" for d in range(nd - 1)] or ["0"]) + f" + {offset * ostr[axis]}"
        L = p.shape[-1]
        cases.append(f"""        {"if" if j == 0 else "else if"} (r < {first + rows[j]}) {{
            int64_t q = r - {first};
            {" ".join(idx)}
            const {t}* src = x[{j}] + {src_off};
            {t}* dst = out + {dst_off};
            if (s[{j}][{nd - 1}] == 1) memcpy(dst, src, sizeof({t}) * {L});
            else for (int64_t c = 0; c < {L}; c++) dst[c] = src[c * s[{j}][{nd - 1}]];
        }}""")
        first += rows[j]
        offset += p.shape[axis]
    n = len(parts)
    shapes = ", ".join("{" + ", ".join(map(str, p.shape)) + "}" for p in parts)
    return f"""
static void {name}(const {t}* const* x, int64_t (*s)[{nd}], {t}* restrict out) {{
    #pragma omp parallel for schedule(static){par}
    for (int64_t r = 0; r < {total}; r++) {{
{chr(10).join(cases)}
    }}
}}
static PyObject* py_{name}(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {{
    static const Py_ssize_t shape[{n}][{nd}] = {{{shapes}}};
    Py_buffer b[{n + 1}]; int got = 0, ok = 1;
    const {t}* x[{n}]; int64_t s[{n}][{nd}];
    if (nargs != {n + 1}) {{ PyErr_SetString(PyExc_TypeError, "{name}: expected {n + 1} arrays"); return NULL; }}
    for (; got < {n}; got++) {{
        if (PyObject_GetBuffer(args[got], &b[got], PyBUF_STRIDES) < 0) goto fail;
        ok = ok && b[got].ndim == {nd} && b[got].itemsize == sizeof({t});
        for (int d = 0; ok && d < {nd}; d++) {{
            ok = b[got].shape[d] == shape[got][d] && b[got].strides[d] % (Py_ssize_t)sizeof({t}) == 0;
            s[got][d] = b[got].strides[d] / (Py_ssize_t)sizeof({t});
        }}
        x[got] = (const {t}*)b[got].buf;
    }}
    if (PyObject_GetBuffer(args[{n}], &b[{n}], PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) goto fail;
    got++;
    if (!ok || b[{n}].len != {_size(out)} * (Py_ssize_t)sizeof({t})) {{
        PyErr_SetString(PyExc_ValueError, "{name}: arrays do not have the compiled shapes");
        goto fail;
    }}
    Py_BEGIN_ALLOW_THREADS
    {name}(x, s, ({t}*)b[{n}].buf);
    Py_END_ALLOW_THREADS
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);
    return NULL;
}}
"""


class Cat(NativeOp):
    """The op of a ``cat`` node run by the native kernel ``fn``."""

    def cpu(self, *xs, axis):
        shape = list(xs[0].shape)
        shape[axis] = sum(x.shape[axis] for x in xs)
        out = np.empty(shape, xs[0].dtype)
        self.fn(*xs, out)
        return out
