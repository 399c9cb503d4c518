"""Cost model per layer: MACs, estimated cycles, DMA and L3 traffic, CSR writes, multiplication
energy.

See ``docs/firmware.md``.

Estimates, not measurements. A layer's cycles are its compute cycles and its DMA cycles, minus
what double buffering overlaps, plus its L3 cycles:

- compute ``C``: ``MACs / (cores x macs_per_cycle)`` (a 4-way SIMD dot product per cycle and
  core), stretched by the tiles' load imbalance (``ceil(tiles / cores) x cores / tiles``);
  pooling, add and element-wise layers count one output element per cycle and core;
- DMA ``D``: ``bytes / dma_bytes_per_cycle + transfers x dma_setup_cycles`` (one cluster DMA
  engine); with ``R = ceil(steps / cores)`` rounds of pipeline steps the transfers of every
  round but the first overlap the compute of the previous one, so the layer takes
  ``C + D - min(C, D) x (R - 1) / R`` (``C + D`` for a single round or a single-buffered
  layer);
- L3: ``bytes x l3_cycles_per_byte + reads x l3_setup_cycles``, not overlapped (the reads
  block): a whole layer's parameters once before it runs, or its weights tile by tile;
- CSR writes: every core writes the level once per MARLIN layer and its kernel call sets and
  clears the SIMD route once (three writes per core). A layer with one multiplier per
  output-channel group sets and clears the route once per core (when a channel uses MARLIN)
  and writes the CSR word before a block of 4 channels sharing a multiplier (else before each
  of its channels) wherever it changes from the previous one (cyclically, once per pair of
  output pixels), each write ``csr_write_cycles`` more compute cycles.

Multiplication energy is ``MACs x P / f`` with ``P`` the multiplier's power in the power table
(``hwlib``'s figures, measured at ``power_clock_hz``) where one is known.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwlib
from deploy.ir import Conv, Linear, Node, _Layer
from deploy.memplan import MemoryPlan
from deploy.network import Network
from deploy.tiling import LayerTiling, TilingPlan
from hwlib.blocks import Blocks, block_index

_LOADS = {"conv": 2, "linear": 2, "add": 2}           # input transfers per step; pooling 1


@dataclass(frozen=True, kw_only=True)
class CostParams:
    """The model's rates.

    Attributes:
        macs_per_cycle: MACs per cycle and core (4: one ``pv.sdotusp.b`` per cycle).
        dma_bytes_per_cycle: cluster DMA bandwidth (8: a 64-bit port).
        dma_setup_cycles: cycles to issue and wait for one transfer.
        l3_cycles_per_byte: L3 (HyperRAM) read time per byte, in cluster cycles.
        l3_setup_cycles: cycles to issue and wait for one L3 read.
        power_clock_hz: clock of the power table's figures (500 MHz for MARLIN's).
        csr_write_cycles: cycles of one CSR level write inside a block-wise layer's loop.
    """

    macs_per_cycle: int = 4
    dma_bytes_per_cycle: int = 8
    dma_setup_cycles: int = 20
    l3_cycles_per_byte: float = 2.5
    l3_setup_cycles: int = 100
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
        dma_cycles: DMA cycles (before overlap).
        l3_bytes: bytes read from L3.
        l3_cycles: L3 read cycles.
        cycles: compute and DMA cycles after the overlap of double buffering, plus L3 cycles.
        csr_writes: CSR 0x7D0 writes over all cores.
        mult_energy_uj: multiplication energy in microjoules (None: no absolute power known).
    """

    name: str
    op: str
    macs: int
    compute_cycles: int
    dma_bytes: int
    dma_transfers: int
    dma_cycles: int
    l3_bytes: int
    l3_cycles: int
    cycles: int
    csr_writes: int
    mult_energy_uj: float | None


def macs(node: Node, net: Network) -> int:
    """Multiply-accumulates of a conv/linear node (0 otherwise)."""
    if isinstance(node, (Conv, Linear)):
        return node.fan_in * net.infos[node.name].size
    return 0


