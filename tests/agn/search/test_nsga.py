import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from agn.search import EvaluationStore, SearchConfig, initial_population, pareto_indices, run_search

sys.path.insert(0, os.path.dirname(__file__))
from conftest import LoggingScore, synthetic_error  # noqa: E402


def test_same_seed_same_front_and_no_repeated_scoring(space, tmp_path):
    cfg = SearchConfig(pop_size=16, n_gen=6, seed=3)
    log1, log2 = tmp_path / "a.log", tmp_path / "b.log"
    r1 = run_search(space, LoggingScore(log1), cfg, progress=False)
    r2 = run_search(space, LoggingScore(log2), cfg, progress=False)
    assert r1.front() == r2.front()
    assert r1.hypervolume == r2.hypervolume
    calls = log1.read_text().splitlines()
    assert len(calls) == len(set(calls)) == len(r1.store)
    assert all(b >= a for a, b in zip(r1.hypervolume, r1.hypervolume[1:]))


def test_front_is_non_dominated_and_scores_match(space):
    r = run_search(space, synthetic_error, SearchConfig(pop_size=12, n_gen=4, seed=0),
                   progress=False)
    front = r.front()
    F = np.array([[e, err] for _, e, err in front])
    for g, e, err in front:
        asg = space.decode(g)
        assert err == synthetic_error(asg) and e == space.energy(g)
    for i in range(len(F)):
        assert not np.any(np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1))
    assert len(pareto_indices(F)) == len(F)


def test_seeded_population_starts_with_the_seeds(space):
    seeds = [np.array([0, 5, 9, 1]), np.array([3, 3, 3, 3])]
    X = initial_population(space, seeds, 10, np.random.default_rng(0))
    assert X.shape == (10, 4) and len({tuple(r) for r in X}) == 10
    np.testing.assert_array_equal(X[:2], np.stack(seeds))


def test_seeded_search_evaluates_the_seed(space, tmp_path):
    seed = np.array([7, 7, 7, 7])
    r = run_search(space, synthetic_error, SearchConfig(pop_size=8, n_gen=1, seed=0),
                   seeds=[seed], progress=False)
    assert tuple(seed) in r.store


def test_resume_of_a_finished_search_scores_nothing(space, tmp_path):
    cfg = SearchConfig(pop_size=10, n_gen=3, seed=2)
    first = run_search(space, synthetic_error, cfg, run_dir=tmp_path, progress=False)
    log = tmp_path / "again.log"
    again = run_search(space, LoggingScore(log), cfg, run_dir=tmp_path, progress=False)
    assert not log.exists()
    assert again.front() == first.front()


def test_checkpoint_written_before_a_setting_existed_resumes_with_its_default(space, tmp_path):
    cfg = SearchConfig(pop_size=10, n_gen=2, seed=2)
    run_search(space, synthetic_error, cfg, run_dir=tmp_path, progress=False)
    state_file = tmp_path / "search_state.json"
    state = json.loads(state_file.read_text())
    del state["config"]["scoring"]  # as written before SearchConfig.scoring existed
    state_file.write_text(json.dumps(state))
    log = tmp_path / "again.log"
    run_search(space, LoggingScore(log), cfg, run_dir=tmp_path, progress=False)
    assert not log.exists()
    with pytest.raises(ValueError, match=r"'scoring': \('bit-exact', 'retrained'\)"):
        run_search(space, synthetic_error, dataclasses.replace(cfg, scoring="retrained"),
                   run_dir=tmp_path, progress=False)


def test_checkpoint_of_another_search_is_refused(space, tmp_path):
    run_search(space, synthetic_error, SearchConfig(pop_size=8, n_gen=1, seed=0),
               run_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="different search"):
        run_search(space, synthetic_error, SearchConfig(pop_size=8, n_gen=2, seed=1),
                   run_dir=tmp_path, progress=False)


def test_truncated_last_store_line_is_dropped(tmp_path):
    p = tmp_path / "evaluations.jsonl"
    p.write_text('{"genome": [1, 2], "energy": 0.9, "error": 0.1, "generation": 1}\n'
                 '{"genome": [3, 4], "ener')
    store = EvaluationStore(p)
    assert len(store) == 1 and (1, 2) in store
    assert p.read_text().count("\n") == 1



def test_cut_store_line_of_a_finished_search_is_scored_again(space, tmp_path):
    cfg = SearchConfig(pop_size=10, n_gen=3, seed=2)
    first = run_search(space, synthetic_error, cfg, run_dir=tmp_path, progress=False)
    store_file = tmp_path / "evaluations.jsonl"
    lines = store_file.read_text().splitlines()
    last = json.loads(lines[-1])
    store_file.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])  # cut the last line
    log = tmp_path / "again.log"
    again = run_search(space, LoggingScore(log), cfg, run_dir=tmp_path, progress=False)
    rescored = log.read_text().splitlines()
    assert len(rescored) == 1  # exactly the lost candidate, nothing else
    assert again.front() == first.front()
    assert tuple(last["genome"]) in again.store
    assert again.store[tuple(last["genome"])].generation == last["generation"]
    assert len(EvaluationStore(store_file)) == len(first.store)


