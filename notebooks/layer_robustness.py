# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Layer robustness
#
# For one run directory: the learned noise level sigma of every approximable layer, its
# tolerance `|sigma_l| * std(y_l)` against the predicted output error std of every multiplier of
# a catalog (with the multiplier the *cheapest within tolerance* rule picks), and, when
# `bench/errormodel_validation.py` has measured the real errors with the bit-exact engine,
# predicted against measured error.
#
# Inputs: `RUN_DIR/sigmas.json`, `RUN_DIR/operand_stats.npz` and, optionally,
# `RUN_DIR/errormodel_validation.csv`. Set `AGN_RUN_DIR` / `AGN_CATALOG` / `AGN_METHOD` or edit
# the next cell. Figures are also written to `RUN_DIR/figures/`.

# %% tags=["parameters"]
import os

RUN_DIR = os.environ.get("AGN_RUN_DIR", "runs/lenet5")
CATALOG = os.environ.get("AGN_CATALOG", "marlin:*")
METHOD = os.environ.get("AGN_METHOD", "channel")

# %%
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from errormodels import (
    VALIDATION_FILE,
    ErrorCatalog,
    load_stats,
    match,
    median_abs_error,
    pair_with_stats,
    predict,
    read_sigmas,
    read_validation,
)
from hwlib.fileio import atomic_path

run = Path(RUN_DIR)
sigmas = read_sigmas(run)
stats = [st for _, st in pair_with_stats(sigmas, load_stats(run))]
catalog = ErrorCatalog.build(CATALOG)
pred = predict(stats, catalog, METHOD)
assignment = match(sigmas, stats, catalog, "cheapest", "std", METHOD, prediction=pred)
names = [s.name for s in sigmas]
print(f"{len(names)} layers, {len(catalog)} multipliers ({CATALOG}), formula {METHOD}; "
      f"cheapest-within-tolerance energy {assignment.energy:.4f} ({assignment.power_source})")


def save(fig, name):
    """Write a figure atomically into RUN_DIR/figures."""
    with atomic_path(run / "figures" / name) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight")


# %% [markdown]
# ## Learned sigma per layer

# %%
fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(names)), 3))
ax.bar(range(len(names)), [abs(s.sigma) for s in sigmas], color="tab:blue")
ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
ax.set_ylabel("|sigma_l| (relative to std of y_l)")
ax.set_title("learned noise level per layer")
save(fig, "sigma.png")
plt.show()

# %% [markdown]
# ## Tolerance against every multiplier's predicted error
# One panel per layer: predicted output error std of each multiplier against its relative power;
# the dashed line is the tolerance, the red dot the cheapest multiplier within it.

# %%
cols = min(4, len(names))
rows = -(-len(names) // cols)
fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
for i, (ax, layer) in enumerate(zip(axes.flat, assignment.layers)):
    ok = pred.feasible[i] & (pred.std[i] > 0)
    ax.scatter(catalog.relative_power[ok], pred.std[i, ok], s=6, c="0.4")
    ax.axhline(layer.tolerance, ls="--", c="tab:green", lw=1)
    if layer.predicted_std > 0:
        ax.scatter([layer.relative_power], [layer.predicted_std], c="tab:red", s=25, zorder=3)
    ax.set_yscale("log")
    ax.set_title(f"{layer.name}: {layer.multiplier}", fontsize=8)
    ax.set_xlabel("relative power", fontsize=7)
    ax.set_ylabel("predicted std", fontsize=7)
for ax in list(axes.flat)[len(names):]:
    ax.axis("off")
fig.tight_layout()
save(fig, "tolerance.png")
plt.show()

# %% [markdown]
# ## Predicted against measured output error

# %%
vfile = run / VALIDATION_FILE
if vfile.exists():
    vrows = [r for r in read_validation(vfile) if r.measured_std > 0]
    methods = sorted({r.method for r in vrows})
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for m in methods:
        sel = [r for r in vrows if r.method == m]
        ax.scatter([r.measured_std for r in sel], [r.predicted_std for r in sel], s=8,
                   label=f"{m}: median |pred/meas - 1| = {median_abs_error(sel) * 100:.1f} %")
        print(f"{m}: median |pred/meas - 1| = {median_abs_error(sel) * 100:.1f} % over "
              f"{len(sel)} (layer, multiplier) pairs")
    lo = min(r.measured_std for r in vrows)
    hi = max(r.measured_std for r in vrows)
    x = np.array([lo, hi])
    ax.plot(x, x, "k-", lw=1)
    ax.fill_between(x, 0.9 * x, 1.1 * x, color="0.85", label="+-10 %")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured std")
    ax.set_ylabel("predicted std")
    ax.legend(fontsize=7)
    save(fig, "predicted_vs_measured.png")
    plt.show()
else:
    print(f"no {vfile}: run bench/errormodel_validation.py to measure the real errors")
