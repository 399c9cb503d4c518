"""A configuration agn pipeline cannot run is refused in seconds, before any training, with one
line and exit status 2, and leaves the run directory untouched; the corrected command runs."""
import json
import time

import pytest

from agn.cli import main

TINY = ["--quick", "--epochs", "2", "1", "1", "1", "--pop", "4", "--gen", "1"]


@pytest.mark.parametrize("bad, message", [
    (["--catalog", "marlin:300"], "train.catalog: multiplier spec 'marlin:300'"),
    (["--pop", "-5"], "search.pop_size: expected a population >= 2, got -5"),
    (["--config", "YAML"], "match.n_fields: expected an integer, got 'ten'"),
    (["--dataset", "mnist", "--data-dir", "MISSING"], "train.data_args.root: data directory"),
])
def test_refused_before_any_training_and_the_corrected_command_runs(bad, message, tmp_path,
                                                                    capsys):
    yaml_file = tmp_path / "bad.yaml"
    yaml_file.write_text("match:\n  n_fields: ten\n")
    bad = [str(yaml_file) if a == "YAML" else str(tmp_path / "nodata") if a == "MISSING" else a
           for a in bad]
    run = tmp_path / "R"
    t0 = time.time()
    assert main(["pipeline", "--run-dir", str(run), *TINY, *bad]) == 2
    assert time.time() - t0 < 10
    err = capsys.readouterr().err.strip()
    assert err.startswith("agn pipeline: error: ") and "\n" not in err and message in err
    assert not run.exists()  # nothing written: no pipeline.json, no config.yaml, no directory
    run.mkdir()
    assert main(["pipeline", "--run-dir", str(run), *TINY, *bad]) == 2
    assert list(run.iterdir()) == []
    if bad[0] == "--catalog":  # one corrected run is enough for the suite's time budget
        assert main(["pipeline", "--run-dir", str(run), *TINY, "--catalog", "marlin:*"]) == 0
        finished = json.loads((run / "pipeline.json").read_text())["finished"]
        assert "report" in finished and (run / "network.json").exists()