def test_a_finished_search_extends_to_more_generations_as_an_uninterrupted_one(space, tmp_path):
    short, long_ = SearchConfig(pop_size=10, n_gen=2, seed=5), SearchConfig(pop_size=10, n_gen=4,
                                                                             seed=5)
    run_search(space, synthetic_error, short, run_dir=tmp_path / "a", progress=False)
    extended = run_search(space, synthetic_error, long_, run_dir=tmp_path / "a", progress=False)
    whole = run_search(space, synthetic_error, long_, run_dir=tmp_path / "b", progress=False)
    assert extended.front() == whole.front() and extended.hypervolume == whole.hypervolume
    assert len(extended.hypervolume) == 4
    with pytest.raises(ValueError, match=r"already ran 4 generations; ask for n_gen >= 4"):
        run_search(space, synthetic_error, short, run_dir=tmp_path / "a", progress=False)


@pytest.mark.parametrize("text", ["", "{}", '{"config": {}', "[1, 2]"])
def test_a_corrupt_search_checkpoint_names_the_file_and_what_to_do(space, tmp_path, text):
    cfg = SearchConfig(pop_size=8, n_gen=1, seed=0)
    run_search(space, synthetic_error, cfg, run_dir=tmp_path, progress=False)
    (tmp_path / "search_state.json").write_text(text)
    with pytest.raises(ValueError, match=r"search_state.json: not a (readable|complete) search "
                                         r"checkpoint.*delete .* to restart the search"):
        run_search(space, synthetic_error, cfg, run_dir=tmp_path, progress=False)

KILLABLE = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from agn.search import SearchConfig, SearchSpace, run_search
    from conftest import LoggingScore
    space = SearchSpace.build(["conv1", "conv2", "conv3", "fc"], [4000, 8000, 2000, 500],
                              "marlin:*")
    run_search(space, LoggingScore({log!r}, delay={delay}), SearchConfig(pop_size=12, n_gen=5,
               seed=4), run_dir={run!r}, progress=False)
""")


def test_kill_during_a_generation_then_resume_loses_nothing(space, tmp_path):
    run, log = tmp_path / "run", tmp_path / "killed.log"
    script = KILLABLE.format(tests=os.path.dirname(__file__), log=str(log), delay=0.05,
                             run=str(run))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.time() + 120
    # wait until the second generation is half scored (12 initial + 6 offspring)
    while time.time() < deadline and (not log.exists() or
                                      len(log.read_text().splitlines()) < 18):
        time.sleep(0.02)
        assert proc.poll() is None, "search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = EvaluationStore(run / "evaluations.jsonl")
    assert len(stored) >= 12
    before = {g: (stored[g].energy, stored[g].error) for g in [s.genome for s in stored.items()]}

    resumed_log = tmp_path / "resumed.log"
    cfg = SearchConfig(pop_size=12, n_gen=5, seed=4)
    resumed = run_search(space, LoggingScore(resumed_log), cfg, run_dir=run, progress=False)
    rescored = {tuple(space.encode(dict(json.loads(line))))
                for line in resumed_log.read_text().splitlines()}
    assert not rescored & set(before), "a candidate scored before the kill was scored again"
    for g, val in before.items():
        assert (resumed.store[g].energy, resumed.store[g].error) == val

    fresh = run_search(space, synthetic_error, cfg, progress=False)
    assert resumed.front() == fresh.front()
    assert resumed.hypervolume == fresh.hypervolume


def test_dask_local_cluster_gives_the_serial_result(space):
    from agn.search import dask_runner

    cfg = SearchConfig(pop_size=8, n_gen=2, seed=5)
    serial = run_search(space, synthetic_error, cfg, progress=False)
    with dask_runner(workers=2) as runner:
        parallel = run_search(space, synthetic_error, cfg, runner=runner, progress=False)
    assert parallel.front() == serial.front()
    assert {s.genome for s in parallel.store.items()} == {s.genome for s in serial.store.items()}


def test_outputs_written_and_consistent(space, tmp_path):
    import csv as _csv

    from agn.search import Point, plot_front, uniform_genes, write_front

    r = run_search(space, synthetic_error, SearchConfig(pop_size=10, n_gen=3, seed=0),
                   progress=False)
    recs = write_front(r, tmp_path)
    rows = list(_csv.DictReader((tmp_path / "pareto.csv").open()))
    assert len(rows) == len(recs) == len(r.front())
    for row, (g, e, _err) in zip(rows, r.front()):
        assert tuple(int(v) for v in row["genome"].split()) == g
        assert float(row["energy"]) == pytest.approx(e, abs=1e-6)
        assert row["conv1"] == space.decode(g)["conv1"]
    data = json.loads((tmp_path / "pareto.json").read_text())
    assert data["hypervolume"] == r.hypervolume and data["evaluations"] == len(r.store)
    assert (tmp_path / "hypervolume.csv").read_text().count("\n") == 4
    genes = uniform_genes(space, 5)
    assert genes == [0, 64, 128, 191, 255]
    pts = [Point(f"uniform {g}", tuple(space.uniform(g)), space.energy(space.uniform(g)),
                 synthetic_error(space.decode(space.uniform(g)))) for g in genes]
    png = plot_front(tmp_path / "pareto.png", r, pts, baseline=r)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
