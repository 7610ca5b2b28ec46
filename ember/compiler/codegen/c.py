"""C code generation: each Fused node becomes one C function (a loop nest over its iteration
shape, each member op inlined from its registry ``c`` expression, an optional reduction at the
end) plus a CPython wrapper that takes the arrays through the buffer protocol. All kernels of
one program go into one extension module, compiled once (see cache.py).

>>> source = render_module([("k0", fused0), ("k1", fused1)])
"""
from __future__ import annotations

import re

import numpy as np

from ..cache import PLACEHOLDER
from ..graph import Var

CTYPE = {"float32": "float", "float64": "double", "int64": "int64_t", "int32": "int32_t",
         "int16": "int16_t", "int8": "int8_t", "uint8": "uint8_t", "bool": "_Bool"}
# Loops over fewer elements stay on one thread: below this, waking a spinning thread and the
# join (a few µs) cost more than the half of the loop they save. (The GPT step ran as fast at
# 2^14 and 2^16; threads sleeping instead of spinning need ~2^20: see ../threads.py.)
PAR_MIN = 1 << 15

# Registry expressions that are wrong or unsupported for some dtypes in C (kept here rather
# than in the registry because only C needs them).
_INT_UNSAFE = {"floor_divide", "remainder", "pow"}  # C truncates / returns double for integers
_BOOL_EXPR = {"bitwise_not": "(!{0})"}

PRELUDE = r"""
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#else
static inline int omp_get_max_threads(void) { return 1; }
static inline int omp_get_thread_num(void) { return 0; }
#endif
#include <tgmath.h>
/* -ffast-math assumes no NaN/inf; these tests look at the bits, so they stay exact. */
static inline int em_isnan_f(float x) { uint32_t u; memcpy(&u, &x, 4); return (u & 0x7fffffffu) > 0x7f800000u; }
static inline int em_isnan_d(double x) { uint64_t u; memcpy(&u, &x, 8); return (u & 0x7fffffffffffffffull) > 0x7ff0000000000000ull; }
static inline int em_isinf_f(float x) { uint32_t u; memcpy(&u, &x, 4); return (u & 0x7fffffffu) == 0x7f800000u; }
static inline int em_isinf_d(double x) { uint64_t u; memcpy(&u, &x, 8); return (u & 0x7fffffffffffffffull) == 0x7ff0000000000000ull; }
#undef isnan
#undef isinf
#undef isfinite
#define isnan(x) _Generic((x), float: em_isnan_f, default: em_isnan_d)(x)
#define isinf(x) _Generic((x), float: em_isinf_f, default: em_isinf_d)(x)
#define isfinite(x) (!isnan(x) && !isinf(x))
/* libmvec's vector exp falls back to scalar exp for a whole vector when one lane is far out of
   range (a causal mask's -inf: 5x slower softmax). Below the clamp exp is 0 or subnormal, so
   the clamped argument and a select give the same (flushed) result at vector speed. */
static inline float em_expf(float x) { float r = expf(x < -87.0f ? -87.0f : x); return x < -87.0f ? 0.0f : r; }
static inline double em_expd(double x) { double r = exp(x < -708.0 ? -708.0 : x); return x < -708.0 ? 0.0 : r; }
#undef exp
#define exp(x) _Generic((x), float: em_expf, default: em_expd)(x)
"""


def supported(node) -> bool:
    """Whether the C generator renders this (fusable) node correctly."""
    op = node.op
    kind = node.vars[0].dtype.kind if node.vars else "f"
    if op.name in _INT_UNSAFE and kind != "f":
        return False
    if op.name == "round" and node.params.get("decimals", 0) != 0:
        return False
    if op.name.startswith("bitwise") and kind == "f":
        return False
    return True


def ctype(dtype) -> str:
    return CTYPE[np.dtype(dtype).name]


_FLOAT_LIT = re.compile(r"(?<![\w.])(\d+\.\d*(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+)")


def _literal(v, dtype) -> str:
    """A typed C literal for a NumPy scalar."""
    x = v.item() if isinstance(v, np.generic) else v
    t = ctype(dtype)
    if isinstance(x, bool):
        return "1" if x else "0"
    if isinstance(x, float):
        if x != x:
            return f"(({t})NAN)"
        if x in (float("inf"), float("-inf")):
            return f"(({t}){'-' if x < 0 else ''}INFINITY)"
        return f"(({t}){x!r})"
    return f"(({t}){int(x)}LL)"


