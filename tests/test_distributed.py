"""ember.distributed: DDP equals one process on the concatenated batches, the all-reduce is
bucketed and starts during backward, failures end every rank, the sampler follows PyTorch.

Tests marked ``needs_mpi`` run the scripts in tests/distributed_scripts/ under
``mpiexec -n 2`` in a subprocess with a timeout (a hang fails the test instead of blocking it).
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ember as em
import ember.distributed as dist
from ember.distributed import launcher as L

SCRIPTS = Path(__file__).parent / "distributed_scripts"
sys.path.insert(0, str(SCRIPTS))
import ddp_common as common  # noqa: E402  (the model and data the MPI scripts train)


def _have_mpi() -> bool:
    try:
        L.find_mpiexec()
    except dist.DistributedError:
        return False
    return importlib.util.find_spec("mpi4py") is not None


needs_mpi = pytest.mark.skipif(not _have_mpi(), reason="needs mpi4py and an MPI library with "
                               "mpiexec: pip install 'ember[mpi]'")


def mpirun(script: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # 2 ranks on 2 cores
    return subprocess.run(L.command(2, [str(SCRIPTS / script), *args]), capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=SCRIPTS)


# -- acceptance: DDP training = single-process training on the concatenated batches ----------
CAP_MB = 0.01  # 10 KiB: the digits CNN's gradients split into 3 buckets


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "run"
    p = mpirun("train_ddp.py", str(out), str(CAP_MB))
    assert p.returncode == 0, p.stdout + p.stderr
    return [np.load(f"{out}_rank{r}.npz") for r in range(2)]


@needs_mpi
def test_ddp_matches_one_process_on_concatenated_batches(ddp_run):
    em.manual_seed(0)  # rank 0's seed: DDP broadcasts rank 0's initial weights
    model = common.digits_cnn()
    opt = em.optim.SGD(model.parameters(), lr=common.LR)
    for step in range(common.STEPS):
        common.sgd_step(model, opt, *common.batch(step, 2))
    ref = [p.detach().numpy() for p in model.parameters()]
    for r, run in enumerate(ddp_run):
        for i, want in enumerate(ref):
            # float32: the two runs sum the batch's gradient in a different order
            np.testing.assert_allclose(run[f"arr_{i}"], want, rtol=1e-4, atol=1e-5,
                                       err_msg=f"rank {r}, parameter {i}")
    for i in range(len(ref)):  # the ranks hold identical weights, bit for bit
        np.testing.assert_array_equal(ddp_run[0][f"arr_{i}"], ddp_run[1][f"arr_{i}"])


@needs_mpi
def test_allreduce_is_bucketed_and_starts_before_backward_ends(ddp_run):
    params = list(common.digits_cnn().parameters())
    buckets = [[]]  # expected: parameters in reverse order, at most CAP_MB a bucket
    for p in reversed(params):
        if buckets[-1] and sum(q.nbytes for q in buckets[-1]) + p.nbytes > CAP_MB * 2**20:
            buckets.append([])
        buckets[-1].append(p)
    run = ddp_run[0]
    kinds, times = list(run["kinds"]), run["times"]
    assert run["bucket_sizes"].tolist() == [sum(p.nbytes for p in b) for b in buckets]
    assert len(buckets) == 3
    starts = [t for k, t in zip(kinds, times) if k == "allreduce"]
    assert len(starts) == len(buckets)  # one non-blocking all-reduce per bucket, per step
    # The first bucket's all-reduce starts while backward still has the gradients of every
    # other bucket to compute, and backward ends after that.
    ready_after = [t for k, t in zip(kinds, times) if k == "ready" and t > starts[0]]
    assert len(ready_after) == len(params) - len(buckets[0])
    assert starts[0] < times[kinds.index("backward_done")]


# -- failures end every rank ------------------------------------------------------------------
@needs_mpi
def test_error_on_one_rank_ends_all_ranks_with_its_message():
    p = mpirun("fail.py", timeout=60)  # a hang raises TimeoutExpired and fails the test
    assert p.returncode != 0
    assert "rank 1 of 2 failed" in p.stderr and "rank one could not read its shard" in p.stderr
    assert "rank 0 finished" not in p.stdout


@needs_mpi
def test_mismatched_model_shapes_are_reported_at_start():
    p = mpirun("mismatch.py", timeout=60)
    assert p.returncode != 0
    assert ("the model differs across ranks: parameter '0.weight' has shape (32, 10) float32 on "
            "rank 0, shape (48, 10) float32 on rank 1") in p.stderr


@needs_mpi
def test_collectives_sampler_no_sync_unused_parameters_prepare():
    p = mpirun("api.py", timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "ok rank 0" in p.stdout and "ok rank 1" in p.stdout


@needs_mpi
def test_launch_runs_n_processes(tmp_path):
    script = tmp_path / "hello.py"
    script.write_text("import sys, ember.distributed as dist\n"
                      "open(f'{sys.argv[1]}/rank{dist.rank()}', 'w').write(f'{dist.world_size()} {sys.argv[2:]}')\n")
    assert dist.launch(2, [str(script), str(tmp_path), "--x", "1"]) == 0
    for r in range(2):
        assert (tmp_path / f"rank{r}").read_text() == "2 ['--x', '1']"
    script.write_text("raise SystemExit(3)\n")
    assert dist.launch(2, [str(script)]) != 0  # a failing rank fails the launch


# -- without MPI ------------------------------------------------------------------------------
def test_core_imports_without_mpi4py():
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import ember, ember.distributed as dist\n"
            "assert dist.is_main_process() and not dist.is_initialized()\n"
            "try:\n    dist.init()\nexcept dist.DistributedError as e:\n    print(e)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "needs mpi4py and an MPI library" in p.stdout and "pip install 'ember[mpi]'" in p.stdout


def test_launch_errors(monkeypatch, tmp_path):
    with pytest.raises(dist.DistributedError, match="-n must be a positive number"):
        L.command(0, ["x.py"])
    with pytest.raises(dist.DistributedError, match="give a script"):
        L.command(2, [])
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(dist.DistributedError, match=r"no mpiexec found.*pip install mpi4py mpich"):
        L.command(2, ["x.py"])


def test_ddp_argument_errors():
    with pytest.raises(dist.DistributedError, match="expected an ember.nn.Module, got function"):
        dist.DistributedDataParallel(lambda x: x)
    with pytest.raises(dist.DistributedError, match="bucket_cap_mb must be > 0, got 0"):
        dist.DistributedDataParallel(em.nn.Linear(2, 2), bucket_cap_mb=0)


# -- DistributedSampler -------------------------------------------------------------------------
@pytest.mark.parametrize("n", [10, 11, 3])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_matches_torch_without_shuffle(n, drop_last):
    torch = pytest.importorskip("torch", reason="torch is the oracle for DistributedSampler")
    from torch.utils.data import DistributedSampler as TorchSampler
    for w in (1, 2, 4):
        for r in range(w):
            ours = dist.DistributedSampler(range(n), w, r, shuffle=False, drop_last=drop_last)
            theirs = TorchSampler(range(n), w, r, shuffle=False, drop_last=drop_last)
            assert list(ours) == list(theirs) and len(ours) == len(theirs), (w, r)


@pytest.mark.parametrize("n,w,drop_last", [(20, 4, False), (11, 2, False), (11, 2, True), (3, 4, False)])
def test_sampler_shuffled_shards(n, w, drop_last):
    def shards(epoch):
        out = []
        for r in range(w):
            s = dist.DistributedSampler(range(n), w, r, seed=7, drop_last=drop_last)
            s.set_epoch(epoch)
            out.append(list(s))
        return out

    e0, e1 = shards(0), shards(1)
    assert shards(0) == e0 and e0 != e1  # the same on every call for an epoch, new per epoch
    for parts in (e0, e1):
        assert len({len(p) for p in parts}) == 1  # equal length on every rank
        flat = [i for p in parts for i in p]
        if drop_last:
            assert len(set(flat)) == len(flat) == n // w * w  # disjoint, the tail dropped
        else:
            assert set(flat) == set(range(n)) and len(flat) == -(-n // w) * w  # all, padded


def test_sampler_drives_a_dataloader():
    x = em.arange(10, dtype=em.float32).reshape(10, 1)
    s = dist.DistributedSampler(em.data.TensorDataset(x), num_replicas=2, rank=1, shuffle=False)
    loader = em.data.DataLoader(em.data.TensorDataset(x), batch_size=2, sampler=s)
    assert len(loader) == 3
    assert [b[0].numpy().ravel().tolist() for b in loader] == [[1, 3], [5, 7], [9]]


def test_sampler_errors():
    with pytest.raises(dist.DistributedError, match=r"rank must be in \[0, 1\] for num_replicas=2, got 2"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=2)
    with pytest.raises(dist.DistributedError, match="num_replicas must be an int >= 1, got 0"):
        dist.DistributedSampler(range(4), num_replicas=0, rank=0)


@needs_mpi
def test_fit_distributed_trains_in_sync_and_only_rank0_writes(tmp_path):
    r = mpirun("fit_ddp.py", str(tmp_path))
    assert r.returncode == 0, r.stderr
    import re  # the two ranks share stdout: their lines may interleave, so match, don't split lines
    ranks = sorted(re.findall(r"RANK (\d) checksum (\S+) loss (\d+\.\d{4}) (\d+\.\d{4})", r.stdout))
    assert [rk[0] for rk in ranks] == ["0", "1"], r.stdout
    assert ranks[0][1] == ranks[1][1], "ranks ended with different weights"
    assert float(ranks[0][3]) < float(ranks[0][2]), "loss did not fall"
    assert ranks[0][2:] == ranks[1][2:], "logged losses are not averaged over ranks"
    assert r.stdout.count("ember: train step: eager, data-parallel over 2 ranks") == 1  # rank 0 prints
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header + one row per epoch, written once
