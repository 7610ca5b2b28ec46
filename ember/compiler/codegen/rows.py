"""C code for a RowFused kernel (passes/rowfuse.py): one parallel loop over rows; inside it each
stage either loops over the row's C columns or computes per-row scalars. Full-size values that
stay inside the kernel live in per-thread row buffers; row sums in locals; column sums in
per-thread partial rows added up at the end.

>>> source = render_rows("k3", rowfused)
"""
from __future__ import annotations

import numpy as np

from ..graph import Var
from ..passes.rowfuse import classify, red_kind
from .c import _expr, _literal, _wrapper, ctype


# Sums of float32 values accumulate in float32 when each accumulator adds at most this many
# terms (as torch's CPU reductions do): a row sum is split over the SIMD lanes, a column sum
# runs down a thread's rows. float<->double conversions made the LayerNorm fwd+bwd kernel
# (4096x1024) about 18% slower; its results moved by ~1e-6 relative. Longer sums keep double.
F32_SUM_TERMS = 1 << 14


def _sum_type(dtype, terms: int) -> str:
    return "float" if np.dtype(dtype) == np.float32 and terms <= F32_SUM_TERMS else "double"


def render_rows(name: str, op, par_min: int) -> str:
    lead, C = op.lead, op.C
    R = int(np.prod(lead, dtype=np.int64)) if lead else 1
    ins, results = op.inputs, op.results
    in_name = {v.id: f"in{j}" for j, v in enumerate(ins)}
    out_name = {v.id: f"out{k}" for k, v in enumerate(results)}
    made: dict = {}  # Var id -> ("buf"|"row"|"col", C name)
    decl_thread, body, decl_shared, finish = [], [], [], []
    nb = 0
    for si, st in enumerate(op.stages):
        rk = red_kind(st)
        r = st.reduce
        full = tuple(st.loop)[-1] == C and C != 1
        names = {}
        for v in st.inputs:
            if v.id in made:
                kind, nm = made[v.id]
                names[v.id] = f"{nm}[c]" if kind == "buf" else nm
            else:
                k = classify(v.shape, lead, C)
                idx = {"full": "r * %d + c" % C, "row": "r", "col": "c", "scalar": "0"}[k]
                names[v.id] = f"{in_name[v.id]}[{idx}]"
        lines = []
        for m in st.nodes:
            if m is r:
                continue
            operands = [names[a.id] if type(a) is Var else _literal(a, getattr(a, "dtype", m.out.dtype)) for a in m.args]
            names[m.out.id] = f"t{m.out.id}"
            lines.append(f"const {ctype(m.out.dtype)} t{m.out.id} = {_expr(m, operands)};")
        needed_later = {a.id for s2 in op.stages[si + 1:] for a in s2.inputs}
        for v in st.results:
            if r is not None and v is r.out:
                continue
            if full and v.id in needed_later:
                b = f"b{nb}"
                nb += 1
                decl_thread.append(f"{ctype(v.dtype)}* {b} = ({ctype(v.dtype)}*)malloc(sizeof({ctype(v.dtype)}) * {C});")
                finish.append(b)
                lines.append(f"{b}[c] = {names[v.id]};")
                made[v.id] = ("buf", b)
            elif not full:
                made[v.id] = ("row", names[v.id])
            if v.id in out_name:
                lines.append(f"{out_name[v.id]}[{'r * %d + c' % C if full else 'r'}] = {names[v.id]};")
        if not full:  # per-row scalars: computed once per row, visible to later stages
            body.append("    " + " ".join(lines))
            for v in st.results:
                if v.id in made and made[v.id][0] == "row":
                    made[v.id] = ("row", names[v.id])
            continue
        src = names[r.args[0].id] if r is not None else None
        pre, post, pragma = [], [], "#pragma omp simd"
        if rk == "rowred":
            acc = f"racc{si}"
            rv = f"rv{r.out.id}"
            if r.op.name == "sum":
                pre.append(f"{_sum_type(r.out.dtype, C // 16)} {acc} = 0;")  # C split over <= 16 lanes
                lines.append(f"{acc} += {src};")
                pragma += f" reduction(+:{acc})"
                post.append(f"const {ctype(r.out.dtype)} {rv} = ({ctype(r.out.dtype)}){acc};")
            else:  # max/min in the value's type, NaNs kept by an OR of NaN tests (see c._minmax)
                t, cmp = ctype(r.out.dtype), ">" if r.op.name == "max" else "<"
                pre.append(f"{t} {acc} = {'-' if cmp == '>' else ''}INFINITY; int nan{si} = 0;")
                lines.append(f"{acc} = {src} {cmp} {acc} ? {src} : {acc}; nan{si} |= isnan({src});")
                pragma = ""
                post.append(f"const {t} {rv} = nan{si} ? ({t})NAN : {acc};")
            made[r.out.id] = ("row", rv)
            if r.out.id in out_name:
                post.append(f"{out_name[r.out.id]}[r] = {rv};")
        elif rk == "colred":
            p = f"p{si}"
            acc_t = _sum_type(r.out.dtype, R)
            decl_thread.append(f"{acc_t}* {p} = ({acc_t}*)calloc({C}, sizeof({acc_t}));")
            finish.append(p)
            decl_shared.append(f"double* tot{si} = (double*)calloc({C}, sizeof(double));")
            lines.append(f"{p}[c] += {src};")
            made[r.out.id] = ("col", p)
        body += ["    " + " ".join(pre), f"    {pragma}", f"    for (int64_t c = 0; c < {C}; c++) {{"]
        body += ["        " + ln for ln in lines] + ["    }"] + ["    " + " ".join(post)]
    params = [f"const {ctype(v.dtype)}* restrict in{j}" for j, v in enumerate(ins)]
    params += [f"{ctype(v.dtype)}* restrict out{k}" for k, v in enumerate(results)]
    colreds = [(si, st) for si, st in enumerate(op.stages) if red_kind(st) == "colred"]
    src = [f"static int {name}({', '.join(params)}) {{"]
    src += ["    " + d for d in decl_shared]
    shared = [f"tot{si}" for si, _ in colreds]
    if shared:  # NULL on failure: free what was allocated and report it
        src += [f"    if ({' || '.join('!' + t for t in shared)}) {{ {' '.join(f'free({t});' for t in shared)} return -1; }}"]
    src += ["    int fail = 0;"]
    par = " if(0)" if R * C < par_min else ""
    src += [f"    #pragma omp parallel{par}", "    {"]
    src += ["    " + d for d in decl_thread]
    src += [f"    const int bad = {' || '.join('!' + b for b in finish) or '0'};",
            "    if (bad) {", "        #pragma omp atomic write", "        fail = 1;", "    }"]
    # every thread reaches the loop (a worksharing construct); none computes after a failure
    src += ["    #pragma omp for schedule(static)", f"    for (int64_t r = 0; r < {R}; r++) {{", "        if (bad) continue;"]
    src += ["    " + b for b in body]
    src += ["    }"]
    for si, _ in colreds:
        src += ["    if (!bad) {", "    #pragma omp critical", f"    for (int64_t c = 0; c < {C}; c++) tot{si}[c] += p{si}[c];", "    }"]
    src += [f"    free({b});" for b in finish]
    src += ["    }"]
    for si, st in colreds:
        o = out_name.get(st.reduce.out.id)
        if o is not None:
            src.append(f"    for (int64_t c = 0; c < {C}; c++) {o}[c] = ({ctype(st.reduce.out.dtype)})tot{si}[c];")
        src.append(f"    free(tot{si});")
    src.append("    return fail ? -1 : 0;")
    src.append("}")
    return "\n".join(src) + "\n" + "\n".join(_wrapper(name, ins, results, checked=True))