def _expr(node, operands: list) -> str:
    op = node.op
    out_t = node.out.dtype
    arg_t = node.vars[0].dtype if node.vars else out_t
    if op.name in ("expand", "copy"):
        return operands[0]
    if op.name == "cast":
        return f"(({operands[0]}) != 0)" if out_t == np.bool_ else f"(({ctype(out_t)})({operands[0]}))"
    if arg_t == np.bool_ and op.name in _BOOL_EXPR:
        tmpl = _BOOL_EXPR[op.name]
    else:
        tmpl = op.c(**node.params) if callable(op.c) else op.c
        if arg_t.kind == "f":  # literals in the template take the operands' precision
            tmpl = _FLOAT_LIT.sub(lambda m: f"(({ctype(arg_t)}){m.group(1)})", tmpl)
    return tmpl.format(*operands)


def _strides(shape, loop) -> list:
    """Element strides of a C-contiguous array of ``shape`` broadcast (right-aligned) to ``loop``."""
    shape = (1,) * (len(loop) - len(shape)) + tuple(shape)
    st, acc = [0] * len(loop), 1
    for d in range(len(loop) - 1, -1, -1):
        st[d] = 0 if shape[d] == 1 and loop[d] != 1 else acc
        acc *= shape[d]
    return [0 if loop[d] == 1 else s for d, s in enumerate(st)]


def _collapse(loop, strides: list, reduced: list):
    """Merge adjacent dims that every operand walks contiguously; drop size-1 dims."""
    dims = [d for d in range(len(loop)) if loop[d] != 1]
    sizes = [loop[d] for d in dims]
    sts = [[s[d] for d in dims] for s in strides]
    red = [reduced[d] for d in dims]
    i = len(sizes) - 2
    while i >= 0:
        if red[i] == red[i + 1] and all(s[i] == s[i + 1] * sizes[i + 1] for s in sts):
            sizes[i] *= sizes[i + 1]
            for s in sts:
                s[i] = s[i + 1]
                del s[i + 1]
            del sizes[i + 1], red[i + 1]
        i -= 1
    return sizes, sts, red


def render_kernel(name: str, fused, par_min: int = PAR_MIN) -> str:
    """C source of one fused kernel and its Python wrapper; loops over ``par_min`` elements or
    more run on all OpenMP threads."""
    loop = tuple(fused.loop)
    r = fused.reduce
    axis = None
    if r is not None:
        axis = r.params.get("axis")
        axis = tuple(range(len(loop))) if axis is None else tuple(axis)
    reduced = [r is not None and d in axis for d in range(len(loop))]
    ins = fused.inputs
    full_outs = fused.results[:-1] if r is not None else fused.results
    operand_strides = [_strides(v.shape, loop) for v in ins] + [_strides(loop, loop) for _ in full_outs]
    if r is not None:
        kept = tuple(1 if reduced[d] else loop[d] for d in range(len(loop)))
        operand_strides.append([0 if reduced[d] else s for d, s in enumerate(_strides(kept, loop))])
    sizes, sts, red = _collapse(loop, operand_strides, reduced)
    nd = len(sizes)
    idx = [f"i{d}" for d in range(nd)]

    def off(k):
        terms = [f"{idx[d]}*{sts[k][d]}" if sts[k][d] != 1 else idx[d] for d in range(nd) if sts[k][d]]
        return " + ".join(terms) or "0"

    body = []
    names = {}
    for j, v in enumerate(ins):
        names[v.id] = f"x{j}"
        body.append(f"const {ctype(v.dtype)} x{j} = in{j}[{off(j)}];")
    for m in fused.nodes:
        if m is r:
            continue
        operands = [names[a.id] if type(a) is Var else _literal(a, getattr(a, "dtype", m.out.dtype))
                    for a in m.args]
        names[m.out.id] = f"t{m.out.id}"
        body.append(f"const {ctype(m.out.dtype)} t{m.out.id} = {_expr(m, operands)};")
    for k, v in enumerate(full_outs):
        body.append(f"out{k}[{off(len(ins) + k)}] = {names[v.id]};")

    # An output written over one of the inputs (fused.alias, see pipeline.plan_inplace) reads
    # and writes the same element in the same iteration: fine, but not ``restrict``.
    rs = "" if getattr(fused, "alias", None) else " restrict"
    params = [f"const {ctype(v.dtype)}*{rs} in{j}" for j, v in enumerate(ins)]
    params += [f"{ctype(v.dtype)}*{rs} out{k}" for k, v in enumerate(full_outs)]
    total = int(np.prod(loop, dtype=np.int64))
    lines = [f"static void {name}({', '.join(params + ([f'{ctype(r.out.dtype)}*{rs} red'] if r else []))}) {{"]
    if r is None:
        lines += _nest(sizes, idx, body, total, parallel=True, par_min=par_min)
    else:
        src = names[r.args[0].id]
        acc_t = "double" if r.out.dtype.kind == "f" else ctype(r.out.dtype)
        kind = r.op.name
        init = {"sum": "0", "max": "-INFINITY", "min": "INFINITY"}[kind]
        upd = f"acc += {src};"  # sums (max and min: _minmax)
        nkept = red.index(True) if True in red else nd
        if all(red[nkept:]):  # reduced dims innermost: one accumulator per output element
            ro = off(len(sts) - 1)
            if kind == "sum":
                inner = [f"{acc_t} acc = 0;"] + _nest(sizes[nkept:], idx[nkept:], body + [upd], 0, parallel=False,
                                                       reduction="+:acc") + [f"red[{ro}] = acc;"]
            else:
                inner = _minmax(kind, ctype(r.out.dtype), src, sizes[nkept:], idx[nkept:], body, f"red[{ro}]")
            if nkept == 0 and kind == "sum":
                lines += [f"{acc_t} acc = 0;"]
                lines += _nest(sizes, idx, body + [upd], total, parallel=True, reduction="+:acc", simd=nd == 1,
                               par_min=par_min)
                lines += ["red[0] = acc;"]
            else:
                lines += _nest(sizes[:nkept], idx[:nkept], inner, total, parallel=True, simd=False, par_min=par_min)
        else:  # reduced dims outside kept ones: accumulate into the output in memory order
            n_red = int(np.prod(r.out.shape, dtype=np.int64))
            lines.append(f"for (int64_t k = 0; k < {n_red}; k++) red[k] = {init};")
            ro = off(len(sts) - 1)
            upd_mem = {"sum": f"red[{ro}] += {src};",
                       "max": f"if ({src} > red[{ro}] || isnan({src})) red[{ro}] = {src};",
                       "min": f"if ({src} < red[{ro}] || isnan({src})) red[{ro}] = {src};"}[kind]
            nsuf = len(red) - next(d for d in range(len(red) - 1, -1, -1) if not red[d]) - 1
            if kind == "sum" and nsuf:
                # Reduced dims innermost too (conv bias gradients: N, C, H*W -> C): sum them in
                # a register with a simd reduction, then add to memory once per outer index.
                inner = [f"{acc_t} acc = 0;"] + _nest(sizes[-nsuf:], idx[-nsuf:], body + [upd], 0, parallel=False,
                                                       reduction="+:acc") + [f"red[{ro}] += acc;"]
                serial = _nest(sizes[:-nsuf], idx[:-nsuf], inner, total, parallel=not red[0], simd=False,
                               par_min=par_min)
            else:
                serial = _nest(sizes, idx, body + [upd_mem], total, parallel=not red[0], simd=not red[-1],
                               par_min=par_min)
            if red[0] and kind == "sum" and total >= par_min:
                lines += _partial_sums(sizes, idx, body, src, ro, n_red, acc_t, total, not red[-1], serial)
            else:
                lines += serial
    lines.append("}")
    lines += _wrapper(name, ins, fused.results)
    return "\n".join(lines)


