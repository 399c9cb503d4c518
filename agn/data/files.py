"""MNIST, Fashion-MNIST (IDX files) and CIFAR-10 (python batches) from a directory, downloading
the standard files when they are missing and a network is reachable."""
from __future__ import annotations

import io
import logging
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from agn.data.base import ImageDataModule
from agn.data.readers import DataFileError, find_file, read_cifar_batch, read_idx
from hwlib.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
IDX_MIRRORS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion-mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
DOWNLOAD_TIMEOUT_S = 30


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:  # noqa: S310 (https)
        return resp.read()


def _check_dir(root: Path, missing: list[str], download: bool, expected: str) -> None:
    """The checks of ``check_files``: ``root`` exists, and holds the files unless they will be
    downloaded."""
    if not root.is_dir():
        raise DataFileError(f"data directory {str(root)!r} does not exist; expected a directory "
                            f"holding {expected} (create it to download the files into it)")
    if missing and not download:
        raise DataFileError(f"data directory {str(root)!r}: {', '.join(missing)} not found and "
                            f"download is off; expected {expected}")


class IdxDataModule(ImageDataModule):
    """MNIST-format data (28x28 grey, 10 classes) from a directory of the four IDX files.

    Args:
        root: directory holding ``train-images-idx3-ubyte[.gz]`` and the three other files.
        dataset: ``mnist`` or ``fashion-mnist`` (chooses the download mirror).
        download: fetch missing files (gzip) into ``root`` in ``prepare_data``.
        **kwargs: see :class:`~agn.data.base.ImageDataModule`.
    """

    in_channels, input_size, num_classes = 1, 28, 10

    def __init__(self, root: str, dataset: str = "mnist", download: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        if dataset not in IDX_MIRRORS:
            raise ValueError(f"IdxDataModule: dataset must be one of {sorted(IDX_MIRRORS)}, got "
                             f"{dataset!r}")
        self.root, self.dataset, self.download = Path(root), dataset, download

    def source(self) -> str:
        return f"dataset directory {self.root} ({self.dataset})"

    def _missing(self) -> list[str]:
        return [n for n in IDX_FILES
                if not (self.root / n).is_file() and not (self.root / f"{n}.gz").is_file()]

    def check_files(self) -> None:
        _check_dir(self.root, self._missing(), self.download,
                   ", ".join(f"{n}[.gz]" for n in IDX_FILES))

    def prepare_data(self) -> None:
        if not self.download:
            return
        for name in self._missing():
            url = IDX_MIRRORS[self.dataset] + f"{name}.gz"
            try:
                atomic_write_bytes(self.root / f"{name}.gz", _fetch(url))
                log.info("downloaded %s", url)
            except OSError as exc:
                log.warning("could not download %s (%s)", url, exc)
                return

    def load(self):
        paths = [find_file(self.root, n, IDX_FILES) for n in IDX_FILES]
        xtr, ytr, xte, yte = (read_idx(p) for p in paths)
        for x, y, px in ((xtr, ytr, paths[0]), (xte, yte, paths[2])):
            if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
                raise DataFileError(f"dataset file {px}: images {x.shape} do not match labels "
                                    f"{y.shape}")
        return (xtr[:, None].astype(np.float32) / 255.0, ytr.astype(np.int64),
                xte[:, None].astype(np.float32) / 255.0, yte.astype(np.int64))


class Cifar10DataModule(ImageDataModule):
    """CIFAR-10 from the python batches directory (``cifar-10-batches-py`` or its parent).

    Args:
        root: directory holding ``data_batch_1..5`` and ``test_batch`` (or a
            ``cifar-10-batches-py`` subdirectory with them).
        download: fetch and extract the official archive into ``root`` when files are missing.
        **kwargs: see :class:`~agn.data.base.ImageDataModule` (defaults: shift 4, flips on).
    """

    in_channels, input_size, num_classes = 3, 32, 10

    def __init__(self, root: str, download: bool = True, shift: int = 4, hflip: bool = True,
                 **kwargs) -> None:
        super().__init__(shift=shift, hflip=hflip, **kwargs)
        self.root, self.download = Path(root), download

    def source(self) -> str:
        return f"dataset directory {self._dir()} (CIFAR-10)"

    def _dir(self) -> Path:
        sub = self.root / "cifar-10-batches-py"
        return sub if sub.is_dir() else self.root

    def check_files(self) -> None:
        missing = [n for n in CIFAR_FILES if not (self._dir() / n).is_file()]
        _check_dir(self.root, missing, self.download,
                   f"{', '.join(CIFAR_FILES)} (or a cifar-10-batches-py directory of them)")

    def prepare_data(self) -> None:
        if not self.download or all((self._dir() / n).is_file() for n in CIFAR_FILES):
            return
        try:
            blob = _fetch(CIFAR_URL)
        except OSError as exc:
            log.warning("could not download %s (%s)", CIFAR_URL, exc)
            return
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if member.isfile() and name in CIFAR_FILES:
                    atomic_write_bytes(self.root / "cifar-10-batches-py" / name,
                                       tar.extractfile(member).read())

    def load(self):
        d = self._dir()
        for n in CIFAR_FILES:
            if not (d / n).is_file():
                raise DataFileError(f"dataset directory {d}: file {n} not found; expected files: "
                                    f"{', '.join(CIFAR_FILES)} (the CIFAR-10 python batches)")
        parts = [read_cifar_batch(d / n) for n in CIFAR_FILES[:5]]
        xte, yte = read_cifar_batch(d / "test_batch")
        xtr = np.concatenate([p[0] for p in parts])
        ytr = np.concatenate([p[1] for p in parts])
        return xtr.astype(np.float32) / 255.0, ytr, xte.astype(np.float32) / 255.0, yte
