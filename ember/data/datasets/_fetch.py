"""Find, download and verify the files of a data set; one place for the cache folder rule."""
from __future__ import annotations

import hashlib
import os
import secrets
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ember.errors import EmberError

__all__ = ["DATA_ENV", "DatasetError", "RemoteFile", "dataset_root", "fetch"]

DATA_ENV = "EMBER_DATA"  # overrides the cache folder; each data set lives in $EMBER_DATA/<name>
DOWNLOAD_TIMEOUT_S = 60


class DatasetError(EmberError, RuntimeError):
    """A data set's files are missing, cannot be downloaded, or are not what they should be."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set: its name, where to download it, and the digests it may have.

    digests are "md5:<hex>" or "sha256:<hex>"; the file is good when any of them matches
    (several copies exist, e.g. a Debian repack differs only in its gzip header).
    """
    name: str
    urls: tuple[str, ...]
    digests: tuple[str, ...]
    size_hint: str = ""  # for error messages, e.g. "26 MB"


def dataset_root(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder for data set `name`: `root` if given, else $EMBER_DATA/name, else ~/.cache/ember/datasets/name.

    Example: dataset_root("mnist")  # PosixPath('/home/me/.cache/ember/datasets/mnist')
    """
    if root is not None:
        return Path(root).expanduser()
    from ...config import data_dir
    return data_dir() / name


def _digests(path: Path, algorithms: set[str]) -> dict[str, str]:
    hashes = {a: hashlib.new(a) for a in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            for h in hashes.values():
                h.update(chunk)
    return {a: h.hexdigest() for a, h in hashes.items()}


def verify(path: Path, spec: RemoteFile) -> None:
    """Raise DatasetError unless `path` has one of the digests of `spec`."""
    wanted = [d.split(":", 1) for d in spec.digests]
    got = _digests(path, {a for a, _ in wanted})
    if not any(got[a] == h.lower() for a, h in wanted):
        raise DatasetError(f"{path} is corrupt or a different file: its checksum "
                           f"{', '.join(f'{a}:{v}' for a, v in got.items())} matches none of "
                           f"{', '.join(spec.digests)}. Delete it and load again to re-download")


def download_file(url: str, dest: Path) -> None:
    """Download `url` to `dest` atomically (temp file in the same folder, then rename).

    Tests replace this function to stay offline.
    """
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(4)}.part")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                f.write(chunk)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(name: str, files: list[RemoteFile], root: str | os.PathLike | None, download: bool,
          also_look_in: tuple[Path, ...] = (), offline_hint: str = "") -> dict[str, Path]:
    """Return {file name: verified path} for every file, downloading missing ones into the root.

    Files are looked for in the root first, then in `also_look_in` (e.g. a system package).
    """
    folder = dataset_root(name, root)
    found: dict[str, Path] = {}
    missing: list[tuple[RemoteFile, str]] = []
    for spec in files:
        path = next((d / spec.name for d in (folder, *also_look_in) if (d / spec.name).is_file()), None)
        if path is None and download:
            path, why = _download(spec, folder)
            if path is None:
                missing.append((spec, why))
                continue
        elif path is None:
            missing.append((spec, "download=False"))
            continue
        verify(path, spec)
        found[spec.name] = path
    if missing:
        lines = [f"  {s.name}{f' ({s.size_hint})' if s.size_hint else ''}: {s.urls[0]}  [{why}]"
                 for s, why in missing]
        where = [str(folder), *map(str, also_look_in)]
        raise DatasetError(f"{name}: {len(missing)} file(s) missing and not downloadable:\n"
                           + "\n".join(lines)
                           + f"\nDownload them on a machine with network access and place them in "
                           f"{folder} (or pass root=..., or set ${DATA_ENV}; looked in: "
                           f"{', '.join(where)}).{(' ' + offline_hint) if offline_hint else ''}")
    return found


def _download(spec: RemoteFile, folder: Path) -> tuple[Path | None, str]:
    """Try each mirror; return (path, "") or (None, why it failed)."""
    dest = folder / spec.name
    errors = []
    for url in spec.urls:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            download_file(url, dest)
        except Exception as e:  # noqa: BLE001 - any failure means: try the next mirror, then report
            errors.append(f"{url}: {type(e).__name__}: {e}")
            continue
        try:
            verify(dest, spec)
        except DatasetError as e:
            dest.unlink(missing_ok=True)  # never leave a bad download where the next run trusts it
            errors.append(f"{url}: {e}")
            continue
        return dest, ""
    return None, "; ".join(errors) or "no URL"
