"""The compiler benchmark: ember eager, ember.jit, torch eager, torch.compile and (when installed)
JAX's jit on the workloads of issue 8, each workload in a process of its own, 2 threads each.

Prints steps/s (training steps) or ms (W5 kernels), compile times (first, from an empty ember
cache, and again with a fresh function and the on-disk caches warm) and ratios against torch
eager (>1 = faster than torch). Within a workload the frameworks are timed in interleaved rounds
(best kept), so they share the machine's load; the load is printed. A process per workload
because ember's thread and allocator settings are process-wide (ember/compiler/threads.py,
malloc.py): each workload starts from a fresh process, as a user's script would. torch.compile failures are caught and printed.

Run: python bench/compile.py [--quick] [--only W2,W5] [--no-torch-compile]
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import clean_env_and_reexec  # noqa: E402

clean_env_and_reexec()

from compile_workloads import WORKLOADS  # noqa: E402

FRAMEWORKS = ["ember eager", "ember.jit", "torch eager", "torch.compile", "jax.jit"]


def _time(step, n: int) -> float:
    """Seconds per call over n calls."""
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return (time.perf_counter() - t0) / n


def _ember_step(made, jitted: bool):
    """A zero-argument step for ember (the jitted function built fresh), and its first call time."""
    import ember as em
    fn, args = made[0], made[1]
    pre = made[2] if len(made) > 2 else None
    f = em.jit(fn) if jitted else fn
    if pre is None:
        step = lambda: f(*args)  # noqa: E731
    else:
        def step():
            pre(*args)
            return f(*args)
    t0 = time.perf_counter()
    step()
    return step, time.perf_counter() - t0


def _jax_build(work):
    """JAX's (step, first, cached): first = the first call of a fresh jax.jit (trace + XLA compile);
    cached = a fresh jit of a fresh function for a fresh model with JAX's in-memory caches cleared,
    so the executable comes from its persistent cache on disk. XLA's CPU thread pool is sized to
    the cores (2 here), so JAX runs on 2 threads like the others without XLA_FLAGS."""
    import atexit
    import shutil
    import tempfile
    import jax
    if not jax.config.jax_compilation_cache_dir:  # an empty cache of this process's own
        cache = tempfile.mkdtemp(prefix="jax-bench-cache-")
        atexit.register(shutil.rmtree, cache, True)
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # cache every executable
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    import compile_jax
    step = compile_jax.make(work)
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    jax.clear_caches()
    fresh = compile_jax.make(work)
    t0 = time.perf_counter()
    fresh()
    return step, first, time.perf_counter() - t0


def build(fw: str, work, args):
    """(step, first-call seconds, cached-compile seconds or None), or a reason string."""
    if fw == "jax.jit":
        import importlib.util
        if importlib.util.find_spec("jax") is None:
            return "not installed (pip install -e .[bench])"
        return _jax_build(work)
    if fw.startswith("ember"):
        jitted = fw == "ember.jit"
        step, first = _ember_step(work.make(fw), jitted)
        cached = None
        if jitted:  # a fresh jit of a fresh model: traces again, kernels come from the disk cache
            _, cached = _ember_step(work.make(fw), True)
        return step, first, cached
    import torch
    step = work.make(fw)
    if fw != "torch.compile":
        t0 = time.perf_counter()
        step()
        return step, time.perf_counter() - t0, None
    if args.no_torch_compile:
        return "skipped (--no-torch-compile)"
    try:
        torch._dynamo.reset()
        step = torch.compile(step)
        t0 = time.perf_counter()
        step()
        first = time.perf_counter() - t0
        torch._dynamo.reset()  # in-memory state gone; inductor's disk cache stays
        step2 = torch.compile(work.make(fw))
        t0 = time.perf_counter()
        step2()
        cached = time.perf_counter() - t0
        torch._dynamo.reset()
        step = torch.compile(work.make(fw))
        step()
        return step, first, cached
    except Exception as e:  # noqa: BLE001 - report any failure and go on
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
        return f"failed: {type(e).__name__}: {msg}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer steps per measurement")
    p.add_argument("--only", default="", help="comma-separated workloads (W1..W5; W5 = W5a,W5b)")
    p.add_argument("--frameworks", default="", help="comma-separated subset of: " + ", ".join(FRAMEWORKS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds (best is kept)")
    p.add_argument("--no-torch-compile", action="store_true", help="skip torch.compile (slow to compile)")
    p.add_argument("--warm-cache", action="store_true",
                   help="keep ember's compile cache (default: an empty one, so 'compile 1st' is cold)")
    p.add_argument("--in-child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    names = list(WORKLOADS)
    if args.only:
        want = [w.strip() for w in args.only.split(",")]
        names = [n for n in names if n in want or n.rstrip("ab") in want]
    if not args.in_child:
        print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} cores; ratio = torch eager "
              f"time / this time (>1 is faster than torch eager)", flush=True)
        rest = [a for i, a in enumerate(sys.argv[1:]) if a != "--only" and (i == 0 or sys.argv[i] != "--only")]
        for name in names:
            subprocess.run([sys.executable, os.path.abspath(__file__), *rest, "--only", name, "--in-child"],
                           check=False)
        return
    if not args.warm_cache:
        import atexit
        import shutil
        import tempfile
        os.environ["EMBER_CACHE_DIR"] = tempfile.mkdtemp(prefix="ember-bench-cache-")
        atexit.register(shutil.rmtree, os.environ["EMBER_CACHE_DIR"], True)
    import torch
    torch.set_num_threads(2)
    fws = [f.strip() for f in args.frameworks.split(",")] if args.frameworks else FRAMEWORKS
    for name in names:
        work = WORKLOADS[name](args.quick)
        print(f"\n{work.name}")
        print(f"  {'framework':14s} {work.unit:>10s} {'vs torch':>9s} {'compile 1st':>12s} {'cached':>8s}")
        built = {}
        for fw in fws:
            try:
                built[fw] = build(fw, work, args)
            except Exception as e:  # noqa: BLE001 - one framework failing must not stop the table
                built[fw] = f"failed: {type(e).__name__}: {e}"
        ready = [fw for fw in fws if not isinstance(built[fw], str)]
        for fw in ready:
            built[fw][0]()  # warm
        best = {fw: float("inf") for fw in ready}
        for _ in range(args.rounds):  # interleaved, so every framework sees the same load
            for fw in ready:
                best[fw] = min(best[fw], _time(built[fw][0], work.steps))
        results = {fw: (best[fw],) + tuple(built[fw][1:]) if fw in best else built[fw] for fw in fws}
        base = best.get("torch eager")
        for fw in fws:
            r = results[fw]
            if isinstance(r, str):
                print(f"  {fw:14s} {r}")
                continue
            sec, first, cached = r
            val = 1.0 / sec if work.unit == "steps/s" else sec * 1e3
            ratio = f"{base / sec:8.2f}x" if base else "        -"
            comp = f"{first:11.2f}s" if fw in ("ember.jit", "torch.compile", "jax.jit") else "           -"
            cach = f"{cached:7.2f}s" if cached is not None else "       -"
            print(f"  {fw:14s} {val:10.1f} {ratio} {comp} {cach}", flush=True)


if __name__ == "__main__":
    main()
