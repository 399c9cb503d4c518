import pytest

from errormodels import (
    StatsError,
    ValidationRow,
    median_abs_error,
    read_validation,
    write_validation,
)


def test_round_trip_and_median(tmp_path):
    rows = [ValidationRow("m", "l0", "marlin:1", "fixed_field", 1.1, 1.0, -0.5, -0.4),
            ValidationRow("m", "l0", "marlin:0", "fixed_field", 0.0, 0.0, 0.0, 0.0),
            ValidationRow("m", "l1", "marlin:1", "fixed_field", 1.5, 2.0, 0.1, 0.2),
            ValidationRow("m", "l2", "marlin:1", "fixed_field", 3.0, 2.0, 0.1, 0.2)]
    path = write_validation(tmp_path / "v.csv", rows)
    assert read_validation(path) == rows
    # |1.1 - 1| = 0.1, |0.75 - 1| = 0.25, |1.5 - 1| = 0.5 -> median 0.25 (exact row skipped)
    assert median_abs_error(rows) == pytest.approx(0.25)
    with pytest.raises(StatsError, match="no row with a non-zero measured std"):
        median_abs_error(rows[1:2])
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    with pytest.raises(StatsError, match="expected columns"):
        read_validation(tmp_path / "bad.csv")
