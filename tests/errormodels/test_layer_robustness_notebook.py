"""Execute notebooks/layer_robustness.py (jupytext percent) on a small synthetic run directory."""
import json
from pathlib import Path

import jupytext
import numpy as np
from nbclient import NotebookClient

import hwlib
from errormodels import (
    ErrorCatalog,
    OperandStats,
    ValidationRow,
    median_abs_error,
    predict,
    save_stats,
    write_validation,
)

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "layer_robustness.py"
SPECS = ["marlin:0", "marlin:15", "marlin:127", "marlin:255"]


def _run_dir(path: Path) -> list[ValidationRow]:
    rng = np.random.default_rng(0)
    stats, sig, rows = [], [], []
    for i, fan in enumerate((9, 36, 100)):
        fields = rng.integers(0, rng.integers(30, 256, size=(12, 1)), size=(12, fan))
        w = rng.integers(-80, 81, size=(5, fan))
        st = OperandStats.from_operands(f"layer{i}", w, fields, multiplications=fan * 40,
                                        out_std=float(200 * (i + 1)), out_mean=0.0, seed=0)
        stats.append(st)
        sig.append({"name": st.name, "sigma": 0.05 * (i + 1)})
    pred = predict(stats, ErrorCatalog.build(SPECS))
    for i, st in enumerate(stats):       # "measured": fixed fields, weights drawn (Monte Carlo)
        fields = np.stack([np.repeat(np.arange(256), h) for h in st.field_hists])
        for j, spec in enumerate(SPECS[1:], 1):
            m = hwlib.get(spec)
            w = rng.choice(np.arange(-128, 128), p=st.weight_pmf(), size=(2000, st.fan_in))
            x = fields[rng.integers(0, len(fields), size=2000)]
            e = (m(x, w) - x * w).sum(axis=1)
            rows.append(ValidationRow("synthetic", st.name, spec, "fixed_field",
                                      float(pred.std[i, j]), float(e.std()),
                                      float(pred.mean[i, j]), float(e.mean())))
    save_stats(path / "operand_stats.npz", stats)
    (path / "sigmas.json").write_text(json.dumps({"layers": sig}))
    write_validation(path / "errormodel_validation.csv", rows)
    return rows


def test_notebook_runs_and_writes_figures(tmp_path, monkeypatch):
    rows = _run_dir(tmp_path)
    monkeypatch.setenv("AGN_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("AGN_CATALOG", ",".join(SPECS))
    monkeypatch.setenv("MPLBACKEND", "agg")
    nb = jupytext.read(NOTEBOOK)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    for name in ("sigma.png", "tolerance.png", "predicted_vs_measured.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 1000
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.get("outputs", []))
    assert "3 layers, 4 multipliers" in text
    assert f"fixed_field: median |pred/meas - 1| = {median_abs_error(rows) * 100:.1f} %" in text
