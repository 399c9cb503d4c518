"""One quick pipeline run, made by executing notebooks/quickstart.py, shared by the tests here."""
import os
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
