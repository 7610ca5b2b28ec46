"""Eager per-op overhead on small tensors: ember vs PyTorch in one process.

Measures an 8x8 add (10,000 ops) without grad, with grad recording, and add + sum + backward.
Prints microseconds per op and the ratio ember/torch (lower is better; target <= 1.5).

Run: python bench/overhead.py
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import clean_env_and_reexec  # noqa: E402

clean_env_and_reexec()

import ember as em  # noqa: E402

N = 10_000


def per_op_us(fn, n: int = N, repeats: int = 5) -> float:
    """Best of ``repeats`` runs of n calls, in microseconds per call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best * 1e6


def main() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("bench/overhead.py needs PyTorch for the comparison: pip install -e '.[oracle]'")
    torch.set_num_threads(2)
    em.manual_seed(0)
    a, b = em.randn(8, 8), em.randn(8, 8)
    ag = em.randn(8, 8, requires_grad=True)
    ta, tb = torch.randn(8, 8), torch.randn(8, 8)
    tg = torch.randn(8, 8, requires_grad=True)

    def ember_backward():
        (ag + b).sum().backward()

    def torch_backward():
        (tg + tb).sum().backward()

    rows = [
        ("8x8 add, no grad", lambda: a + b, lambda: ta + tb),
        ("8x8 add, recording grad", lambda: ag + b, lambda: tg + tb),
        ("8x8 add + sum + backward", ember_backward, torch_backward),
    ]
    print(f"{'workload':28s} {'ember us':>9s} {'torch us':>9s} {'ember/torch':>12s}")
    for name, fe, ft in rows:
        e, t = per_op_us(fe), per_op_us(ft)
        print(f"{name:28s} {e:9.2f} {t:9.2f} {e / t:12.2f}")


if __name__ == "__main__":
    main()
