"""Run ONNX's own backend node tests through ember's ONNX backend and report per operator.

    python tools/onnx_node_tests.py              # all ~1,900 node tests, a table and the totals
    python tools/onnx_node_tests.py -k relu -v   # a subset, with each failure's reason

A test is *unsupported* when one of its operators is not in ember's table or one of its tensors
has a dtype ember lacks (int8, bfloat16, strings...); the pass rate is over the others, the tests
of operators ember covers. Outputs must match in dtype, shape and value (the test's rtol/atol).
"""
from __future__ import annotations

import argparse
import collections
import sys
import warnings

import numpy as np

import ember.onnx  # noqa: F401  (the package needs onnx installed)
from ember import dtypes as D
from ember.onnx.backend import OPS, run_graph, unsupported_nodes
from ember.onnx.import_ops import const


def load_cases(pattern: str | None = None) -> list:
    from onnx.backend.test.loader import load_model_tests
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = load_model_tests(kind="node")
    return [c for c in cases if pattern is None or pattern in c.name]


def operator_of(case) -> str:
    """The operator a test is about: its node's type, or for a multi-node test (a function
    expanded into its body) the op type its name starts with."""
    nodes = case.model.graph.node
    types = {n.op_type for n in nodes}
    if len(types) == 1:
        return nodes[0].op_type
    key = case.name[len("test_"):].replace("_", "").lower()
    for t in sorted(types, key=len, reverse=True):
        if key.startswith(t.lower()):
            return t
    return "expanded:" + case.name[len("test_"):].split("_")[0]


def _ember_dtype(a) -> bool:
    try:
        D.from_numpy(np.asarray(a).dtype)
        return True
    except Exception:
        return False


def run_case(case) -> tuple[str, str]:
    """("passed" | "failed" | "unsupported", reason)."""
    m = case.model
    bad = unsupported_nodes(m.graph)
    if bad:
        return "unsupported", f"operator {bad[0][0]}"
    opset = max(i.version for i in m.opset_import if i.domain in ("", "ai.onnx"))
    for ins, outs in case.data_sets:
        arrays = list(ins) + list(outs)
        if not all(isinstance(a, np.ndarray) and _ember_dtype(a) for a in arrays):
            return "unsupported", "a dtype ember lacks (or a sequence/optional value)"
        names = [i.name for i in m.graph.input]
        env = {n: const(np.array(a)) for n, a in zip(names, ins)}
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                got = run_graph(m.graph, env, opset)
        except Exception as e:
            return "failed", f"{type(e).__name__}: {str(e)[:200]}"
        for ref, out in zip(outs, got):
            arr = out.detach().numpy()
            if arr.dtype != ref.dtype or arr.shape != ref.shape:
                return "failed", f"got {arr.dtype}{list(arr.shape)}, expected {ref.dtype}{list(ref.shape)}"
            try:
                np.testing.assert_allclose(arr, ref, rtol=case.rtol, atol=case.atol)
            except AssertionError as e:
                return "failed", "values differ: " + " ".join(str(e).split())[:200]
    return "passed", ""


def run_all(cases) -> dict:
    """operator -> Counter of outcomes, plus ``results``: list of (case name, op, outcome, reason)."""
    table: dict = collections.defaultdict(collections.Counter)
    results = []
    for c in cases:
        op = operator_of(c)
        outcome, why = run_case(c)
        table[op][outcome] += 1
        results.append((c.name, op, outcome, why))
    return {"table": dict(table), "results": results}


def totals(report: dict) -> collections.Counter:
    t = collections.Counter()
    for c in report["table"].values():
        t.update(c)
    return t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-k", help="only tests whose name contains this")
    ap.add_argument("-v", action="store_true", help="print each failing test and why")
    args = ap.parse_args(argv)
    report = run_all(load_cases(args.k))
    print(f"{'operator':<32}{'passed':>8}{'failed':>8}{'unsupported':>13}")
    for op, c in sorted(report["table"].items()):
        print(f"{op:<32}{c['passed']:>8}{c['failed']:>8}{c['unsupported']:>13}")
    if args.v:
        for name, op, outcome, why in report["results"]:
            if outcome != "passed":
                print(f"{outcome:<12} {name}: {why}")
    t = totals(report)
    covered = t["passed"] + t["failed"]
    n = sum(t.values())
    print(f"\ntotal: {n} node tests; passed {t['passed']}, failed {t['failed']}, unsupported {t['unsupported']}")
    print(f"passed {t['passed']} of {covered} covered tests ({100 * t['passed'] / max(covered, 1):.1f}%); "
          f"{t['passed']} of all {n} ({100 * t['passed'] / max(n, 1):.1f}%); ember's table has {len(OPS)} operators")
    return 0


if __name__ == "__main__":
    sys.exit(main())
