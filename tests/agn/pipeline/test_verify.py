"""A finished stage's outputs are hashed in pipeline.json; a rerun verifies them and runs again
the first stage whose outputs do not verify, saying why (issue 16 item 7), and unreadable state
names its file (item 8)."""
import json

import pytest

from agn.cli import main
from agn.pipeline.runner import HASHES, RunStatus, Stage, run_stages
from agn.pipeline.stages import STAGES
from agn.run import STATUS_FILE


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def wrong_sha(path):
    doc = json.loads(path.read_text())
    doc["tensors"]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc))


def cut_last_line(path):
    data = path.read_bytes().rstrip(b"\n")
    path.write_bytes(data[: data.rfind(b"\n") + 1] + data[data.rfind(b"\n") + 1:][:10])


CORRUPTIONS = {
    "network.npz": (truncate, "export"),
    "network.json": (wrong_sha, "export"),
    "retrain/last.ckpt": (truncate, "retrain"),
    "search/evaluations.jsonl": (cut_last_line, "search"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_a_corrupt_output_reruns_its_stage_and_gives_the_same_artifacts(quick_run, run_copy,
                                                                        name, capsys):
    corrupt, stage = CORRUPTIONS[name]
    corrupt(run_copy / name)
    assert main(["pipeline", "--run-dir", str(run_copy), "--quick"]) == 0
    out, err = capsys.readouterr()
    why = (f"agn pipeline: {run_copy / name} does not match the SHA-256 recorded when the stage "
           f"finished (truncated or changed since); running stage {stage!r} again")
    assert err.splitlines().count(why) == 1, err
    names = [s.name for s in STAGES]
    ran = [s for s in names if f"[{s}] running" in out]
    assert ran == names[names.index(stage):]
    for artifact in ("network.npz", "network.json", "pareto.csv", "chosen_assignment.json",
                     "search/evaluations.jsonl", "operand_stats.npz"):
        assert (run_copy / artifact).read_bytes() == (quick_run[0] / artifact).read_bytes(), \
            artifact
    assert json.loads((run_copy / "validation.json").read_text())["mismatches"] == 0


def test_every_output_is_hashed_and_an_old_record_without_hashes_is_adopted(run_copy, capsys):
    status = json.loads((run_copy / STATUS_FILE).read_text())
    for s in STAGES:
        assert set(status["finished"][s.name][HASHES]) == set(s.outputs)
    for record in status["finished"].values():
        del record[HASHES]
    (run_copy / STATUS_FILE).write_text(json.dumps(status))
    assert main(["pipeline", "--run-dir", str(run_copy), "--quick"]) == 0
    out = capsys.readouterr().out
    assert all(f"[{s.name}] already finished" in out for s in STAGES)
    again = json.loads((run_copy / STATUS_FILE).read_text())
    assert all(HASHES in again["finished"][s.name] for s in STAGES)


def test_runner_reruns_a_changed_output_and_removes_the_stage_s_invalidated_files(tmp_path,
                                                                                   capsys):
    calls = []

    def make(name):
        def run(ctx):
            calls.append(name)
            (tmp_path / f"{name}.out").write_text(name)
            (tmp_path / f"{name}.aux").write_text(name)
            return {}
        return Stage(name, (f"{name}.out",), run, invalidate=(f"{name}.aux",))

    stages = [make("a"), make("b"), make("c")]
    run_stages(stages, tmp_path, {"k": 1}, None, log=lambda s: None)
    (tmp_path / "b.out").write_text("edited")
    (tmp_path / "b.aux").write_text("stale")
    run_stages(stages, tmp_path, {"k": 1}, None, log=lambda s: None)
    assert calls == ["a", "b", "c", "b", "c"]
    assert "b.out does not match the SHA-256 recorded" in capsys.readouterr().err
    assert (tmp_path / "b.out").read_text() == "b"


@pytest.mark.parametrize("text", ["", '{"config": {"k"', "[1, 2]"])
def test_an_unreadable_pipeline_json_names_the_file(tmp_path, text):
    (tmp_path / STATUS_FILE).write_text(text)
    with pytest.raises(ValueError, match=rf"{tmp_path / STATUS_FILE}: .*delete it"):
        RunStatus.load_or_new(tmp_path, {"k": 1})
