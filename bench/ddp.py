"""Data-parallel training throughput: ember DDP over MPI vs PyTorch DDP (gloo), 1 and 2 processes.

Weak scaling, as DDP is used: every rank trains on its own batch of BATCH samples, so a step of
W ranks processes W * BATCH samples. Each rank gets one BLAS/torch thread (2 ranks fill the 2
cores). Prints steps/s per framework and world size, the scaling efficiency
steps/s(W=2) / steps/s(W=1) (1.0 = perfect), and the ratio ember time / torch time. The
'no DDP' row runs the same steps with no communication at all: its efficiency is the ceiling
the machine allows (two ranks on two vCPUs that may share a physical core's caches and FMA
units, next to whatever else runs), so DDP's own cost is the gap to it.

Run: python bench/ddp.py            (needs mpi4py + an MPI: pip install 'ember[mpi]'; torch optional)
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _env import clean_env_and_reexec  # noqa: E402

clean_env_and_reexec()
os.environ["OMP_NUM_THREADS"] = os.environ["OPENBLAS_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

BATCH, WARMUP, STEPS, REPEATS = 64, 5, 40, 3
MODELS = {  # name -> layer list, built the same way in both frameworks
    "digits_cnn": [("conv", 1, 8), ("relu",), ("pool",), ("conv", 8, 16), ("relu",), ("flatten",),
                   ("linear", 256, 64), ("relu",), ("linear", 64, 10)],
    "mlp_1M": [("flatten",), ("linear", 64, 1024), ("relu",), ("linear", 1024, 1024), ("relu",),
               ("linear", 1024, 10)],  # 1.1M parameters: 4.3 MB of gradients per step
}


def build(nn, layers):
    make = {"conv": lambda i, o: nn.Conv2d(i, o, 3, padding=1), "relu": nn.ReLU,
            "pool": lambda: nn.MaxPool2d(2), "flatten": nn.Flatten, "linear": nn.Linear}
    return nn.Sequential(*[make[kind](*args) for kind, *args in layers])


def best_rates(steps: dict, batches: dict, comm) -> dict:
    """steps/s of each named step function, best of REPEATS rounds; the rounds interleave the
    steps so a burst of load from other programs hits all of them alike."""
    for name, step in steps.items():
        for i in range(WARMUP):
            step(*batches[name][i % 4])
    best = dict.fromkeys(steps, 0.0)
    for _ in range(REPEATS):
        for name, step in steps.items():
            comm.Barrier()
            t0 = time.perf_counter()
            for i in range(STEPS):
                step(*batches[name][i % 4])
            best[name] = max(best[name], STEPS / (time.perf_counter() - t0))
    return best


def ember_step(layers, x, y, ddp: bool):
    import ember as em
    import ember.distributed as dist
    em.manual_seed(0)
    model = build(em.nn, layers)
    model = dist.DistributedDataParallel(model) if ddp else model
    opt = em.optim.SGD(model.parameters(), lr=0.01)

    def step(xb, yb):
        loss = em.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, [(em.from_numpy(a), em.from_numpy(b)) for a, b in zip(x, y)]


def torch_step(layers, x, y, comm):
    import torch
    import torch.distributed as tdist
    torch.set_num_threads(1)
    if not tdist.is_initialized():
        os.environ["MASTER_ADDR"] = "127.0.0.1"  # gloo rendezvous on this machine only
        os.environ["MASTER_PORT"] = str(comm.bcast(29500 + os.getpid() % 1000, root=0))
        tdist.init_process_group("gloo", rank=comm.Get_rank(), world_size=comm.Get_size())
    torch.manual_seed(0)
    model = torch.nn.parallel.DistributedDataParallel(build(torch.nn, layers))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(xb, yb):
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step, [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in zip(x, y)]


def worker() -> None:
    """One rank: time every model in ember and (if installed) torch; rank 0 prints JSON."""
    import numpy as np
    import ember.distributed as dist
    comm = dist.init()
    rng = np.random.default_rng(comm.Get_rank())
    x = [rng.standard_normal((BATCH, 1, 8, 8)).astype(np.float32) for _ in range(4)]
    y = [rng.integers(0, 10, BATCH) for _ in range(4)]
    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    out = {}
    for name, layers in MODELS.items():
        made = {"ember": ember_step(layers, x, y, ddp=True),
                "ember, no DDP": ember_step(layers, x, y, ddp=False)}
        if have_torch:
            made["torch"] = torch_step(layers, x, y, comm)
        out[name] = best_rates({k: v[0] for k, v in made.items()}, {k: v[1] for k, v in made.items()}, comm)
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(out), flush=True)


def main() -> None:
    from ember.distributed.launcher import command
    results = {}
    for w in (1, 2):
        p = subprocess.run(command(w, [os.path.abspath(__file__), "--worker"]), capture_output=True,
                           text=True, timeout=600)
        lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
        if p.returncode != 0 or not lines:
            sys.exit(f"bench/ddp.py: the {w}-process run failed:\n{p.stdout}\n{p.stderr}")
        results[w] = json.loads(lines[0][len("RESULT "):])
    print(f"DDP weak scaling, batch {BATCH} per rank, 1 thread per rank, best of {REPEATS} x {STEPS} steps")
    print("('ember, no DDP': every rank trains its own copy, no communication: the most 2 ranks "
          "can get from this machine's cores)")
    print(f"{'model':<11} {'framework':<14} {'W=1 steps/s':>12} {'W=2 steps/s':>12} {'efficiency':>11}")
    for name in MODELS:
        for fw in results[1][name]:
            a, b = results[1][name][fw], results[2][name][fw]
            print(f"{name:<11} {fw:<14} {a:>12.1f} {b:>12.1f} {b / a:>11.2f}")
        if "torch" in results[1][name]:
            ratios = [results[w][name]["torch"] / results[w][name]["ember"] for w in (1, 2)]
            print(f"{name:<11} ember time / torch time: W=1 {ratios[0]:.2f}, W=2 {ratios[1]:.2f}")


if __name__ == "__main__":
    worker() if "--worker" in sys.argv else main()
