"""Run under mpiexec -n 2: rank 1 builds a wider hidden layer; DDP must refuse at construction."""
import ember.distributed as dist
import ember.nn as nn

dist.init()
hidden = 32 if dist.rank() == 0 else 48
dist.DistributedDataParallel(nn.Sequential(nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, 2)))
