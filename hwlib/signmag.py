"""Sign-magnitude adapter: an unsigned uint8 x uint8 circuit serving int8 weights.

``approx(x, w) = circuit(x, |w|)`` for ``w >= 0`` and ``-circuit(x, |w|)`` for ``w < 0``
(|-128| = 128 fits the unsigned operand). ``w = 0`` is positive zero, as a sign bit sees it, so a
circuit with ``circuit(x, 0) != 0`` (constant compensation) keeps that value at ``w = 0``.
"""
from __future__ import annotations

import numpy as np

from hwlib.domain import INT8, UINT8
from hwlib.errors import SpecError
from hwlib.multiplier import ErrorFactors, Multiplier
from hwlib.registry import RAW_SUFFIX


class SignMagnitude(Multiplier):
    """Network form (x uint8, w int8) of an unsigned circuit; the circuit itself is ``.circuit``.

    Args:
        circuit: a multiplier on uint8 x uint8 (its spec ends in ``:raw``).
        spec: spec string of the network form (``circuit.spec`` without ``:raw``).
    """

    def __init__(self, circuit: Multiplier, spec: str) -> None:
        if circuit.x_domain != UINT8 or circuit.w_domain != UINT8:
            raise SpecError(f"SignMagnitude({circuit.spec!r}): expected an unsigned circuit on "
                            f"uint8 x uint8, got {circuit.x_domain.name} x {circuit.w_domain.name}")
        self.circuit = circuit
        self.spec = spec
        self.x_domain, self.w_domain = UINT8, INT8
        self.power = circuit.power

    def _eval(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        mag = self.circuit._eval(x, np.abs(w))
        return np.where(w < 0, -mag, mag)

    def factors(self) -> ErrorFactors | None:
        """The circuit's factors with ``g(w) = sign(w) g_circuit(|w|)`` (same f and g bounds)."""
        c = self.circuit.factors()
        if c is None:
            return None
        ws = self.w_domain.values()
        return ErrorFactors(c.f, np.where(ws < 0, -1, 1) * c.g[:, np.abs(ws)])


def network_form(circuit: Multiplier) -> SignMagnitude:
    """Wrap an unsigned circuit whose spec ends in ``:raw`` into its network form."""
    if not circuit.spec.endswith(RAW_SUFFIX):
        raise SpecError(f"network_form: circuit spec {circuit.spec!r} should end in {RAW_SUFFIX!r}")
    return SignMagnitude(circuit, circuit.spec[: -len(RAW_SUFFIX)])
