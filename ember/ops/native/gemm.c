/* Matrix products on ember's own OpenMP threads, each thread calling NumPy's OpenBLAS for its
 * share of the rows (or columns) with OpenBLAS kept to that one thread.
 *
 * Why: two thread pools on two cores fight. NumPy's OpenBLAS wakes its own threads for every
 * product and they busy-wait afterwards; ember's fused kernels run on libgomp's threads. When
 * both pools are active, a worker of one waits for a core held by a spinning thread of the
 * other (the GPT training step: 24 ms with serial fused kernels, 36-140 ms with parallel ones).
 * With every product split here, one pool (libgomp's) runs everything, so the fused kernels
 * can use every core too. Each share is one OpenBLAS call on a contiguous block of rows, so its
 * packing and micro-kernels are OpenBLAS's own (measured: the same speed as OpenBLAS's
 * threading on the GPT's 1024x128x512 products).
 *
 * OpenBLAS must run each share on the calling thread. In NumPy's (pthreads) OpenBLAS the thread
 * count is process-wide (openblas_set_num_threads_local sets it for everyone and returns the old
 * value), so it is set to 1 while any product here runs and put back when the last one ends;
 * NumPy products that other Python threads run meanwhile get one thread too.
 *
 * bind(sgemm, dgemm, set_num_threads_local): the addresses of OpenBLAS's ILP64 cblas_sgemm,
 *   cblas_dgemm and openblas_set_num_threads_local (ember.compiler.threads finds them; the
 *   last exists from OpenBLAS 0.3.27 and returns the previous count).
 * matmul(a, b, out) -> bool: out[...] = a @ b for float32/float64 arrays of one dtype, out
 *   C-contiguous (..., M, N), and either
 *   - a (..., M, K) and b (K, N): a's leading dims must collapse into rows (one product), or
 *   - a (..., M, K) and b (..., K, N) with the same batch dims, each collapsing into one stride
 *     (a batch of products, e.g. attention's).
 *   Each matrix may be a row-major view with a row stride (a slice) or a transposed one (for
 *   the one-product form: a 2-D a only). Returns False (nothing written) for any other layout
 *   or broadcast batch dims: the caller then uses NumPy.
 *
 * Loaded through ember.compiler.cache, called from ember.ops.linalg and the compiler's GEMM op.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else
static int omp_get_max_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
#endif

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };
typedef void (*sgemm_t)(int, int, int, int64_t, int64_t, int64_t, float, const float*, int64_t,
                        const float*, int64_t, float, float*, int64_t);
typedef void (*dgemm_t)(int, int, int, int64_t, int64_t, int64_t, double, const double*, int64_t,
                        const double*, int64_t, double, double*, int64_t);
typedef int (*set_local_t)(int);

static sgemm_t sgemm;
static dgemm_t dgemm;
static set_local_t set_local;

/* Below this many multiply-adds a product runs on the calling thread: a second thread's share
   would take less time than waking it. */
#define PAR_MIN_MACS (1 << 20)
#define ROW_ALIGN 16 /* row shares are multiples of this (OpenBLAS's micro-kernel height) */

typedef struct {
    int ta, tb;           /* TRANS or NO_TRANS */
    int64_t M, N, K, lda, ldb;
    const char *a, *b;
    char *c;
    int size;             /* 4 or 8 */
    int64_t nb, bsa, bsb; /* nb products (a batch), a's and b's strides between them (elements) */
} product;

/* OpenBLAS held to one thread while any product here runs (see the top of the file). */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static int holders, held_count;

static void hold_openblas(void) {
    pthread_mutex_lock(&hold_lock);
    if (holders++ == 0) held_count = set_local(1);
    pthread_mutex_unlock(&hold_lock);
}

static void release_openblas(void) {
    pthread_mutex_lock(&hold_lock);
    if (--holders == 0) set_local(held_count);
    pthread_mutex_unlock(&hold_lock);
}

/* One share: rows [m0, m1), columns [n0, n1) and the terms [k0, k1) of C's sums, on the
   calling thread, written to c (row stride ldc) at the share's place. */
