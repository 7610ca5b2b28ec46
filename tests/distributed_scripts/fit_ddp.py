"""fit(..., distributed=True) on every rank: a CSV log is written by rank 0 only; each rank
prints a checksum of its final weights (they must agree)."""
import sys

import ember as em

em.manual_seed(0)
out = sys.argv[1]
(x, y), _ = em.data.datasets.digits(flatten=True)
model = em.nn.Sequential(em.nn.Linear(64, 32), em.nn.ReLU(), em.nn.Linear(32, 10))
model.compile("sgd", "cross_entropy", ["accuracy"])
hist = model.fit(x[:512], y[:512], epochs=3, batch_size=32, distributed=True, verbose=2,
                 callbacks=[em.callbacks.CSVLogger(f"{out}/metrics.csv")])
import ember.distributed as dist  # noqa: E402
checksum = sum(float(p.detach().sum().item()) for p in model.parameters())
dist.barrier()  # rank 1 prints after rank 0's progress output is out
print(f"RANK {dist.rank()} checksum {checksum:.6f} loss {hist.history['loss'][0]:.4f} {hist.history['loss'][-1]:.4f}",
      flush=True)
