"""``agn match`` takes the run's catalog by default and refuses to overwrite the run's
assignment with one over another catalog, which 'agn search' could not use (issue 16 item 16)."""
import json

from agn.cli import main


def test_match_refuses_another_catalog_for_the_run_s_assignment(run_copy, tmp_path, capsys):
    own = run_copy / "assignment.json"
    before = own.read_bytes()
    assert main(["match", "--run-dir", str(run_copy), "--catalog", "exact,bam:v5h2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"agn match: error: {run_copy} was made for catalog 'marlin:*', not 'exact,bam:v5h2'")
    assert own.read_bytes() == before
    other = tmp_path / "evo.json"
    assert main(["match", "--run-dir", str(run_copy), "--catalog", "exact,bam:v5h2",
                 "--output", str(other)]) == 0
    assert json.loads(other.read_text())["catalog"] == "exact,bam:v5h2"
    assert own.read_bytes() == before


def test_match_defaults_to_the_run_s_catalog_and_search_still_runs(run_copy, capsys):
    assert main(["match", "--run-dir", str(run_copy)]) == 0
    assert "'marlin:*'" in capsys.readouterr().out
    assert json.loads((run_copy / "assignment.json").read_text())["catalog"] == "marlin:*"
    assert main(["search", "--run-dir", str(run_copy)]) == 0
