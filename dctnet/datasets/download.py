"""Downloads: a file fetched from the first reachable mirror, checked against its SHA-256.

The data-set modules hold their own addresses and sums (:mod:`.mnist`,
:mod:`.cifar`); this module knows only how to fetch. A download goes to a
temporary file beside its target and is renamed into place only when its hash
matches, so a broken connection or a changed file upstream never leaves a
wrong file under the right name.

>>> fetch(["https://example.org/a.gz"], Path("data/a.gz"), "440fca...", progress=False)   # doctest: +SKIP
PosixPath('data/a.gz')
"""

from __future__ import annotations

import hashlib
import math
import urllib.request
from pathlib import Path

from ..atomic import atomic_path
from .paths import data_root
from ..progressbar import progress as track_progress

__all__ = ["sha256_file", "fetch", "download_folder"]

_CHUNK = 1 << 20


def sha256_file(path) -> str:
    """The SHA-256 of the file ``path``, as hex.

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "empty"
    >>> _ = f.write_bytes(b"")
    >>> sha256_file(f)[:16]
    'e3b0c44298fc1c14'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(urls, dest: Path, sha256: str, progress: bool = False) -> Path:
    """``dest``, fetched from the first reachable of ``urls`` unless already there with the right hash.

    A hash mismatch deletes the download and raises ``ValueError``; no
    reachable URL raises ``ConnectionError`` with every URL's error.
    """
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    errors = []
    for url in urls:
        try:
            response = urllib.request.urlopen(url, timeout=60)
        except OSError as exc:  # URLError and socket errors: try the next mirror
            errors.append(f"{url}: {exc}")
            continue
        with atomic_path(dest) as tmp, response, open(tmp, "wb") as out:
            h = hashlib.sha256()
            size = int(response.headers.get("Content-Length") or 0)
            chunks = iter(lambda: response.read(_CHUNK), b"")
            for chunk in track_progress(chunks, math.ceil(size / _CHUNK) or None, dest.name, "MiB", enabled=progress):
                h.update(chunk)
                out.write(chunk)
            if h.hexdigest() != sha256:
                raise ValueError(
                    f"{url}: the download has SHA-256 {h.hexdigest()}, expected {sha256}; it is "
                    "corrupt or the file changed upstream, so it was deleted: try again later"
                )
        return dest
    raise ConnectionError(f"could not download {dest.name}: " + "; ".join(errors))


def download_folder(root) -> Path:
    """The folder downloads go to: ``root``, else the data folder; created when missing."""
    path = Path(root if root is not None else data_root()).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path