static void share(const product* p, int64_t m0, int64_t m1, int64_t n0, int64_t n1, int64_t k0,
                  int64_t k1, char* c, int64_t ldc) {
    if (m1 <= m0 || n1 <= n0) return;
    const int64_t sz = p->size;
    const char* a = p->a + sz * (p->ta == NO_TRANS ? m0 * p->lda + k0 : k0 * p->lda + m0);
    const char* b = p->b + sz * (p->tb == NO_TRANS ? k0 * p->ldb + n0 : n0 * p->ldb + k0);
    c += sz * (m0 * ldc + n0);
    if (sz == 4)
        sgemm(ROW_MAJOR, p->ta, p->tb, m1 - m0, n1 - n0, k1 - k0, 1.0f, (const float*)a, p->lda,
              (const float*)b, p->ldb, 0.0f, (float*)c, ldc);
    else
        dgemm(ROW_MAJOR, p->ta, p->tb, m1 - m0, n1 - n0, k1 - k0, 1.0, (const double*)a, p->lda,
              (const double*)b, p->ldb, 0.0, (double*)c, ldc);
}

/* [lo, hi) of thread t of n over len, in blocks of ROW_ALIGN */
static void part(int64_t len, int t, int n, int64_t* lo, int64_t* hi) {
    const int64_t blocks = (len + ROW_ALIGN - 1) / ROW_ALIGN;
    *lo = blocks * t / n * ROW_ALIGN;
    *hi = blocks * (t + 1) / n * ROW_ALIGN;
    if (*hi > len) *hi = len;
    if (*lo > len) *lo = len;
}

/* Long sums and a small C (weight gradients: 128x1024 by 1024x512): each thread sums its part
   of K into its own copy of C, then the copies are added (measured 5-12% faster than splitting
   rows, whose shares are then short and wide). Returns 0 when the copies can't be allocated. */
static int run_split_k(const product* p, int nt) {
    const int64_t mn = p->M * p->N;
    char* extra = malloc((size_t)(nt - 1) * mn * p->size);
    if (!extra) return 0;
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t k0, k1;
        part(p->K, t, n, &k0, &k1);
        char* c = t == 0 ? p->c : extra + (size_t)(t - 1) * mn * p->size;
        if (k1 > k0) share(p, 0, p->M, 0, p->N, k0, k1, c, p->N);
        else memset(c, 0, (size_t)mn * p->size);
#pragma omp barrier
#pragma omp for schedule(static)
        for (int64_t i = 0; i < mn; i++) {
            if (p->size == 4) {
                float s = ((float*)p->c)[i];
                for (int u = 0; u < n - 1; u++) s += ((float*)extra)[u * mn + i];
                ((float*)p->c)[i] = s;
            } else {
                double s = ((double*)p->c)[i];
                for (int u = 0; u < n - 1; u++) s += ((double*)extra)[u * mn + i];
                ((double*)p->c)[i] = s;
            }
        }
    }
    free(extra);
    return 1;
}

static void run(const product* p) {
    int nt = omp_get_max_threads();
    if ((double)p->M * p->N * p->K < PAR_MIN_MACS || nt < 2) nt = 1;
    if (nt == 1) {
        share(p, 0, p->M, 0, p->N, 0, p->K, p->c, p->N);
        return;
    }
    if (p->K >= 2 * (p->M > p->N ? p->M : p->N) && p->K >= (int64_t)ROW_ALIGN * nt && run_split_k(p, nt)) return;
    /* Split the rows when each thread gets at least a micro-kernel's height, else the columns.
       Each thread packs all of the other operand: with a transposed B (x @ W.T, the forward of
       a linear layer) packing B costs the most, so a short, wide product splits the columns
       (measured 128x784 @ 784x512: 0.40 ms against 0.51 by rows; by rows wins for B in order). */
    const int by_rows = !(p->tb == TRANS && 2 * p->M <= p->N) && (p->M >= (int64_t)ROW_ALIGN * nt || p->M >= p->N);
#pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num(), n = omp_get_num_threads();
        int64_t lo, hi;
        part(by_rows ? p->M : p->N, t, n, &lo, &hi);
        if (by_rows) share(p, lo, hi, 0, p->N, 0, p->K, p->c, p->N);
        else share(p, 0, p->M, lo, hi, 0, p->K, p->c, p->N);
    }
}

