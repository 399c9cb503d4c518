"""Library calls leave process-wide state as they found it: matplotlib backend, umask, logger
levels, warning filters, global random generators, torch's thread count."""
import logging
import os
import random
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from agn.data import DigitsDataModule
from agn.layers import Mode, approx_layers, approximate_, calibrate, fold_bn, set_mode
from agn.models import build_model
from agn.training import StageConfig, TrainConfig, finetune
from hwlib.fileio import atomic_write_json

PLOTS = """
import sys
from pathlib import Path
import matplotlib
matplotlib.use("svg")
import hwlib
from agn.cli.multipliers import plot
from agn.pipeline.report import plot_sigmas
from errormodels import LayerSigma
out = sys.argv[1]
specs = ("exact", "marlin:7", "marlin:255")
plot([(hwlib.get(s), {"mred": float(i)}) for i, s in enumerate(specs)], out + "/m.png", "mred")
plot_sigmas(Path(out + "/s.png"), [LayerSigma("a", 0.1), LayerSigma("b", 0.2)])
print(matplotlib.get_backend())
"""


def test_plots_keep_the_matplotlib_backend(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("MPLBACKEND", None)
    out = subprocess.run([sys.executable, "-c", PLOTS, str(tmp_path)], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    assert out == ["svg"]  # not switched to Agg
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o077])
def test_atomic_writes_follow_the_umask_without_changing_it(tmp_path, mask):
    old = os.umask(mask)
    try:
        p = atomic_write_json(tmp_path / f"{mask:o}.json", [1])
        assert os.umask(mask) == mask  # unchanged by the write
    finally:
        os.umask(old)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask
    assert [f.name for f in tmp_path.iterdir()] == [p.name]


def test_importing_fileio_does_not_touch_the_umask():
    code = ("import os; os.umask(0o037); import hwlib.fileio; "
            "print(oct(os.umask(0o037)))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "0o37"


def _rng_states():
    return (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())


def _same_rng(a, b) -> bool:
    return torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def _tensors(model):
    return {k: v.clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}


def test_finetune_restores_process_state_and_trains_identically():
    cfg = TrainConfig(model="lenet5", data="digits", data_args={"batch_size": 64}, seed=3,
                      progress_bar=False, threads=1, retrain=StageConfig(epochs=1, lr=0.01))
    dm = DigitsDataModule(batch_size=64)
    dm.setup()

    def candidate():
        torch.manual_seed(0)
        model = build_model("lenet5", dm.in_channels, dm.input_size, dm.num_classes)
        fold_bn(model)
        calibrate(model, (x for x, _ in dm.train_dataloader()), 2)
        set_mode(model, Mode.QUANT)
        approximate_(model, {n: "marlin:7" for n, _ in approx_layers(model)})
        return model

    old_threads, old_level = torch.get_num_threads(), logging.getLogger("pytorch_lightning").level
    torch.set_num_threads(2)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    warnings.simplefilter("default")
    filters = list(warnings.filters)
    levels = {n: logging.getLogger(n).level
              for n in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric")}
    torch.manual_seed(11)
    np.random.seed(12)
    random.seed(13)
    try:
        weights = []
        for _ in range(2):
            model = candidate()
            states = _rng_states()
            finetune(model, dm, cfg, epochs=1, batches=3)
            assert _same_rng(states, _rng_states())  # the global generators were restored
            weights.append(_tensors(model))
        assert torch.get_num_threads() == 2
        assert list(warnings.filters) == filters
        assert {n: logging.getLogger(n).level for n in levels} == levels
        # bit-identical candidates whatever the global generators held before
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
        torch.manual_seed(99)
        model = candidate()
        torch.manual_seed(12345)
        np.random.seed(1)
        finetune(model, dm, cfg, epochs=1, batches=3)
        assert all(torch.equal(weights[0][k], v) for k, v in _tensors(model).items())
    finally:
        torch.set_num_threads(old_threads)
        logging.getLogger("pytorch_lightning").setLevel(old_level)

