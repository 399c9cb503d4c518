"""Cost model per layer: MACs, estimated cycles, DMA traffic, CSR writes, multiplication energy.

See ``docs/firmware.md``.

Estimates, not measurements. Cycles of a layer are its compute cycles plus its DMA cycles (the
kernels wait for each transfer: no double buffering yet):

- compute: ``MACs / (cores x macs_per_cycle)`` (a 4-way SIMD dot product per cycle and core),
  stretched by the tiles' load imbalance (``ceil(tiles / cores) x cores / tiles``); pooling,
  add and element-wise layers count one output element per cycle and core;
- DMA: ``bytes / dma_bytes_per_cycle + transfers x dma_setup_cycles`` (one cluster DMA engine);
- CSR writes: every core writes the level once per MARLIN layer, and the current kernels set and
  clear the enables around each dot product (two writes per output). A layer with one multiplier
  per output-channel group writes the level inside its loop, wherever it changes from one MARLIN
  channel to the next (cyclically, once per output position), each write
  ``csr_write_cycles`` more compute cycles.

Multiplication energy is ``MACs x P / f`` with ``P`` the multiplier's power in the power table
(``hwlib``'s figures, measured at ``power_clock_hz``) where one is known.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import hwlib
from deploy.ir import Conv, Linear, Node, _Layer
from deploy.network import Network
from deploy.tiling import LayerTiling, TilingPlan
from hwlib.blocks import block_index

_TRANSFERS = {"conv": 3, "linear": 3, "add": 3}          # per tile; pooling moves 2


@dataclass(frozen=True, kw_only=True)
class CostParams:
    """The model's rates.

    Attributes:
        macs_per_cycle: MACs per cycle and core (4: one ``pv.sdotusp.b`` per cycle).
        dma_bytes_per_cycle: cluster DMA bandwidth (8: a 64-bit port).
        dma_setup_cycles: cycles to issue and wait for one transfer.
        power_clock_hz: clock of the power table's figures (500 MHz for MARLIN's).
        csr_write_cycles: cycles of one CSR level write inside a block-wise layer's loop.
    """

    macs_per_cycle: int = 4
    dma_bytes_per_cycle: int = 8
    dma_setup_cycles: int = 20
    power_clock_hz: float = 500e6
    csr_write_cycles: int = 1


@dataclass(frozen=True, kw_only=True)
class LayerCost:
    """One layer's estimate.

    Attributes:
        name: IR node name.
        op: IR op.
        macs: multiply-accumulates (conv, linear).
        compute_cycles: estimated compute cycles.
        dma_bytes: bytes moved between L2 and L1.
        dma_transfers: DMA commands issued.
        cycles: ``compute_cycles`` + DMA cycles.
        csr_writes: CSR 0x7D0 writes over all cores.
        mult_energy_uj: multiplication energy in microjoules (None: no absolute power known).
    """

    name: str
    op: str
    macs: int
    compute_cycles: int
    dma_bytes: int
    dma_transfers: int
    cycles: int
    csr_writes: int
    mult_energy_uj: float | None


def macs(node: Node, net: Network) -> int:
    """Multiply-accumulates of a conv/linear node (0 otherwise)."""
    if isinstance(node, (Conv, Linear)):
        return node.fan_in * net.infos[node.name].size
    return 0


def _layer_cost(node: Node, net: Network, t: LayerTiling, cores: int,
                p: CostParams) -> LayerCost:
    m = macs(node, net)
    out = net.infos[node.name].size
    work = -(-m // p.macs_per_cycle) if m else out
    if t.tiled and t.n_tiles:
        rounds = -(-t.n_tiles // cores)
        compute = -(-work * rounds // t.n_tiles)
    else:
        compute = -(-work // cores)
    transfers = t.n_tiles * _TRANSFERS.get(node.op, 2) if t.tiled else 0
    dma = -(-t.dma_bytes // p.dma_bytes_per_cycle) + transfers * p.dma_setup_cycles
    csr, energy = 0, None
    if isinstance(node, _Layer) and isinstance(node.multiplier, str):
        mul = hwlib.get(node.multiplier)
        if isinstance(mul, hwlib.marlin.Marlin):
            csr = cores + 2 * out
        if mul.power.mw is not None:
            energy = m * mul.power.mw * 1e-3 / p.power_clock_hz * 1e6
    elif isinstance(node, _Layer):
        level, enables, energy = _block_costs(node, m, out, cores, p)
        csr = level + enables
        compute += level * p.csr_write_cycles
    return LayerCost(name=node.name, op=node.op, macs=m, compute_cycles=compute,
                     dma_bytes=t.dma_bytes, dma_transfers=transfers, cycles=compute + dma,
                     csr_writes=csr, mult_energy_uj=energy)


def _block_costs(node: _Layer, m: int, out: int, cores: int,
                 p: CostParams) -> tuple[int, int, float | None]:
    """(CSR level writes, enable writes, multiplication energy) of a layer with one multiplier
    per output channel group (kernel blocks are charged per channel pair)."""
    blocks = node.multiplier
    assert not isinstance(blocks, str)
    specs, index = block_index(blocks, node.weight.shape[0], node.weight.shape[1])
    muls = [hwlib.get(s) for s in specs]
    share = np.bincount(index.ravel(), minlength=len(specs)) / index.size
    mw = [mul.power.mw for mul in muls]
    energy = None if any(v is None for v in mw) else \
        float(sum(f * v for f, v in zip(share, mw))) * m * 1e-3 / p.power_clock_hz * 1e6
    words = [hwlib.marlin.csr_word(muls[k].level) for k in index[:, 0]
             if isinstance(muls[k], hwlib.marlin.Marlin)]
    if not words:
        return 0, 0, energy
    positions = out // node.out_channels
    changes = sum(w != words[i - 1] for i, w in enumerate(words))
    level = cores if changes == 0 else cores + positions * changes
    return level, 2 * positions * len(words), energy


def estimate(net: Network, tiling: TilingPlan, params: CostParams | None = None
             ) -> tuple[LayerCost, ...]:
    """The cost of every node after the input, in execution order."""
    p = params or CostParams()
    return tuple(_layer_cost(n, net, tiling.layer(n.name), tiling.cores, p)
                 for n in net.nodes[1:])


def totals(costs: tuple[LayerCost, ...]) -> dict[str, Any]:
    """Network totals: MACs, cycles, DMA bytes, CSR writes, multiplication energy (None when a
    layer's multiplier has no absolute power figure)."""
    energies = [c.mult_energy_uj for c in costs if c.macs]
    return {"macs": sum(c.macs for c in costs), "cycles": sum(c.cycles for c in costs),
            "dma_bytes": sum(c.dma_bytes for c in costs),
            "csr_writes": sum(c.csr_writes for c in costs),
            "mult_energy_uj": (None if any(e is None for e in energies)
                               else sum(e for e in energies if e is not None))}