/* Product z of a batch, as a product of its own. */
static product item(const product* p, int64_t z) {
    product q = *p;
    q.a += (size_t)(z * p->bsa * p->size);
    q.b += (size_t)(z * p->bsb * p->size);
    q.c += (size_t)(z * p->M * p->N * p->size);
    q.nb = 1;
    return q;
}

/* A batch: whole products per thread when there are enough of them (attention's 64 small
   products: one OpenBLAS call each, no thread splits inside), else each one split. */
static void run_batch(const product* p) {
    const int nt = omp_get_max_threads();
    if (nt > 1 && p->nb >= nt && (double)p->M * p->N * p->K * p->nb >= PAR_MIN_MACS) {
#pragma omp parallel for schedule(static) num_threads(nt)
        for (int64_t z = 0; z < p->nb; z++) {
            const product q = item(p, z);
            share(&q, 0, q.M, 0, q.N, 0, q.K, q.c, q.N);
        }
    } else {
        for (int64_t z = 0; z < p->nb; z++) {
            const product q = item(p, z);
            run(&q);
        }
    }
}

/* (rows, cols, leading dimension, transposed) of a 2-D operand with element strides (s0, s1);
   0 when it is neither row-major nor column-major with a leading dimension. */
static int layout(int64_t r, int64_t c, int64_t s0, int64_t s1, int64_t* ld, int* trans) {
    if (c == 1) s1 = 1;
    if (r == 1) s0 = c > 1 ? c : 1;
    if (s1 == 1 && s0 >= (c > 1 ? c : 1)) { *ld = s0; *trans = NO_TRANS; return 1; }
    if (r == 1 || c == 1) return 0;
    if (s0 == 1 && s1 >= r) { *ld = s1; *trans = TRANS; return 1; }
    return 0;
}

/* The one stride by which the first nbd (batch) dims of x step, skipping dims of size 1;
   0 when they don't collapse into one. */
static int batch_stride(const Py_buffer* x, int nbd, int size, int64_t* stride) {
    int64_t expect = -1;
    *stride = 0;
    for (int d = nbd - 1; d >= 0; d--) {
        if (x->shape[d] == 1) continue;
        const int64_t s = x->strides[d] / size;
        if (expect < 0) *stride = s;
        else if (s != expect) return 0;
        expect = s * x->shape[d];
    }
    return 1;
}

/* a (..., M, K) by b (..., K, N) with the same batch dims: products of matrices that are each
   row-major or transposed. */
static int describe_batch(Py_buffer* a, Py_buffer* b, Py_buffer* out, product* p, int size) {
    const int nd = a->ndim;
    int64_t nb = 1;
    for (int d = 0; d < nd - 2; d++) {
        if (a->shape[d] != b->shape[d] || out->shape[d] != a->shape[d]) return 0;
        nb *= a->shape[d];
    }
    const int64_t M = a->shape[nd - 2], K = a->shape[nd - 1], N = b->shape[nd - 1];
    if (b->shape[nd - 2] != K || out->shape[nd - 2] != M || out->shape[nd - 1] != N) return 0;
    p->M = M;
    p->N = N;
    p->K = K;
    p->nb = nb;
    p->size = size;
    p->c = out->buf;
    if (nb == 0 || M == 0 || N == 0 || K == 0) return 1;
    if (!batch_stride(a, nd - 2, size, &p->bsa) || !batch_stride(b, nd - 2, size, &p->bsb)) return 0;
    if (!layout(M, K, a->strides[nd - 2] / size, a->strides[nd - 1] / size, &p->lda, &p->ta)) return 0;
    if (!layout(K, N, b->strides[nd - 2] / size, b->strides[nd - 1] / size, &p->ldb, &p->tb)) return 0;
    p->a = a->buf;
    p->b = b->buf;
    return 1;
}

