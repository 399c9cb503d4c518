"""Execute notebooks/your_own_model.py (jupytext percent): a plain model to validated firmware."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "your_own_model.py"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs the host gcc")
def test_own_model_notebook_reaches_bit_exact_firmware(tmp_path, monkeypatch):
    run = tmp_path / "run"
    monkeypatch.setenv("AGN_RUN_DIR", str(run))
    monkeypatch.setenv("AGN_QUICK", "1")
    nb = jupytext.read(NOTEBOOK)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for name in ("network.json", "sigmas.json", "operand_stats.npz", "assignment.json",
                 "chosen_assignment.json", "integer_val.npz", "integer_test.npz"):
        assert (run / name).exists(), name
    report = json.loads((run / "validation.json").read_text())
    assert report["ok"] is True and report["mismatches"] == 0
