"""Benchmark: time to compute error metrics of all 256 MARLIN levels and of every family grid.

Run: ``python bench/hwlib_metrics.py``. Prints wall-clock seconds per catalog (fresh caches).
"""
from __future__ import annotations

import time

import hwlib
from hwlib import marlin, registry

CATALOGS = ["marlin:*", "evo:mul8s_*", "bam:*", "tm:*", "trunc:*", "perf:*", "drum:*", "roup:*",
            "mitchell:8,roba:8"]


def _timed(spec: str) -> tuple[int, float, float]:
    """(count, seconds to build the multipliers, seconds for their metrics)."""
    registry._CACHE.clear()
    marlin.level_metrics.cache_clear()
    t0 = time.perf_counter()
    mults = hwlib.catalog(spec)
    t1 = time.perf_counter()
    for m in mults:
        m.metrics()
    return len(mults), t1 - t0, time.perf_counter() - t1


def main() -> None:
    """Print one line per catalog and the total."""
    total = 0.0
    print(f"{'catalog':<20} {'count':>5} {'build s':>8} {'metrics s':>9} {'ms/mult':>8}")
    for spec in CATALOGS:
        n, build, met = _timed(spec)
        total += build + met
        print(f"{spec:<20} {n:>5} {build:>8.3f} {met:>9.3f} {1000 * (build + met) / n:>8.2f}")
    print(f"{'total':<20} {'':>5} {'':>8} {total:>9.3f}")


if __name__ == "__main__":
    main()
