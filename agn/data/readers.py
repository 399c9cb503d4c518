"""Readers of the standard dataset file formats: IDX (MNIST, Fashion-MNIST), CIFAR-10 batches."""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "find_file", "read_cifar_batch", "read_idx"]

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFileError(ValueError):
    """A dataset file that is missing, truncated or not in the expected format."""


def find_file(root: Path, name: str, expected: list[str]) -> Path:
    """``root/name`` or ``root/name.gz``; the error names the directory and the expected files."""
    for cand in (root / name, root / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise DataFileError(f"dataset directory {root}: file {name}[.gz] not found; expected files: "
                        f"{', '.join(expected)} (gzip or not)")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise DataFileError(f"dataset file {path}: cannot read ({exc})") from None


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (optionally gzip-compressed) as a numpy array of its declared type and shape."""
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataFileError(f"dataset file {p}: not an IDX file (bad magic {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFileError(f"dataset file {p}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    need = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != need:
        raise DataFileError(f"dataset file {p}: IDX shape {shape} needs {need} data bytes, file "
                            f"has {len(data) - header}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            obj = pickle.load(fh, encoding="bytes")
        x = np.asarray(obj[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(obj[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise DataFileError(f"dataset file {p} not found") from None
    except Exception as exc:  # unpickling garbage raises many types
        raise DataFileError(f"dataset file {p}: not a CIFAR-10 python batch "
                            f"({exc!r:.200})") from None
    if len(x) != len(y):
        raise DataFileError(f"dataset file {p}: {len(x)} images but {len(y)} labels")
    return x, y
