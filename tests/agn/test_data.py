"""Data modules: seeded splits, per-epoch reshuffling, train-only augmentation, file readers."""
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from agn.data import (
    Cifar10DataModule,
    DataFileError,
    DigitsDataModule,
    IdxDataModule,
    build_datamodule,
    read_cifar_batch,
    read_idx,
)
from agn.data.augment import random_hflip, random_shift


def write_idx(path, arr, compress):
    codes = {np.uint8: 0x08, np.int32: 0x0C}
    header = bytes([0, 0, codes[arr.dtype.type], arr.ndim]) + b"".join(
        struct.pack(">I", d) for d in arr.shape)
    data = header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def fake_mnist(root, n_train=60, n_test=20, compress=True):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(root / f"{prefix}-images-idx3-ubyte",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte",
                  rng.integers(0, 10, n, dtype=np.uint8), compress)
    return root


def test_digits_splits_are_disjoint_seeded_and_normalised():
    dm = DigitsDataModule(seed=3, val_fraction=0.1, test_fraction=0.2, confirm_fraction=0.0)
    dm.setup()
    n = {k: len(dm.split(k)) for k in ("train", "val", "confirm", "test")}
    assert n == {"train": 1294, "val": 144, "confirm": 0, "test": 359}
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (1, 8, 8)
    xtr = dm.normalize(dm.split("train").tensors[0])
    assert abs(float(xtr.mean())) < 1e-4 and abs(float(xtr.std()) - 1) < 0.05
    other = DigitsDataModule(seed=4, test_fraction=0.2)
    other.setup()
    assert not torch.equal(dm.split("val").tensors[1], other.split("val").tensors[1])
    assert torch.equal(dm.split("test").tensors[1], other.split("test").tensors[1])  # fixed test


def test_digits_default_splits_hold_out_a_confirmation_split_nothing_else_sees():
    dm = DigitsDataModule(seed=3)
    dm.setup()
    n = {k: len(dm.split(k)) for k in ("train", "val", "confirm", "test")}
    assert n == {"train": 674, "val": 337, "confirm": 337, "test": 449}
    rows = {k: {tuple(x.flatten().tolist()) for x in dm.split(k).tensors[0]}
            for k in ("train", "val", "confirm")}
    assert not rows["confirm"] & rows["val"] and not rows["confirm"] & rows["train"]
    # without a confirmation split the other splits are what they were before it existed
    plain = DigitsDataModule(seed=3, confirm_fraction=0.0)
    plain.setup()
    assert torch.equal(plain.split("val").tensors[0], dm.split("val").tensors[0])
    assert len(plain.split("train")) == 674 + 337 and len(plain.split("confirm")) == 0
    with pytest.raises(ValueError, match=r"confirm_fraction must be in \[0, 1 - val_fraction\)"):
        DigitsDataModule(val_fraction=0.5, confirm_fraction=0.5)


def test_training_batches_reshuffle_every_epoch_and_augment_only_training():
    dm = DigitsDataModule(seed=0, shift=1, batch_size=64)
    dm.setup()
    loader = dm.train_dataloader()
    ep1 = torch.cat([y for _, y in loader])
    ep2 = torch.cat([y for _, y in loader])
    assert not torch.equal(ep1, ep2)
    assert torch.equal(ep1.sort().values, ep2.sort().values)
    v1 = [x for x, _ in dm.val_dataloader()]
    v2 = [x for x, _ in dm.val_dataloader()]
    assert all(torch.equal(a, b) for a, b in zip(v1, v2))
    raw = dm.split("val").tensors[0][:len(v1[0])]
    assert torch.equal(v1[0], dm.normalize(raw))  # no augmentation on validation
    again = DigitsDataModule(seed=0, shift=1, batch_size=64)
    again.setup()
    assert torch.equal(torch.cat([y for _, y in again.train_dataloader()]), ep1)  # seeded


def test_random_shift_and_flip():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3) + 1
    g = torch.Generator().manual_seed(0)
    shifted = random_shift(x, 1, g)
    for i in range(2):
        nz = shifted[i, 0][shifted[i, 0] != 0]
        assert set(nz.tolist()) <= set(x[i, 0].flatten().tolist()) and len(nz) >= 4
    assert torch.equal(random_shift(x, 0), x)
    flipped = random_hflip(x, torch.Generator().manual_seed(1))
    for i in range(2):
        assert torch.equal(flipped[i], x[i]) or torch.equal(flipped[i], x[i].flip(-1))


@pytest.mark.parametrize("compress", [True, False])
def test_idx_reader_round_trip(tmp_path, compress):
    arr = np.random.default_rng(1).integers(0, 256, (5, 4, 3), dtype=np.uint8)
    p = write_idx(tmp_path / "a-idx3-ubyte", arr, compress)
    np.testing.assert_array_equal(read_idx(p), arr)
    ints = np.arange(-3, 3, dtype=np.int32)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "b", ints, compress)), ints)


def test_idx_module_from_any_directory_and_errors(tmp_path):
    root = fake_mnist(tmp_path / "m")
    dm = build_datamodule("fashion-mnist", root=str(root), download=False, val_fraction=0.25)
    dm.prepare_data()
    dm.setup()
    assert (len(dm.split("train")), len(dm.split("val")), len(dm.split("test"))) == (45, 15, 20)
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFileError, match=r"m: file t10k-labels-idx1-ubyte\[.gz\] not found; "
                                            r"expected files: train-images-idx3-ubyte"):
        IdxDataModule(str(root), download=False).setup()
    with pytest.raises(DataFileError, match="nowhere"):
        IdxDataModule(str(tmp_path / "nowhere"), download=False).setup()


