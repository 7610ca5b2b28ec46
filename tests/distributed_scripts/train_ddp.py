"""Run under mpiexec: STEPS of DDP training on the digits CNN. Writes every rank's final
parameters, and a trace of gradient-ready hooks and all-reduce starts, to OUT_rank<r>.npz.

usage: mpiexec -n 2 python train_ddp.py OUT [bucket_cap_mb]
"""
import sys
import time

import numpy as np

import ember as em
import ember.distributed as dist
from ddp_common import LR, PER_RANK, STEPS, batch, digits_cnn, sgd_step


class RecordingComm:
    """The world communicator, noting when each non-blocking all-reduce starts."""

    def __init__(self, comm, events):
        self.comm, self.events = comm, events

    def Iallreduce(self, *args, **kwargs):
        self.events.append(("allreduce", time.perf_counter(), -1))
        return self.comm.Iallreduce(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.comm, name)


out = sys.argv[1]
cap = float(sys.argv[2]) if len(sys.argv) > 2 else 25.0
comm = dist.init()
r, w = dist.rank(), dist.world_size()
em.manual_seed(r)  # different initial weights per rank: DDP must broadcast rank 0's
model = digits_cnn()
events = []
params = list(model.parameters())
for i, p in enumerate(params):  # registered before DDP's hooks: notes when each grad is written
    p.register_post_accumulate_grad_hook(lambda p, i=i: events.append(("ready", time.perf_counter(), i)))
ddp = dist.DistributedDataParallel(model, bucket_cap_mb=cap, process_group=RecordingComm(comm, events))
opt = em.optim.SGD(model.parameters(), lr=LR)
step_events = []
for step in range(STEPS):
    x, y = batch(step, w)
    events.clear()
    sgd_step(ddp, opt, x[r * PER_RANK:(r + 1) * PER_RANK], y[r * PER_RANK:(r + 1) * PER_RANK])
    events.append(("backward_done", time.perf_counter(), -1))
    step_events = list(events)
kinds = np.array([e[0] for e in step_events])
np.savez(f"{out}_rank{r}.npz", *[p.detach().numpy() for p in params], kinds=kinds,
         times=np.array([e[1] for e in step_events]), which=np.array([e[2] for e in step_events]),
         bucket_sizes=np.array(ddp.bucket_sizes))
