"""A native kernel for batched products of small matrices (attention's q @ k.T and p @ v: 64
products of 64x32 by 32x64 per call). NumPy calls BLAS once per matrix and BLAS's per-call setup
dominates at these sizes (~3 us each, 0.2-0.35 ms per batched product in the GPT step); this
kernel reads the operands with their strides (a transposed right operand is copied into a small
contiguous tile) and multiplies with loops of compile-time sizes: a tile of 8 rows by two
64-byte vectors of C (GCC vector extensions: AVX-512 registers here, split into narrower ones
elsewhere) stays in registers while k runs, so each loaded piece of a row of B serves eight rows
(measured: 0.17 ms vs NumPy's 0.21 ms isolated with 4-row tiles, W4 step -0.6 to -1.2 ms; 8-row
tiles and the batch spread over threads took the step's 12 products from 3.2 to 1.3 ms). N must
be a multiple of two vectors. Sums run in k order, so results differ from BLAS's only by float
rounding.

>>> source = render("b0", node, par_min)   # node: matmul(a, b) with a: (..., M, K), b: (..., K, N)
"""
from __future__ import annotations

import numpy as np

from .c import ctype
from .native_op import NativeOp

MAX_DIM = 256  # larger matrices: BLAS's blocking and threads win


def supported(node) -> bool:
    if node.op.name != "matmul" or len(node.args) != 2 or len(node.vars) != 2:
        return False
    a, b = node.args
    if a.dtype != b.dtype or a.dtype not in (np.float32, np.float64) or node.out.dtype != a.dtype:
        return False
    if len(a.shape) < 3 or len(a.shape) != len(b.shape):
        return False
    (M, K), (K2, N) = a.shape[-2:], b.shape[-2:]
    nb = int(np.prod(a.shape[:-2], dtype=np.int64))
    return (a.shape[:-2] == b.shape[:-2] and K == K2 and nb >= 2
            and max(M, N, K) <= MAX_DIM and min(M, K) >= 1 and N % (128 // a.dtype.itemsize) == 0
            and node.out.shape == a.shape[:-2] + (M, N))


def render(name: str, node, par_min: int) -> str:
    """C source of the kernel and a wrapper that reads the operands' strides at run time; the
    products of the batch are spread over threads when there are at least ``par_min``
    multiply-adds."""
    a, b = node.args
    t = ctype(a.dtype)
    batch = a.shape[:-2]
    (M, K), N = a.shape[-2:], b.shape[-1]
    nd = len(a.shape)
    nbd = len(batch)
    nb = int(np.prod(batch, dtype=np.int64))
    # batch offsets from the linear batch index (row-major over the batch dims)
    decomp = []
    for d in range(nbd - 1, -1, -1):
        decomp.append(f"const int64_t q{d} = rem % {batch[d]}; rem /= {batch[d]};")
    aoff = " + ".join(f"q{d} * as[{d}]" for d in range(nbd))
    boff = " + ".join(f"q{d} * bs[{d}]" for d in range(nbd))
    vl = 64 // a.dtype.itemsize  # lanes of a 64-byte vector (GCC vector extension: portable)
    vt = f"{name}_v"
    par = "" if nb * M * N * K >= max(par_min, 1 << 18) else " if(0)"
    tiles = "\n".join(_tile(rows, vt, t, vl, M, N, K) for rows in (8, 4))
    src = f"""
typedef {t} {vt} __attribute__((vector_size(64)));
static int {name}(const {t}* A, const int64_t* as, const {t}* B, const int64_t* bs, {t}* restrict C) {{
    const int64_t sam = as[{nd - 2}], sak = as[{nd - 1}], sbk = bs[{nd - 2}], sbn = bs[{nd - 1}];
    int64_t ab[{max(nbd, 1)}], bb[{max(nbd, 1)}];
    for (int d = 0; d < {nbd}; d++) {{ ab[d] = as[d]; bb[d] = bs[d]; }}
    int fail = 0;
    #pragma omp parallel{par}
    {{
    {t}* Bp = sbn == 1 ? NULL : ({t}*)malloc(sizeof({t}) * {K * N});  /* one tile per thread */
    const int bad = sbn != 1 && !Bp;
    if (bad) {{
        #pragma omp atomic write
        fail = 1;
    }}
    #pragma omp for schedule(static)
    for (int64_t z = 0; z < {nb}; z++) {{
        if (bad) continue;  /* every thread must reach the loop; none computes after a failure */
        int64_t rem = z;
        {" ".join(decomp)}
        const {t}* restrict a = A + {aoff.replace("as[", "ab[")};
        const {t}* restrict b = B + {boff.replace("bs[", "bb[")};
        const {t}* restrict bk = b;
        int64_t ldb = sbk;
        if (Bp) {{  /* B's rows are not contiguous (a transposed view): copy it once */
            for (int64_t k = 0; k < {K}; k++)
                for (int64_t j = 0; j < {N}; j++) Bp[k * {N} + j] = b[k * sbk + j * sbn];
            bk = Bp; ldb = {N};
        }}
        {t}* restrict c = C + z * {M * N};
        for (int64_t jb = 0; jb < {N}; jb += {2 * vl}) {{
            int64_t i = 0;
{tiles}
            for (; i < {M}; i++) {{
                {vt} c00 = {{0}}, c01 = {{0}};
                for (int64_t k = 0; k < {K}; k++) {{
                    {vt} r0, r1;
                    memcpy(&r0, bk + k * ldb + jb, 64); memcpy(&r1, bk + k * ldb + jb + {vl}, 64);
                    const {t} x0 = a[i * sam + k * sak];
                    c00 += x0 * r0; c01 += x0 * r1;
                }}
                memcpy(c + i * {N} + jb, &c00, 64); memcpy(c + i * {N} + jb + {vl}, &c01, 64);
            }}
        }}
    }}
    free(Bp);
    }}
    return fail ? -1 : 0;
}}
static PyObject* py_{name}(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {{
    Py_buffer ba, bb, bc; int64_t as[{nd}], bs[{nd}];
    static const Py_ssize_t shape_a[{nd}] = {{{", ".join(map(str, a.shape))}}};
    static const Py_ssize_t shape_b[{nd}] = {{{", ".join(map(str, b.shape))}}};
    if (nargs != 3) {{ PyErr_SetString(PyExc_TypeError, "{name}: expected 3 arrays"); return NULL; }}
    if (PyObject_GetBuffer(args[0], &ba, PyBUF_STRIDES) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &bb, PyBUF_STRIDES) < 0) {{ PyBuffer_Release(&ba); return NULL; }}
    if (PyObject_GetBuffer(args[2], &bc, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0) {{
        PyBuffer_Release(&ba); PyBuffer_Release(&bb); return NULL;
    }}
    int ok = ba.ndim == {nd} && bb.ndim == {nd} && bc.len == {nb * M * N} * (Py_ssize_t)sizeof({t});
    for (int d = 0; ok && d < {nd}; d++) {{
        ok = ba.shape[d] == shape_a[d] && bb.shape[d] == shape_b[d]
             && ba.strides[d] % (Py_ssize_t)sizeof({t}) == 0 && bb.strides[d] % (Py_ssize_t)sizeof({t}) == 0;
        if (ok) {{ as[d] = ba.strides[d] / (Py_ssize_t)sizeof({t}); bs[d] = bb.strides[d] / (Py_ssize_t)sizeof({t}); }}
    }}
    int rc = 0;
    if (ok) {{
        Py_BEGIN_ALLOW_THREADS
        rc = {name}((const {t}*)ba.buf, as, (const {t}*)bb.buf, bs, ({t}*)bc.buf);
        Py_END_ALLOW_THREADS
    }}
    PyBuffer_Release(&ba); PyBuffer_Release(&bb); PyBuffer_Release(&bc);
    if (!ok) {{ PyErr_SetString(PyExc_ValueError, "{name}: operands do not have the compiled shapes"); return NULL; }}
    if (rc) return PyErr_NoMemory();
    Py_RETURN_NONE;
}}
"""
    return src


def _tile(rows: int, vt: str, t: str, vl: int, M: int, N: int, K: int) -> str:
    """C for the blocks of ``rows`` rows: a rows x 2-vector tile of C in 2*rows registers while
    k runs (8 rows: 16 accumulators, enough independent sums to keep both FMA units busy)."""
    acc = ", ".join(f"c{r}0 = {{0}}, c{r}1 = {{0}}" for r in range(rows))
    xs = " ".join(f"const {t} x{r} = a[(i + {r}) * sam + k * sak];" for r in range(rows))
    fma = " ".join(f"c{r}0 += x{r} * r0; c{r}1 += x{r} * r1;" for r in range(rows))
    store = " ".join(f"memcpy(o + {r * N}, &c{r}0, 64); memcpy(o + {r * N + vl}, &c{r}1, 64);" for r in range(rows))
    return f"""            for (; i + {rows} <= {M}; i += {rows}) {{
                {vt} {acc};
                for (int64_t k = 0; k < {K}; k++) {{
                    {vt} r0, r1;
                    memcpy(&r0, bk + k * ldb + jb, 64); memcpy(&r1, bk + k * ldb + jb + {vl}, 64);
                    {xs}
                    {fma}
                }}
                {t}* o = c + i * {N} + jb;
                {store}
            }}"""


class BatchedMatmul(NativeOp):
    """The op of a batched ``matmul`` node run by the native kernel ``fn`` (name kept)."""

    def cpu(self, a, b):
        out = np.empty(a.shape[:-2] + (a.shape[-2], b.shape[-1]), a.dtype)
        self.fn(a, b, out)
        return out
