"""The issue-17 benches' helpers: a pipeline run's network measured by bench/recovery.py, the
uniform-dominance summary and the recorded command line."""
import argparse
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[3] / "bench"


@pytest.fixture(scope="module")
def bench_modules():
    sys.path.insert(0, str(BENCH))
    try:
        import benchdata
        import recovery
        import search_marlin_mnist
        yield benchdata, recovery, search_marlin_mnist
    finally:
        sys.path.remove(str(BENCH))


def test_recovery_measures_a_pipeline_run_like_the_pipeline(quick_run, bench_modules):
    _, recovery, _ = bench_modules
    run_dir = quick_run[0]
    cfg, base, dm = recovery.from_run(run_dir, 1)
    assert not cfg.compensate and not cfg.round_operands  # features applied by the bench only
    exact = recovery.prepared(base, cfg.catalog, recovery.exact_spec(cfg.catalog), False, None)
    status = json.loads((run_dir / "pipeline.json").read_text())["finished"]["search"]
    assert recovery.test_accuracy(exact, dm) == pytest.approx(status["exact_test_accuracy"],
                                                              abs=1e-12)


def test_uniform_dominance_names_the_levels_the_front_misses(bench_modules):
    _, _, bench = bench_modules
    front = [{"energy": 0.5, "test_accuracy": 0.90}, {"energy": 0.8, "test_accuracy": 0.97}]
    uniform = [{"level": 255, "energy": 0.4, "test_accuracy": 0.5},
               {"level": 200, "energy": 0.6, "test_accuracy": 0.89},
               {"level": 127, "energy": 0.8, "test_accuracy": 0.98}]
    out = bench.uniform_dominance(front, uniform, "test")
    assert out["levels"] == [200]
    assert out["share"] == pytest.approx(1 / 3)
    assert out["not_dominated_accuracy_short"][255] is None  # nothing at or below its energy
    assert out["not_dominated_accuracy_short"][127] == pytest.approx(0.01)


def test_command_line_lists_every_option_but_the_directories(bench_modules):
    benchdata, _, _ = bench_modules
    args = argparse.Namespace(data_dir="/d", run_dir="/r", epochs=(6, 1, 1), compensate=True,
                              seed_uniform=False, pop=24, catalog="evo:mul8s_*")
    assert (benchdata.command_line("x.py", args)
            == "python bench/x.py --epochs 6 1 1 --compensate --pop 24 --catalog evo:mul8s_*")
