"""Run under mpiexec -n 2: collectives, sampler defaults, no_sync, unused parameters and the
errors a rank can recover from. Asserts on every rank; prints 'ok rank R' at the end."""
import numpy as np

import ember as em
import ember.distributed as dist
import ember.nn as nn


def raises(fn, *words):
    try:
        fn()
    except dist.DistributedError as e:
        assert all(w in str(e) for w in words), (str(e), words)
        return
    raise AssertionError(f"no DistributedError with {words}")


dist.init()
r, w = dist.rank(), dist.world_size()
assert w == 2 and dist.is_initialized() and dist.is_main_process() == (r == 0)

# collectives: results checked against NumPy
t = em.arange(4, dtype=em.float32) + r
assert dist.all_reduce(t) is t
np.testing.assert_array_equal(t.numpy(), np.arange(4) * 2 + 1)
t = em.tensor([1.0, 5.0]) * (r + 1)
dist.all_reduce(t, op=dist.ReduceOp.AVG)
np.testing.assert_allclose(t.numpy(), [1.5, 7.5])
t = em.tensor([r, -r], dtype=em.int64)
dist.all_reduce(t, op="max")
np.testing.assert_array_equal(t.numpy(), [1, 0])
raises(lambda: dist.all_reduce(em.tensor([1, 2]), op="avg"), "floating-point", "int64")
raises(lambda: dist.all_reduce(em.ones(2), op="mean"), "unknown op", "'mean'")
t = em.full((2, 3), float(r + 7)).T  # not contiguous: written back through a copy
dist.broadcast(t, src=1)
np.testing.assert_array_equal(t.numpy(), np.full((3, 2), 8.0))
raises(lambda: dist.broadcast(em.ones(1), src=2), "src=2", "world size 2")
outs = [em.zeros(2) for _ in range(w)]
dist.all_gather(outs, em.tensor([r, 10.0 * r]))
np.testing.assert_array_equal(np.stack([o.numpy() for o in outs]), [[0, 0], [1, 10]])
raises(lambda: dist.all_gather([em.zeros(2)], em.zeros(2)), "1 tensors", "2 ranks")
raises(lambda: dist.all_gather([em.zeros(3), em.zeros(2)], em.zeros(2)), "tensor_list[0]", "(3,)")
dist.barrier()

# DistributedSampler picks up rank and world size; its shards are disjoint
s = dist.DistributedSampler(list(range(11)), seed=3)
gathered = [em.zeros(6, dtype=em.int64) for _ in range(w)]
dist.all_gather(gathered, em.tensor(list(s), dtype=em.int64))
assert sorted(np.concatenate([g.numpy() for g in gathered]).tolist()) == sorted(list(range(11)) + [list(dist.DistributedSampler(list(range(11)), 2, 0, seed=3))[0]])

# no_sync: two local backward passes, then one synchronized = grads of the summed losses, averaged
em.manual_seed(0)
model = nn.Linear(3, 2)
ddp = dist.DistributedDataParallel(model)
x = em.arange(12, dtype=em.float32).reshape(4, 3) / 10 + r
with ddp.no_sync():
    ddp(x[:2]).sum().backward()
ddp(x[2:]).sum().backward()
g = model.weight.grad.numpy().copy()
xs = np.concatenate([np.arange(12).reshape(4, 3) / 10 + k for k in range(w)])
np.testing.assert_allclose(g, np.tile(xs.sum(0), (2, 1)) / w, rtol=1e-6)

# a second backward after one forward is refused
y = ddp(x).sum()
y.backward(retain_graph=True)
raises(lambda: y.backward(), "got a gradient twice", "no_sync")


# a parameter the forward skips: an error at the next forward, or zeros with find_unused_parameters
class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(2, 2), nn.Linear(2, 2)

    def forward(self, x):
        return self.a(x)


em.manual_seed(0)
m = Branchy()
ddp = dist.DistributedDataParallel(m, bucket_cap_mb=1e-5)  # one bucket per parameter
ddp(em.ones(1, 2)).sum().backward()
raises(lambda: ddp(em.ones(1, 2)), "b.weight", "find_unused_parameters=True")
m.zero_grad()
ddp = dist.DistributedDataParallel(m, find_unused_parameters=True)
ddp(em.ones(1, 2) * (r + 1)).sum().backward()
np.testing.assert_allclose(m.a.weight.grad.numpy(), np.full((2, 2), 1.5))
np.testing.assert_array_equal(m.b.weight.grad.numpy(), np.zeros((2, 2)))

# prepare: DDP plus a sharded loader with this rank's half of the data
ds = em.data.TensorDataset(em.arange(8, dtype=em.float32).reshape(8, 1))
ddp, loader = dist.prepare(nn.Linear(1, 1), em.data.DataLoader(ds, batch_size=2, shuffle=True))
assert isinstance(ddp, dist.DistributedDataParallel) and len(loader) == 2
loader.sampler.set_epoch(1)
mine = np.concatenate([b[0].numpy().ravel() for b in loader])
both = [em.zeros(4) for _ in range(w)]
dist.all_gather(both, em.from_numpy(mine))
assert sorted(np.concatenate([b.numpy() for b in both]).tolist()) == list(range(8))
print(f"ok rank {r}", flush=True)
