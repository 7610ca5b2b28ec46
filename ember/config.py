"""Every flag and environment variable ember reads, in one place (tools/sz.py counts them).

Read them through these functions so a test can monkeypatch the environment."""
from __future__ import annotations

import os
from pathlib import Path

FLAGS = {
    "EMBER_DEBUG": "0: quiet; 2: print graphs after each compiler pass; 3: also generated source",
    "EMBER_CC": "C compiler for generated kernels (default: cc)",
    "EMBER_CACHE_DIR": "compile cache folder (default: ~/.cache/ember/kernels)",
    "EMBER_DATA": "data set download/cache folder (default: ~/.cache/ember/datasets)",
    "EMBER_NATIVE": "0: eager ops use only their NumPy kernels, never the hand-written C ones",
}


def debug_level() -> int:
    return int(os.environ.get("EMBER_DEBUG", "0") or 0)


def c_compiler() -> str:
    return os.environ.get("EMBER_CC", "cc")


def native_kernels() -> bool:
    return os.environ.get("EMBER_NATIVE", "1") != "0"


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ember"


def cache_dir() -> Path:
    """Compile cache: $EMBER_CACHE_DIR, else $XDG_CACHE_HOME/ember/kernels (~/.cache/...)."""
    d = os.environ.get("EMBER_CACHE_DIR")
    return Path(d).expanduser() if d else _user_cache() / "kernels"


def data_dir() -> Path:
    """Data sets: $EMBER_DATA, else $XDG_CACHE_HOME/ember/datasets (~/.cache/...)."""
    d = os.environ.get("EMBER_DATA")
    return Path(d).expanduser() if d else _user_cache() / "datasets"