def _l3(node: Node, t: LayerTiling, plan: MemoryPlan | None, p: CostParams) -> tuple[int, int]:
    """L3 bytes and cycles of a layer's streamed parameters."""
    if plan is None or not isinstance(node, _Layer):
        return 0, 0
    memory = plan.placement(node.name)
    if memory == "L3 tiles":               # the weights, once per row of tiles, one read a step
        nbytes = t.weight_bytes_per_channel * t.channels * -(-t.rows // t.tile_rows)
        reads = t.n_steps
    elif memory == "L3":                   # weights, bias and requant once, before the layer
        nbytes, reads = next(q.bytes for q in plan.parameters if q.name == node.name), 4
    else:
        return 0, 0
    return nbytes, math.ceil(nbytes * p.l3_cycles_per_byte) + reads * p.l3_setup_cycles


def _layer_cost(node: Node, net: Network, t: LayerTiling, cores: int, p: CostParams,
                plan: MemoryPlan | None) -> LayerCost:
    m = macs(node, net)
    out = net.infos[node.name].size
    work = -(-m // p.macs_per_cycle) if m else out
    if t.tiled and t.n_tiles:
        rounds = -(-t.n_tiles // cores)
        compute = -(-work * rounds // t.n_tiles)
    else:
        compute = -(-work // cores)
    transfers = t.n_steps * _LOADS.get(node.op, 1) + t.n_tiles if t.tiled else 0
    dma = -(-t.dma_bytes // p.dma_bytes_per_cycle) + transfers * p.dma_setup_cycles
    steps = -(-t.n_steps // cores) if t.tiled and t.sets == 2 else 1
    overlapped = min(compute, dma) * (steps - 1) // steps
    l3_bytes, l3_cycles = _l3(node, t, plan, p)
    csr, energy = 0, None
    if isinstance(node, _Layer) and isinstance(node.multiplier, str):
        mul = hwlib.get(node.multiplier)
        if isinstance(mul, hwlib.marlin.Marlin):
            csr = 3 * cores
        if mul.power.mw is not None:
            energy = m * mul.power.mw * 1e-3 / p.power_clock_hz * 1e6
    elif isinstance(node, _Layer):
        level, enables, energy = _block_costs(node, m, out, cores, p)
        csr = level + enables
        compute += level * p.csr_write_cycles
    return LayerCost(name=node.name, op=node.op, macs=m, compute_cycles=compute,
                     dma_bytes=t.dma_bytes, dma_transfers=transfers, dma_cycles=dma,
                     l3_bytes=l3_bytes, l3_cycles=l3_cycles,
                     cycles=compute + dma - overlapped + l3_cycles, csr_writes=csr,
                     mult_energy_uj=energy)


def _block_costs(node: _Layer, m: int, out: int, cores: int,
                 p: CostParams) -> tuple[int, int, float | None]:
    """(CSR level writes, enable writes, multiplication energy) of a layer with one multiplier
    per output channel group or (output, input) kernel block, following the kernels' blocks of
    4 channels per group and 2 output pixels per step (and, for kernel blocks, the segments of
    each reduction)."""
    blocks = node.multiplier
    assert not isinstance(blocks, str)
    specs, index = block_index(blocks, node.weight.shape[0], node.weight.shape[1])
    muls = [hwlib.get(s) for s in specs]
    share = np.bincount(index.ravel(), minlength=len(specs)) / index.size
    mw = [mul.power.mw for mul in muls]
    energy = None if any(v is None for v in mw) else \
        float(sum(f * v for f, v in zip(share, mw))) * m * 1e-3 / p.power_clock_hz * 1e6
    if not any(isinstance(mul, hwlib.marlin.Marlin) for mul in muls):
        return 0, 0, energy
    words = [hwlib.marlin.csr_word(mul.level) if isinstance(mul, hwlib.marlin.Marlin) else 0
             for mul in muls]
    cout_g = node.out_channels // getattr(node, "groups", 1)
    seq: list[int] = []                      # the CSR word of each block call of one step
    for j0 in (g + j for g in range(0, node.out_channels, cout_g) for j in range(0, cout_g, 4)):
        for column, pieces in _segments(blocks, node.weight.shape[1], node.weight[0].size):
            block = index[j0:min(j0 + 4, (j0 // cout_g + 1) * cout_g), column]
            same = bool((block == block[0]).all())
            seq += ([words[block[0]]] if same else [words[k] for k in block]) * pieces
    steps = -(-(out // node.out_channels) // 2)
    changes = sum(w != seq[i - 1] for i, w in enumerate(seq))
    return cores + steps * changes, 2 * cores, energy


def _segments(blocks: Blocks, cin_g: int, fan_in: int) -> list[tuple[int, int]]:
    """``(input channel, block calls)`` of each segment of one reduction, in the kernels' order:
    one segment for output-channel groups; for kernel blocks one per input group and tap
    (groups outer), split into single bytes off the 4-byte grid (nn_block_kernel)."""
    if blocks[0].inp is None:
        return [(0, 1)]
    m = blocks[0].inp[1] - blocks[0].inp[0]
    return [(g0, m if (t0 + g0) & 3 else 1)
            for g0 in range(0, cin_g, m) for t0 in range(0, fan_in, cin_g)]


def estimate(net: Network, tiling: TilingPlan, params: CostParams | None = None,
             plan: MemoryPlan | None = None) -> tuple[LayerCost, ...]:
    """The cost of every node after the input, in execution order (L3 traffic from ``plan``,
    none when it is None)."""
    p = params or CostParams()
    return tuple(_layer_cost(n, net, tiling.layer(n.name), tiling.cores, p, plan)
                 for n in net.nodes[1:])


def totals(costs: tuple[LayerCost, ...]) -> dict[str, Any]:
    """Network totals: MACs, cycles, DMA and L3 bytes and cycles, CSR writes, multiplication
    energy (None when a layer's multiplier has no absolute power figure)."""
    energies = [c.mult_energy_uj for c in costs if c.macs]
    return {"macs": sum(c.macs for c in costs), "cycles": sum(c.cycles for c in costs),
            "dma_bytes": sum(c.dma_bytes for c in costs),
            "dma_cycles": sum(c.dma_cycles for c in costs),
            "l3_bytes": sum(c.l3_bytes for c in costs),
            "l3_cycles": sum(c.l3_cycles for c in costs),
            "csr_writes": sum(c.csr_writes for c in costs),
            "mult_energy_uj": (None if any(e is None for e in energies)
                               else sum(e for e in energies if e is not None))}
