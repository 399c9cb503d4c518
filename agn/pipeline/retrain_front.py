"""Retrain where retraining pays: several front points and the error-model assignment, each
retrained briefly, so the aggressive assignments retraining would rescue can be the deployed
one (``search.retrain_points``)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from agn.pipeline.holdout import Heldout, choose_point
from agn.search import SearchSpace
from agn.search.retraining import RetrainingScorer

#: ``retrained_front.json``: the briefly retrained points (empty when the option is off).
RETRAINED_FILE = "retrained_front.json"


def spread(records: Sequence[dict], count: int) -> list[dict]:
    """Up to ``count`` front records spread evenly over the front (by position, cheapest and
    dearest included), each once."""
    if count <= 0 or not records:
        return []
    idx = sorted({int(round(v)) for v in np.linspace(0, len(records) - 1,
                                                     min(count, len(records)))})
    return [records[i] for i in idx]


def retrain_points(scorer: RetrainingScorer, space: SearchSpace, held: Heldout,
                   points: Sequence[tuple[str, Sequence[int], Mapping[str, float]]]
                   ) -> list[dict]:
    """Each (label, genome, accuracy before by split) retrained with ``scorer``: records with
    label, genome, energy, ``before`` and ``after`` {split: accuracy} over ``val`` and the
    held-out splits."""
    splits = ("val", *held.splits)
    out = []
    for label, genome, before in points:
        errors = scorer.errors(space.decode(genome), splits)
        out.append({"label": label, "genome": [int(g) for g in genome],
                    "energy": space.energy(genome), "before": dict(before),
                    "after": {s: 1.0 - errors[s] for s in splits}})
    return out


def choose_retrained(retrained: Sequence[dict], chosen: dict, exact_error: float,
                     max_loss: float, split: str) -> dict:
    """The lowest-energy point among ``chosen`` (the front's choice, its accuracy before
    retraining) and the retrained points (after), within ``max_loss`` of ``exact_error`` on
    ``split``; the winner's record carries ``retrained`` True when it is a retrained point."""
    key = "error" if split == "val" else f"{split}_error"
    pool = [{**chosen, "retrained": False}]
    pool += [{"genome": r["genome"], "energy": r["energy"], key: 1.0 - r["after"][split],
              "retrained": True, "label": r["label"]} for r in retrained]
    return choose_point(pool, exact_error, max_loss, key)