def _minmax(kind, t, src, sizes, idx, body, dest) -> list:
    """A max/min over the innermost loops in the value's own type (exact), with NaN
    propagation kept by an OR of the NaN tests: GCC vectorizes this select (vmaxps). No
    ``omp simd reduction(max:...)``: OpenMP starts its lanes at -FLT_MAX, so a row of -inf
    (a fully masked row) would come out as -FLT_MAX."""
    op, init = (">", "-INFINITY") if kind == "max" else ("<", "INFINITY")
    upd = f"acc = {src} {op} acc ? {src} : acc; nan_seen |= isnan({src});"
    loops = _nest(sizes, idx, body + [upd], 0, parallel=False, simd=False)
    return [f"{t} acc = {init}; int nan_seen = 0;"] + loops + [f"{dest} = nan_seen ? ({t})NAN : acc;"]


def _partial_sums(sizes, idx, body, src, ro, n_red, acc_t, total, simd, serial) -> list:
    """A sum whose outermost dim is reduced (column sums: bias gradients): each thread sums
    its share of that dim into its own partial row, then the partials are added up
    (``serial``, the one-thread loops, if the partials cannot be allocated)."""
    loops = _nest(sizes, idx, body + [f"p[{ro}] += {src};"], total, parallel=False, simd=simd)
    first = loops[0].strip()
    if first.startswith("#pragma omp simd"):
        loops[0] = loops[0].replace("#pragma omp simd", "#pragma omp for simd schedule(static)")
    else:
        loops.insert(0, "    #pragma omp for schedule(static)")
    return (["{ int nt = omp_get_max_threads();",
             f"  {acc_t}* part = ({acc_t}*)calloc((size_t)nt * {n_red}, sizeof({acc_t}));",
             "  if (!part) {"] + serial + ["  } else {",
             "  #pragma omp parallel",
             f"  {{ {acc_t}* p = part + (size_t)omp_get_thread_num() * {n_red};"]
            + loops
            + ["  }",
               f"  for (int64_t k = 0; k < {n_red}; k++) {{ {acc_t} a = 0; "
               f"for (int t = 0; t < nt; t++) a += part[(size_t)t * {n_red} + k]; red[k] = a; }}",
               "  free(part); } }"])