static int describe(Py_buffer* a, Py_buffer* b, Py_buffer* out, product* p) {
    const int size = (int)a->itemsize;
    if (a->ndim < 2 || out->ndim != a->ndim || (b->ndim != 2 && b->ndim != a->ndim)) return 0;
    if (strcmp(a->format, b->format) || strcmp(a->format, out->format)) return 0;
    if (!((size == 4 && !strcmp(a->format, "f") && sgemm) || (size == 8 && !strcmp(a->format, "d") && dgemm))) return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->strides[d] % size) return 0;
    for (int d = 0; d < b->ndim; d++)
        if (b->strides[d] % size) return 0;
    p->nb = 1;
    p->bsa = p->bsb = 0;
    if (b->ndim > 2) return describe_batch(a, b, out, p, size);
    const int nd = a->ndim;
    int64_t rows = 1;
    for (int d = 0; d < nd - 1; d++) {
        if (out->shape[d] != a->shape[d]) return 0;
        rows *= a->shape[d];
    }
    const int64_t K = a->shape[nd - 1], N = b->shape[1];
    if (b->shape[0] != K || out->shape[nd - 1] != N) return 0;
    int64_t s_row = a->strides[nd - 2] / size;
    if (nd > 2) {  /* the leading dims must step like rows of one matrix */
        int64_t expect = s_row;
        for (int d = nd - 2; d >= 0; d--) {
            if (a->shape[d] != 1 && a->strides[d] / size != expect) return 0;
            expect *= a->shape[d];
        }
        if (a->shape[nd - 1] > 1 && a->strides[nd - 1] != size) return 0;
    }
    p->M = rows;
    p->N = N;
    p->K = K;
    p->size = size;
    p->c = out->buf;
    if (rows == 0 || N == 0 || K == 0) return 1; /* nothing to read: any strides will do */
    if (!layout(rows, K, s_row, a->strides[nd - 1] / size, &p->lda, &p->ta)) return 0;
    if (nd > 2 && p->ta == TRANS) return 0;
    if (!layout(K, N, b->strides[0] / size, b->strides[1] / size, &p->ldb, &p->tb)) return 0;
    p->a = a->buf;
    p->b = b->buf;
    return 1;
}

static PyObject* py_matmul(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "matmul(a, b, out) takes 3 arrays");
        return NULL;
    }
    Py_buffer a, b, out;
    if (PyObject_GetBuffer(args[0], &a, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    if (PyObject_GetBuffer(args[1], &b, PyBUF_STRIDES | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(&a);
        return NULL;
    }
    if (PyObject_GetBuffer(args[2], &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(&a);
        PyBuffer_Release(&b);
        return NULL;
    }
    product p;
    const int ok = set_local && describe(&a, &b, &out, &p);
    if (ok && p.M > 0 && p.N > 0 && p.nb > 0) {
        if (p.K == 0) {
            memset(p.c, 0, (size_t)(p.nb * p.M * p.N * p.size));
        } else {
            Py_BEGIN_ALLOW_THREADS
            hold_openblas();
            if (p.nb > 1) run_batch(&p);
            else run(&p);
            release_openblas();
            Py_END_ALLOW_THREADS
        }
    }
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return PyBool_FromLong(ok);
}

static PyObject* py_bind(PyObject* self, PyObject* args) {
    unsigned long long s, d, l;
    if (!PyArg_ParseTuple(args, "KKK", &s, &d, &l)) return NULL;
    sgemm = (sgemm_t)(uintptr_t)s;
    dgemm = (dgemm_t)(uintptr_t)d;
    set_local = (set_local_t)(uintptr_t)l;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"matmul", (PyCFunction)(void (*)(void))py_matmul, METH_FASTCALL, "matmul(a, b, out) -> bool"},
    {"bind", py_bind, METH_VARARGS, "bind(sgemm, dgemm, set_num_threads_local): OpenBLAS addresses"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "EMBER_MODULE_NAME", NULL, -1, methods};

PyMODINIT_FUNC PyInit_EMBER_MODULE_NAME(void) { return PyModule_Create(&module); }
