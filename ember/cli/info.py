"""`ember info`: version, backends, devices, C compiler and compile cache."""
from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess

import numpy as np

import ember
from .. import config

__all__ = ["info_lines", "c_compiler_version", "compile_cache"]


def c_compiler_version() -> str:
    """The first line of ``$EMBER_CC --version`` (default cc), or why there is none."""
    cc = config.c_compiler()
    if shutil.which(cc) is None:
        return f"not found ({cc!r} is not on PATH): ember runs eagerly, without generated kernels"
    try:
        r = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{cc} does not run ({e})"
    first = (r.stdout or r.stderr).strip().splitlines()
    return f"{cc}: {first[0] if first else 'no version output'}"


def compile_cache() -> str:
    """Where compiled kernels are cached (ember.compiler.cache), with its entries and size."""
    from ..compiler.cache import cache_info
    info = cache_info()
    if not info["entries"]:
        return f"{info['location']} (empty: nothing compiled yet)"
    return f"{info['location']} ({info['entries']} kernel modules, {info['bytes'] / 1e6:.1f} MB)"


def _cuda() -> tuple[str, list[str]]:
    if importlib.util.find_spec("cupy") is None:
        return "cupy (cuda): not installed (pip install cupy-cuda12x for NVIDIA GPUs)", []
    try:
        devices = ember.backends.backend_for(ember.device("cuda")).devices()
    except ember.DeviceError as e:
        return f"cupy (cuda): unavailable: {e}", []
    return f"cupy (cuda): available, {len(devices)} GPU(s)", devices


def info_lines() -> list[str]:
    """The report `ember info` prints, one line per item."""
    cuda, gpus = _cuda()
    return [f"ember {ember.__version__}",
            f"python {platform.python_version()} ({platform.system()} {platform.machine()}), numpy {np.__version__}",
            "backends: numpy (cpu): available; " + cuda,
            f"devices: {', '.join(['cpu', *gpus])}",
            f"C compiler: {c_compiler_version()}",
            f"compile cache: {compile_cache()}",
            f"data sets: {config.data_dir()}"]