def _nest(sizes, idx, body, total, parallel, reduction=None, simd=True, par_min=PAR_MIN) -> list:
    """Loops over ``sizes``. The innermost loop is marked ``simd``: without it GCC leaves loops
    with an OpenMP reduction or a double accumulator scalar (libm called per element; measured
    ~10x slower on a gelu/sigmoid/tanh chain than with libmvec's vector functions). ``simd``
    False: the body carries a dependency that is not the ``reduction`` (max/min, nested loops)."""
    lines = []
    ind = "    "
    if not sizes:
        return [ind + b for b in body]
    red = f" reduction({reduction})" if reduction else ""
    for d, n in enumerate(sizes):
        inner = simd and d == len(sizes) - 1
        if d == 0 and parallel and total >= par_min:
            lines.append(ind + f"#pragma omp parallel for{' simd' if inner else ''} schedule(static){red}")
        elif inner:
            lines.append(ind + f"#pragma omp simd{red}")
        lines.append(ind + f"for (int64_t {idx[d]} = 0; {idx[d]} < {n}; {idx[d]}++) {{")
        ind += "    "
    lines += [ind + b for b in body]
    for _ in sizes:
        ind = ind[:-4]
        lines.append(ind + "}")
    return lines


def _wrapper(name, ins, outs, checked: bool = False) -> list:
    """The CPython wrapper of C function ``name`` (arrays in, arrays written); ``checked``: the
    function returns nonzero when it could not allocate its scratch memory (MemoryError)."""
    n = len(ins) + len(outs)
    sizes = ", ".join(str(v.nbytes) for v in ins + outs)
    call = ", ".join(f"({ctype(v.dtype)}*)b[{j}].buf" for j, v in enumerate(ins + outs))
    return [
        f"static PyObject* py_{name}(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {{",
        f"    static const Py_ssize_t size[{n}] = {{{sizes}}};",
        f"    Py_buffer b[{n}]; int got = 0;",
        f"    if (nargs != {n}) {{ PyErr_SetString(PyExc_TypeError, \"{name}: expected {n} arrays\"); return NULL; }}",
        f"    for (; got < {n}; got++) {{",
        f"        int flags = got < {len(ins)} ? PyBUF_C_CONTIGUOUS : (PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE);",
        "        if (PyObject_GetBuffer(args[got], &b[got], flags) < 0) goto fail;",
        "        if (b[got].len != size[got]) {",
        f"            PyErr_Format(PyExc_ValueError, \"{name}: array %d has %zd bytes, expected %zd\", got, b[got].len, size[got]);",
        "            got++; goto fail;",
        "        }",
        "    }",
        "    int rc = 0;",
        "    Py_BEGIN_ALLOW_THREADS",
        f"    {'rc = ' if checked else ''}{name}({call});",
        "    Py_END_ALLOW_THREADS",
        f"    for (int i = 0; i < {n}; i++) PyBuffer_Release(&b[i]);",
        f"    if (rc) return PyErr_Format(PyExc_MemoryError, \"{name}: out of memory for its scratch rows\");",
        "    Py_RETURN_NONE;",
        "fail:",
        "    for (int i = 0; i < got; i++) PyBuffer_Release(&b[i]);",
        "    return NULL;",
        "}",
    ]


def render_module(kernels: list, modname: str = PLACEHOLDER, parallel: bool = True, extra=()) -> str:
    """One extension module holding ``kernels`` = [(name, Fused)] and ``extra`` = [(name, C
    source with a py_<name> wrapper)]; cache.py names it. ``parallel=False``: every loop on
    one thread (see pipeline.compile_kernels)."""
    parts = [PRELUDE]
    from .rows import render_rows
    par_min = PAR_MIN if parallel else 1 << 62
    parts += [render_rows(name, f, par_min) if hasattr(f, "stages") else render_kernel(name, f, par_min)
              for name, f in kernels]
    parts += [src for _, src in extra]
    kernels = list(kernels) + list(extra)
    table = "".join(f'    {{"{name}", (PyCFunction)(void(*)(void))py_{name}, METH_FASTCALL, NULL}},\n'
                    for name, _ in kernels)
    parts.append(f"static PyMethodDef methods[] = {{\n{table}    {{NULL, NULL, 0, NULL}}\n}};")
    parts.append(f'static struct PyModuleDef moddef = {{PyModuleDef_HEAD_INIT, "{modname}", NULL, -1, methods}};')
    parts.append(f"PyMODINIT_FUNC PyInit_{modname}(void) {{ return PyModule_Create(&moddef); }}")
    return "\n\n".join(parts) + "\n"
