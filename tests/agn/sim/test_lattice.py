"""Integer bases of a table's row lattice: exact factors, short on the reduced side."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from agn.sim import lattice


def _independent_rows(e: np.ndarray, rank: int) -> np.ndarray:
    return np.sort(scipy.linalg.qr(e.astype(np.float64).T, mode="r", pivoting=True)[1][:rank])


@pytest.mark.parametrize("rank", [1, 3, 8, 16])
@pytest.mark.parametrize("side", ["g", "f"])
def test_random_low_rank_tables_get_short_integer_factors(rank, side):
    rng = np.random.default_rng(rank)
    a, b = rng.integers(-3, 4, (rank, 256)), rng.integers(-3, 4, (rank, 256))
    e = a.T @ b
    rows = _independent_rows(e, rank)
    naive = np.linalg.lstsq(e[rows].T.astype(np.float64), e.T.astype(np.float64), rcond=None)[0]
    if rank > 1:
        assert not np.allclose(naive, np.round(naive))  # the table's own rows need fractions
    f, g = lattice.integer_factors(e, rows, side)
    assert f.dtype == g.dtype == np.int64 and f.shape == (rank, 256) and g.shape == (rank, 256)
    np.testing.assert_array_equal(f.T @ g, e)
    assert max(np.abs(f).max(), np.abs(g).max()) <= 3


def test_a_lattice_the_chosen_rows_do_not_generate():
    # rows 0 and 1 span 2Z^2 (index 4); with row 2 the lattice is {a + b even} (index 2)
    e = np.zeros((4, 8), np.int64)
    e[:, :2] = [[2, 0], [0, 2], [1, 1], [3, 1]]
    f, g = lattice.integer_factors(e, np.array([0, 1]), "g")
    np.testing.assert_array_equal(f.T @ g, e)
    assert abs(round(np.linalg.det(g[:, :2].astype(np.float64)))) == 2
    assert not g[:, 2:].any()


def test_hermite_basis_and_egcd():
    assert lattice._egcd(12, -18) == (6, -1, -1)
    h = lattice._hermite([[4, 0], [0, 6], [2, 3]])  # lattice of index 12, first column 2Z
    assert h[1][0] == 0 and abs(h[0][0]) == 2 and abs(h[0][0] * h[1][1]) == 12
    with pytest.raises(ArithmeticError, match="not a multiple"):
        lattice._exact_div(7, 2)
