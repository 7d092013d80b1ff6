"""Where data live: the data folder (``root=`` or ``$DCTNET_DATA``) and the sample shipped in the package.

>>> with bundled("cifar10-sample.zip") as path:
...     path.name
'cifar10-sample.zip'
"""

from __future__ import annotations

import contextlib
import os
from importlib import resources
from pathlib import Path

__all__ = ["ENV_VAR", "data_root", "bundled", "missing_file", "check_split"]

ENV_VAR = "DCTNET_DATA"


def data_root(root=None) -> Path:
    """The data folder: ``root`` when given, else ``$DCTNET_DATA``; it must exist.

    >>> data_root("/tmp")
    PosixPath('/tmp')
    """
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise FileNotFoundError(
                f"no data folder: pass root=... or set the environment variable {ENV_VAR} to a "
                "folder holding mnist/ and cifar10-jpeg.zip (dctnet.datasets.download_mnist(root) "
                "and download_cifar10(root) fill one)"
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"data folder {path} does not exist; point {ENV_VAR} (or root=) at the folder holding "
            "mnist/ and cifar10-jpeg.zip, or fill it with dctnet.datasets.download_mnist(root) "
            "and download_cifar10(root)"
        )
    return path


@contextlib.contextmanager
def bundled(name: str):
    """The path of ``dctnet/data/<name>``, a file shipped in the package, for the ``with`` block.

    (A path on disk even when the package is installed zipped: ``importlib.resources``.)
    """
    resource = resources.files("dctnet").joinpath("data", name)
    if not resource.is_file():
        raise FileNotFoundError(f"{name} is not among the files shipped in dctnet/data/; the installation "
                                "is incomplete: reinstall dctnet")
    with resources.as_file(resource) as path:
        yield Path(path)


def missing_file(path: Path, helper: str) -> FileNotFoundError:
    """The error for a data file that is not there, naming the download helper that fetches it."""
    return FileNotFoundError(
        f"{path} not found; download it with dctnet.datasets.{helper}(root), or set "
        f"{ENV_VAR} to a data folder that has it"
    )


def check_split(split) -> str:
    """``split`` if it is ``"train"`` or ``"test"``, else a ValueError."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', found {split!r}")
    return split
