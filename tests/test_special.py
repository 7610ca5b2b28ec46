"""erf without SciPy: the exact math.erf fallback gives the same numbers and warns once, when used."""
import math
import sys
import warnings

import numpy as np
import pytest

from ember.ops import special


def test_erf_fallback_without_scipy_is_exact_and_warns_when_used(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy.special", None)  # import scipy.special now fails
    monkeypatch.setattr(special, "_warned", [])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        erf = special.erf_kernel(np)  # resolving the kernel must not warn
    x = np.array([-2.0, -0.3, 0.0, 0.7, 3.0], dtype=np.float32)
    with pytest.warns(UserWarning, match="pip install scipy"):
        out = erf(x)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [math.erf(v) for v in x.astype(float)], rtol=1e-6)