def test_corrupt_idx_files_name_the_path(tmp_path):
    root = fake_mnist(tmp_path / "c", compress=False)
    bad = root / "train-images-idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte: IDX shape"):
        IdxDataModule(str(root), download=False).setup()
    bad.write_bytes(b"garbage!")
    with pytest.raises(DataFileError, match="not an IDX file"):
        read_idx(bad)
    gz = tmp_path / "x.gz"
    gz.write_bytes(b"not gzip")
    with pytest.raises(DataFileError, match="x.gz: cannot read"):
        read_idx(gz)


def test_cifar_batches(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        obj = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
               b"labels": list(rng.integers(0, 10, 4))}
        (d / name).write_bytes(pickle.dumps(obj))
    x, y = read_cifar_batch(d / "test_batch")
    assert x.shape == (4, 3, 32, 32) and y.shape == (4,)
    dm = Cifar10DataModule(str(tmp_path), download=False, val_fraction=0.1)
    dm.setup()
    assert (len(dm.split("train")), len(dm.split("val")), len(dm.split("test"))) == (18, 2, 4)
    xb, _ = next(iter(dm.train_dataloader()))
    assert xb.shape[1:] == (3, 32, 32)
    (d / "data_batch_3").write_bytes(b"\x80\x04junk")
    with pytest.raises(DataFileError, match="data_batch_3: not a CIFAR-10 python batch"):
        Cifar10DataModule(str(tmp_path), download=False).setup()
    (d / "data_batch_3").unlink()
    with pytest.raises(DataFileError, match="data_batch_3 not found; expected files: data_batch_1"):
        Cifar10DataModule(str(tmp_path), download=False).setup()


def test_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction must be in"):
        DigitsDataModule(val_fraction=1.5)
    with pytest.raises(ValueError, match="unknown; known datasets: digits"):
        build_datamodule("imagenet")


def test_missing_idx_files_are_downloaded_and_failures_leave_a_clear_error(tmp_path, monkeypatch):
    import agn.data.files as files

    src = fake_mnist(tmp_path / "src")
    fetched = []

    def fake_fetch(url):
        fetched.append(url)
        return (src / url.rsplit("/", 1)[1]).read_bytes()

    monkeypatch.setattr(files, "_fetch", fake_fetch)
    dm = IdxDataModule(str(tmp_path / "dst"), dataset="mnist")
    dm.prepare_data()
    assert fetched == [files.IDX_MIRRORS["mnist"] + f"{n}.gz" for n in files.IDX_FILES]
    dm.setup()
    assert len(dm.split("test")) == 20

    def offline(url):
        raise OSError("network unreachable")

    monkeypatch.setattr(files, "_fetch", offline)
    dm = IdxDataModule(str(tmp_path / "offline"), dataset="fashion-mnist")
    dm.prepare_data()  # logs a warning, writes nothing
    assert not (tmp_path / "offline").exists() or not any((tmp_path / "offline").iterdir())
    with pytest.raises(DataFileError, match="offline: file train-images-idx3-ubyte"):
        dm.setup()


def test_dataset_contents_are_checked_when_loaded(tmp_path):
    """Wrong image sizes and out-of-range labels are refused at setup, before any training,
    naming the directory, the split and the bad value."""
    rng = np.random.default_rng(0)
    big = fake_mnist(tmp_path / "big", compress=False)
    write_idx(big / "t10k-images-idx3-ubyte", rng.integers(0, 256, (20, 32, 32), dtype=np.uint8),
              False)
    with pytest.raises(DataFileError, match=r"big \(mnist\): test split: images of shape "
                                            r"\(1, 32, 32\), expected \(1, 28, 28\)"):
        IdxDataModule(str(big), download=False).setup()
    labels = fake_mnist(tmp_path / "labels", compress=False)
    y = rng.integers(0, 10, 60, dtype=np.uint8)
    y[17] = 10
    write_idx(labels / "train-labels-idx1-ubyte", y, False)
    with pytest.raises(DataFileError, match=r"train split: label 10 of sample 17 is outside 0..9"):
        IdxDataModule(str(labels), download=False).setup()


class _Arrays(DigitsDataModule):
    """Digits with the training images replaced, to feed the checks arbitrary contents."""

    def __init__(self, x, **kwargs):
        super().__init__(**kwargs)
        self.x = x

    def load(self):
        _, ytr, xte, yte = super().load()
        return self.x, ytr[:len(self.x)], xte, yte


def test_nan_pixels_and_out_of_range_values_are_refused_at_setup():
    x = np.zeros((30, 1, 8, 8), np.float32)
    x[4, 0, 2, 2] = np.nan
    with pytest.raises(DataFileError, match=r"_Arrays: train split: image 4 has NaN"):
        _Arrays(x).setup()
    with pytest.raises(DataFileError, match=r"pixel values in \[16, 16\], expected \[0, 1\]"):
        _Arrays(np.full((30, 1, 8, 8), 16.0, np.float32)).setup()
    with pytest.raises(DataFileError, match=r"images of dtype uint8, expected floats"):
        _Arrays(np.zeros((30, 1, 8, 8), np.uint8)).setup()
    _Arrays(np.full((30, 1, 8, 8), 0.5, np.float32)).setup()  # good contents pass
