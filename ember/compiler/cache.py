"""The on-disk compile cache: generated C source -> a loaded extension module.

An entry is keyed by a hash of the source, the compiler's version line, the flags and the
Python ABI, so a change to any of them compiles anew. Each entry is ``<name>.so`` with its
``<name>.c`` and ``<name>.sha256`` (the checksum of the .so). Writes go to a temporary file and
are renamed into place; a lock file serialises processes compiling the same entry; an entry
whose checksum does not match, or that fails to load, is rebuilt.

>>> mod = load(source_with_placeholder)   # compiles once per machine, then loads from disk
"""
from __future__ import annotations

import fcntl
import hashlib
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import warnings
from pathlib import Path

from . import malloc, threads

PLACEHOLDER = "EMBER_MODULE_NAME"  # the module name inside a source, filled in from its hash
# 512-bit vectors where the CPU has them: GCC picks 256 bits by default (older AVX-512 chips
# slowed their clock for wide vectors), but the math-heavy fused loops run libmvec's 16-lane
# erf/exp then (W5a's gelu chain 10.2 -> 7.8 ms on this Sapphire Rapids machine).
FLAGS = ["-O3", "-march=native", "-mprefer-vector-width=512", "-ffast-math", "-fopenmp", "-shared", "-fPIC"]
FALLBACK_FLAGS = ["-O2", "-shared", "-fPIC"]  # for compilers without -march=native / OpenMP
stats = {"hits": 0, "compiles": 0, "rebuilds": 0}  # counted per process (tests read them)
_loaded: dict = {}
_cc_info = None


class CompileError(RuntimeError):
    """The C compiler rejected generated code (a bug in ember: please report it)."""


def cache_dir() -> Path:
    """Where compiled kernels live: $EMBER_CACHE_DIR, else ~/.cache/ember/kernels."""
    d = os.environ.get("EMBER_CACHE_DIR")
    if d:
        return Path(d)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ember" / "kernels"


def cache_info() -> dict:
    """Location, number of entries and total bytes of the compile cache (for ``ember info``)."""
    d = cache_dir()
    files = list(d.glob("*.so")) if d.exists() else []
    size = sum(f.stat().st_size for f in d.iterdir()) if d.exists() else 0
    cc = compiler()
    return {"location": str(d), "entries": len(files), "bytes": size,
            "compiler": cc[1] if cc else None}


def compiler():
    """(path, version line) of the C compiler ($EMBER_CC or cc), or None if there is none or
    Python's headers are missing."""
    global _cc_info
    if _cc_info is None:
        cc = shutil.which(os.environ.get("EMBER_CC", "cc"))
        inc = sysconfig.get_paths()["include"]
        if cc is None or not os.path.exists(os.path.join(inc, "Python.h")):
            _cc_info = False
        else:
            try:
                out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30)
                _cc_info = (cc, (out.stdout.splitlines() or ["unknown"])[0])
            except (OSError, subprocess.SubprocessError):
                _cc_info = False
    return _cc_info or None


def load(source: str):
    """The extension module built from ``source`` (which names itself PLACEHOLDER)."""
    threads.prepare()  # idle OpenMP threads sleep: see threads.py
    malloc.keep_freed_memory()  # large arrays freed each step are reused, not faulted in again
    cc = compiler()
    if cc is None:
        raise CompileError("no C compiler")
    errors = []
    for flags in (FLAGS, FALLBACK_FLAGS):
        key = hashlib.sha256("\0".join([source, cc[1], " ".join(flags), sys.implementation.cache_tag,
                                        sysconfig.get_config_var("EXT_SUFFIX") or ""]).encode())
        name = f"ember_k_{key.hexdigest()[:24]}"
        if name in _loaded:
            stats["hits"] += 1
            return _loaded[name]
        try:
            mod = _load_or_build(name, source.replace(PLACEHOLDER, name), cc[0], flags)
        except CompileError as e:
            errors.append(str(e))
            continue
        _loaded[name] = mod
        return mod
    raise CompileError("\n".join(errors))


def _load_or_build(name: str, source: str, cc: str, flags: list):
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    so, csum = d / f"{name}.so", d / f"{name}.sha256"
    with open(d / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process builds; the others wait, then load
        if so.exists():
            if _valid(so, csum):
                try:
                    mod = _import(name, so)
                    stats["hits"] += 1
                    return mod
                except ImportError:
                    pass
            stats["rebuilds"] += 1  # corrupt or half-written: build it again
            warnings.warn(f"ember.jit: cache entry {so} was corrupt; rebuilding it", stacklevel=4)
        _build(name, source, cc, flags, d)
        stats["compiles"] += 1
        return _import(name, so)


def _valid(so: Path, csum: Path) -> bool:
    try:
        return csum.read_text().strip() == hashlib.sha256(so.read_bytes()).hexdigest()
    except OSError:
        return False


def _build(name, source, cc, flags, d: Path) -> None:
    tmp = f".{os.getpid()}.tmp"
    src = d / f"{name}.c"
    _atomic_write(src, source.encode(), tmp)
    out = d / f"{name}{tmp}.so"
    cmd = [cc, *flags, f"-I{sysconfig.get_paths()['include']}", str(src), "-o", str(out), "-lm"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        raise CompileError(f"{' '.join(cmd)}: {e}") from None
    if r.returncode != 0:
        out.unlink(missing_ok=True)
        raise CompileError(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    os.replace(out, d / f"{name}.so")
    _atomic_write(d / f"{name}.sha256", digest.encode(), tmp)


def _atomic_write(path: Path, data: bytes, tmp: str) -> None:
    t = path.with_name(path.name + tmp)
    with open(t, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(t, path)


def _import(name: str, so: Path):
    loader = importlib.machinery.ExtensionFileLoader(name, str(so))
    spec = importlib.util.spec_from_file_location(name, str(so), loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod
