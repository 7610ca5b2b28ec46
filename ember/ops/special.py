"""Special functions that NumPy lacks, per array module (resolved once per backend)."""
from __future__ import annotations

import math

import numpy as np


def erf_kernel(xp):
    """A vectorized erf for ``xp``: SciPy's/CuPy's ufunc when present, else exact math.erf."""
    if xp is np:
        try:
            from scipy.special import erf
            return erf
        except ImportError:
            scalar = np.frompyfunc(math.erf, 1, 1)  # exact but slow; ember says so once, when used

            def erf(x):
                _warn_slow_erf()
                return np.asarray(scalar(x), dtype=x.dtype)
            return erf
    from cupyx.scipy.special import erf
    return erf


_warned = []


def _warn_slow_erf():
    if not _warned:
        import warnings
        warnings.warn("ember: SciPy is not installed, so erf and exact gelu run through Python's "
                      "math.erf per element (slow); pip install scipy to speed them up", stacklevel=4)
        _warned.append(True)
