"""``ember run -n N script.py``: a thin launcher over the ``mpiexec`` of the MPI ember uses."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import Sequence

from .mpi import INSTALL, DistributedError


def find_mpiexec() -> str:
    """The mpiexec next to this Python (a pip-installed MPI lives there), else the one on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("mpiexec")
    if found is None:
        raise DistributedError(f"ember run: no mpiexec found next to {sys.executable} or on PATH; "
                               f"install an MPI with: {INSTALL}")
    return found


def command(n: int, argv: Sequence[str]) -> list[str]:
    """The mpiexec command line that ``launch`` runs: N copies of this Python running argv."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise DistributedError(f"ember run: -n must be a positive number of processes, got {n!r}")
    if not argv:
        raise DistributedError("ember run: give a script to run, e.g. ember run -n 2 train.py "
                               "(or -m package.module)")
    return [find_mpiexec(), "-n", str(n), sys.executable, *argv]


def launch(n: int, argv: Sequence[str]) -> int:
    """Run ``python argv...`` in ``n`` MPI processes and return the exit status.

    >>> launch(2, ["train.py", "--epochs", "3"])   # same as: mpiexec -n 2 python train.py --epochs 3
    """
    cmd = command(n, list(argv))
    try:
        return subprocess.call(cmd)
    except KeyboardInterrupt:  # mpiexec forwards the interrupt to the ranks
        return 130
