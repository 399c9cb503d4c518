"""Fronts that hold on unseen data: the search's front re-scored on held-out splits (the
``confirm`` split the search never saw, then ``test``), the deployed point chosen on the
confirmation split, and the front points near chance flagged.

The search picks among hundreds of candidates on one validation split, so the accuracies it
records are inflated (the winner's curse); a split it never saw measures them without that bias.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

#: Held-out splits, in the order they are used: choose on the first present, report the last.
HELDOUT = ("confirm", "test")
#: A point whose accuracy is within this many points (fraction) of 1/classes is near chance.
CHANCE_MARGIN = 0.05
#: How the deployed point is chosen (recorded in the run and stated in the report).
METRIC = "top-1 accuracy of the bit-exact integer network"

#: Errors of one assignment on the named splits: ``score(assignment, splits) -> {split: error}``.
SplitScoreFn = Callable[[Mapping[str, str], Sequence[str]], Mapping[str, float]]


@dataclass(frozen=True, kw_only=True)
class Heldout:
    """The held-out score functions of a run and what they are measured on.

    Attributes:
        splits: the held-out splits: ``confirm`` first when the data has a confirmation split,
            ``test`` always.
        score: errors of an assignment on some of ``splits`` (``score(assignment, splits)``).
        sizes: {split: images} of the training split, the search split (``search``, the
            validation images candidates are scored on) and each held-out split.
        classes: number of classes (chance accuracy is 1/classes).
    """

    splits: tuple[str, ...]
    score: SplitScoreFn
    sizes: Mapping[str, int]
    classes: int

    @property
    def choice_split(self) -> str:
        """The split the deployed point is chosen on: ``confirm`` when there is one, else the
        search's own (``val``)."""
        return "confirm" if "confirm" in self.splits else "val"

    @property
    def chance(self) -> float:
        """Chance accuracy, 1/classes."""
        return 1.0 / self.classes

    def near_chance(self, accuracy: float) -> bool:
        """Whether ``accuracy`` lies within :data:`CHANCE_MARGIN` of chance."""
        return accuracy <= self.chance + CHANCE_MARGIN

    def columns(self, assignments: Sequence[Mapping[str, str]]) -> dict[str, list]:
        """{``<split>_error`` and ``<split>_accuracy``: one value per assignment} for every
        held-out split."""
        scores = [self.score(a, self.splits) for a in assignments]
        out: dict[str, list] = {}
        for split in self.splits:
            errors = [float(s[split]) for s in scores]
            out[f"{split}_error"] = errors
            out[f"{split}_accuracy"] = [1.0 - e for e in errors]
        return out

    def rule(self, max_loss: float) -> str:
        """The matching rule in words."""
        where = ("the confirmation split (never seen by the search)"
                 if self.choice_split == "confirm" else "the search's validation split (the data "
                 "has no confirmation split: data_args.confirm_fraction is 0)")
        return (f"lowest-energy front point whose accuracy on {where} is within "
                f"{100 * max_loss:.1f} points of the exact integer network's on the same split")


def choose_point(front: Sequence[dict], exact_error: float, max_loss: float,
                 key: str = "error") -> dict:
    """The lowest-energy front point whose ``key`` error exceeds ``exact_error`` (the exact
    network's on the same split) by at most ``max_loss``."""
    ok = [p for p in front if p[key] <= exact_error + max_loss + 1e-12]
    if not ok:
        raise ValueError(f"no front point within {max_loss} of the exact accuracy "
                         f"{1 - exact_error:.4f} ({key}); the front holds {len(front)} points")
    return min(ok, key=lambda p: (p["energy"], p[key]))


def dominated_share(front: Sequence[tuple[float, float]],
                    others: Sequence[tuple[float, float]]) -> float:
    """Share of the ``others`` (energy, accuracy) points that some ``front`` point weakly
    dominates (no more energy, no less accuracy)."""
    if not others:
        return 0.0
    f = np.asarray(front, dtype=float).reshape(-1, 2)
    hit = [bool(np.any((f[:, 0] <= e + 1e-12) & (f[:, 1] >= a - 1e-12))) for e, a in others]
    return float(np.mean(hit))
