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
# # Quickstart: the pipeline from Python, stage by stage
#
# The same stages `agn pipeline` runs, one cell each, in one run directory: train a LeNet-5 on
# the bundled 8x8 digits, learn each layer's noise tolerance, collect operand statistics, match
# each layer to a MARLIN level with the error model, search the energy/accuracy front with
# NSGA-II, retrain the chosen point, export the integer network, validate its firmware bit for
# bit and write the report. Every stage skips itself when its outputs exist, so re-running a cell
# (or the notebook) resumes instead of recomputing.
#
# Set `AGN_RUN_DIR` to choose the run directory and `AGN_QUICK=0` for the full budget.

# %% tags=["parameters"]
import os
from pathlib import Path

RUN_DIR = Path(os.environ.get("AGN_RUN_DIR", "runs/quickstart"))
QUICK = os.environ.get("AGN_QUICK", "1") == "1"

# %%
from agn.pipeline import PipelineConfig, run_stages
from agn.pipeline.context import Context
from agn.pipeline.stages import STAGES

cfg = PipelineConfig.quick() if QUICK else PipelineConfig()
ctx = Context(RUN_DIR, cfg, progress=False)
stage = {s.name: s for s in STAGES}
done = []


def run(*names):
    """Run the named stages (after everything already run), skipping finished ones."""
    done.extend(stage[n] for n in names)
    return run_stages(done, RUN_DIR, cfg.to_dict(), ctx).finished


# %% [markdown]
# ## 1. Float baseline, 8-bit QAT, noise training

# %%
status = run("float", "qat", "noise")
for name in ("float", "qat", "noise"):
    print(f"{name:6s} test accuracy {status[name]['test_acc']:.3f}")

# %%
import errormodels as em

sigmas = em.read_sigmas(RUN_DIR / "sigmas.json")
for s in sigmas:
    print(f"{s.name:16s} sigma={s.sigma:.3f}  multiplications={s.multiplications}")

# %% [markdown]
# ## 2. Operand statistics and error-model matching

# %%
status = run("stats", "match")
assignment = em.read_assignment(RUN_DIR / "assignment.json")
print(f"matched assignment, relative energy {assignment.energy:.4f} ({assignment.power_source})")
for layer in assignment.layers:
    print(f"  {layer.name:16s} {layer.multiplier:12s} predicted std {layer.predicted_std:8.2f} "
          f"<= tolerance {layer.tolerance:8.2f}")

# %% [markdown]
# ## 3. NSGA-II, scored by bit-exact simulation of the integer network

# %%
status = run("export_search", "search")
print({k: status["search"][k] for k in ("evaluations", "chosen_energy", "chosen_accuracy")})

# %%
from IPython.display import Image, display

display(Image(filename=str(RUN_DIR / "pareto.png")))

# %% [markdown]
# ## 4. Retrain the chosen point, export, validate the firmware, report

# %%
status = run("retrain", "export", "deploy", "report")
print(f"integer test accuracy {status['export']['integer_acc']:.3f}, firmware mismatches "
      f"{status['deploy']['mismatches']}")
print((RUN_DIR / "report.md").read_text()[:600])
