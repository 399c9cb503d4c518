"""Target facts (cores, CSR address and enables, memories, ISA) from ``deploy/data/target.json``."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class Target:
    """The PULP cluster the firmware is generated for.

    Attributes:
        platform: PULP SDK platform name.
        num_cores: cluster cores running every layer.
        csr_address: MARLIN's control register (0x7D0).
        csr_enable_bits: bits set around each MARLIN kernel call: the SIMD dot-product route
            (bit 2) only, as every product is a ``pv.sdotusp.b`` lane; the ``p.mac`` route
            (bit 1) stays clear, since compilers also emit ``p.mac`` for index arithmetic.
        l1_bytes: cluster L1 size.
        l2_bytes: L2 size (where the generated buffers live).
        march: ``-march`` of the cross build check.
        mabi: ``-mabi`` of the cross build check.
        cross_prefix: prefix of the cross toolchain's tools.
        cross_cflags: further cross flags (ISA spec 2.2 puts Zicsr in rv32imc, as the PULP
            toolchains assume; freestanding: no libc).
    """

    platform: str
    num_cores: int
    csr_address: int
    csr_enable_bits: int
    l1_bytes: int
    l2_bytes: int
    march: str
    mabi: str
    cross_prefix: str
    cross_cflags: tuple[str, ...]


@lru_cache(maxsize=1)
def default_target() -> Target:
    """The target described by the package's ``data/target.json``."""
    doc = json.loads(resources.files("deploy").joinpath("data/target.json").read_text())
    doc["csr_address"] = int(doc["csr_address"], 16)
    doc["cross_cflags"] = tuple(doc["cross_cflags"])
    return Target(**doc)
