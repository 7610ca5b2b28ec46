"""Run under mpiexec -n 2: rank 1 raises while rank 0 waits in an all-reduce. The job must end
(all ranks) with rank 1's message instead of hanging."""
import ember as em
import ember.distributed as dist

dist.init()
if dist.rank() == 1:
    raise ValueError("rank one could not read its shard")
dist.all_reduce(em.ones(3))  # never completes: rank 1 is gone
print("rank 0 finished: the error did not stop the job", flush=True)
