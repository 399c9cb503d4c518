"""Runtime operating points (QoS-Nets): one network, several energy/accuracy modes.

Selection of the points from one noise training (:mod:`.selection`), their file
``operating_points.json`` (:mod:`.points_file`), per-point output affines trained jointly with
shared weights (:mod:`.affine`, :mod:`.training`), the joint NSGA-II search (:mod:`.search`;
the stage's ``joint`` method in :mod:`.joint`) and the run-directory stage behind
``agn operating-points`` (:mod:`.stage`).
"""
from agn.operating_points.points_file import (
    POINTS_FILE,
    OperatingPoint,
    OperatingPointSet,
    PointsFileError,
    read_points,
    write_points,
)
from agn.operating_points.selection import (
    DEFAULT_FACTORS,
    circuits,
    default_factors,
    kmeans,
    select_points,
)

__all__ = [
    "DEFAULT_FACTORS", "POINTS_FILE", "OperatingPoint", "OperatingPointSet", "PointsFileError",
    "circuits", "default_factors", "kmeans", "read_points", "select_points", "write_points",
]
