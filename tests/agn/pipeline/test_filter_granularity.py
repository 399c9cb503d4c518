"""The quick pipeline searched at filter granularity: grouped front, firmware with 0 mismatches."""
import json
import re
import shutil

import numpy as np

import deploy
from agn.config import document, load_pipeline_config
from agn.pipeline import run_pipeline
from agn.pipeline.context import Context
from agn.pipeline.stages import grouped_space
from agn.run import pipeline_config
from hwlib import read_assignment


def test_quick_pipeline_at_filter_granularity_deploys_grouped_layers(run_copy, tmp_path):
    run_dir = run_copy
    cfg = load_pipeline_config([document(pipeline_config(run_dir))], {"search": {
        "granularity": "filter", "group": 2, "pop_size": 6, "n_gen": 2, "uniform_points": 2}})
    status = json.loads((run_dir / "pipeline.json").read_text())
    finished = {k: v for k, v in status["finished"].items()
                if k in ("float", "qat", "noise", "stats", "match", "export_search")}
    (run_dir / "pipeline.json").write_text(json.dumps({"config": document(cfg),
                                                       "finished": finished}))
    for name in ("search_state.json", "evaluations.jsonl"):
        (run_dir / "search" / name).unlink()
    shutil.rmtree(run_dir / "retrain")  # its checkpoint holds the layer-wise choice
    logs: list[str] = []
    run_pipeline(run_dir, cfg, progress=False, log=logs.append)
    assert "[match] already finished, skipped" in logs and "[search] running" in logs
    done = json.loads((run_dir / "pipeline.json").read_text())["finished"]
    assert done["deploy"]["mismatches"] == 0 and done["export"]["assignment_matches_chosen"]
    front = json.loads((run_dir / "pareto.json").read_text())
    n_layers = len(front["layers"])
    assert all(len(p["genome"]) == 3 * n_layers for p in front["front"])
    evaluated = [json.loads(line)["genome"] for line in
                 (run_dir / "search" / "evaluations.jsonl").read_text().splitlines()]
    chosen = read_assignment(run_dir / "chosen_assignment.json")
    assert chosen.details["granularity"] == "filter" and chosen.details["group"] == 2
    assert "filters per multiplier" in (run_dir / "report.md").read_text()
    # a block-wise candidate the search scored, on the deployed network: its firmware switches
    # MARLIN's level inside a layer
    net = deploy.load(run_dir)
    space, seed = grouped_space(Context(run_dir, cfg, False, None, None, 1),
                                front["layers"], front["multiplications"])
    assert seed.grouped and seed.details["granularity"] == "filter"
    mixed = [g for g in evaluated if any(isinstance(s, tuple) for s in space.decode(g).values())]
    assert mixed, "block-wise candidates were scored"
    net = deploy.with_multipliers(net, space.decode(mixed[0]))
    inputs = np.random.default_rng(0).integers(0, 256, (2,) + net.input.shape, dtype=np.uint8)
    report = deploy.validate(net, inputs, tmp_path / "fw")
    assert report.mismatches == 0
    layers = [report.firmware.directory / layer.source for layer in report.firmware.layers[1:]]
    assert any(len(set(re.findall(r"NN_MUL_MARLIN, 0, 0, 0, 0, 0, (0x[0-9a-fA-F]+)u",
                                  p.read_text()))) > 1
               for p in layers)
