"""One quick pipeline run, made by executing notebooks/quickstart.py, shared by the tests here."""
import os
import shutil
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "quickstart.py"


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("quick") / "run"
    env = {"AGN_RUN_DIR": str(run_dir), "AGN_QUICK": "1", "MPLBACKEND": "agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nb = jupytext.read(NOTEBOOK)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(run_dir.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return run_dir, nb


@pytest.fixture
def run_copy(quick_run, tmp_path):
    """A private copy of the quick run's directory."""
    run_dir = tmp_path / "run"
    shutil.copytree(quick_run[0], run_dir)
    return run_dir


@pytest.fixture
def search_copy(run_copy):
    """A copy of the quick run whose search has not run yet (checkpoint and store removed)."""
    for name in ("search_state.json", "evaluations.jsonl"):
        (run_copy / "search" / name).unlink()
    return run_copy
