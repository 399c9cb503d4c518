"""Predicted against measured layer output error: the rows, their summary and a CSV file."""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import numpy as np

from errormodels.errors import StatsError
from hwlib.fileio import atomic_write_text

VALIDATION_FILE = "errormodel_validation.csv"


@dataclass(frozen=True)
class ValidationRow:
    """One (layer, multiplier, formula): the predicted and the measured output error."""

    model: str
    layer: str
    multiplier: str
    method: str
    predicted_std: float
    measured_std: float
    predicted_mean: float
    measured_mean: float

    @property
    def ratio(self) -> float:
        """``predicted_std / measured_std`` (NaN when nothing was measured)."""
        return self.predicted_std / self.measured_std if self.measured_std > 0 else float("nan")


def median_abs_error(rows: Sequence[ValidationRow]) -> float:
    """Median of ``|predicted/measured - 1|`` over rows with a non-zero measured std."""
    r = np.array([row.ratio for row in rows], np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        raise StatsError("median_abs_error: no row with a non-zero measured std")
    return float(np.median(np.abs(r - 1.0)))


def write_validation(path: str | os.PathLike[str], rows: Sequence[ValidationRow]) -> Path:
    """Write the rows as CSV atomically; return the path."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([f.name for f in fields(ValidationRow)])
    w.writerows(astuple(r) for r in rows)
    return atomic_write_text(path, buf.getvalue())


def read_validation(path: str | os.PathLike[str]) -> list[ValidationRow]:
    """Read what :func:`write_validation` wrote."""
    names = [f.name for f in fields(ValidationRow)]
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != names:
            raise StatsError(f"validation file {path}: expected columns {names}, got "
                             f"{reader.fieldnames}")
        return [ValidationRow(r["model"], r["layer"], r["multiplier"], r["method"],
                              *(float(r[k]) for k in names[4:])) for r in reader]
