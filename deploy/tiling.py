"""Tiling plan: per layer, L1 tiles chosen by a small solver over each core's share of L1.

See ``docs/firmware.md``.

A tile is a block of output rows x output channels (conv, depthwise, pointwise, pooling), of
output neurons (linear) or of elements (add). Tiles are spread over the cluster
cores, each core moving its own tiles between L2 and its slice of L1 (``l1_bytes / num_cores``):
the input rows the tile needs (with the halo of the kernel window, clipped to the image), the
weights of its output channels and the output tile. The transfers are double buffered: the slice
holds two sets of these regions (the DMA fills one while the core computes from the other) and,
after both, the core's scratch (the im2col buffer of a convolution, the int32 partial sums of a
linear); a layer none of whose tiles fits twice is single buffered (one set: the next tile's
loads wait for the current tile's compute). A linear layer also splits its input vector into
chunks (one pipeline step each, partial sums accumulated in the scratch, requantised after the
last chunk) when a tile of the whole fan-in does not fit. The solver enumerates every (rows,
channels) pair that fits the slice and keeps the one with the shortest critical path (rounds of
``num_cores`` tiles x outputs per tile), then the fewest DMA bytes, then the fewest tiles.
Flatten (an HWC -> CHW permutation) and stand-alone requantisation run from L2 untiled.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from deploy.errors import PlanError
from deploy.ir import Add, AvgPool, Conv, GlobalAvgPool, Linear, MaxPool, Node
from deploy.kernels import im2col_bytes
from deploy.network import Network
from deploy.target import Target, default_target


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _round4(v: int) -> int:
    return -(-v // 4) * 4


def core_slice_bytes(target: Target) -> int:
    """One core's L1 slice: ``l1_bytes / num_cores`` rounded down to 8 bytes."""
    return target.l1_bytes // target.num_cores // 8 * 8


@dataclass(frozen=True, kw_only=True)
class Window:
    """The input rows an output row range reads: ``stride``, ``kernel`` rows, ``pad`` on top,
    ``height`` input rows (a 1-row identity window for non-spatial layers)."""

    stride: int = 1
    kernel: int = 1
    pad: int = 0
    height: int = 1

    def rows(self, r0: int, r1: int) -> tuple[int, int]:
        """Input rows ``[i0, i1)`` (clipped to the image; empty when the rows read padding only)
        output rows ``[r0, r1)`` read."""
        lo = min(max(r0 * self.stride - self.pad, 0), self.height)
        hi = (r1 - 1) * self.stride - self.pad + self.kernel
        return lo, max(min(hi, self.height), lo)


@dataclass(frozen=True, kw_only=True)
class LayerTiling:
    """One layer's tiles.

    Attributes:
        name: IR node name.
        op: IR op.
        tiled: False for layers run from L2 (flatten).
        rows: output rows (1 for linear and add).
        channels: output channels (conv, pooling), neurons (linear) or elements (add).
        tile_rows: output rows per tile (the last tile may have fewer).
        tile_channels: output channels per tile (a multiple of ``channel_step``).
        channel_step: channels that go together (a conv group's outputs).
        in_row_bytes: bytes of one input row of the channels one output channel needs per
            ``channel_step`` (0 when the input does not depend on the channel tile).
        in_fixed_row_bytes: bytes of one input row every tile needs whatever its channels.
        weight_bytes_per_channel: weight bytes per output channel.
        out_bytes_per_row_channel: output bytes per row and channel.
        col_bytes: the im2col buffer (conv only).
        window: the input rows an output row range reads.
        cores: cores the tiles are spread over.
        chunk: input elements per pipeline step of a linear layer (its fan-in when the input is
            not split; 0 for other layers).
        sets: L1 buffer sets (2: double buffered; 1 when no tile fits twice).
        note: why an untiled layer runs from L2 (empty for tiled layers).
    """

    name: str
    op: str
    tiled: bool
    rows: int
    channels: int
    tile_rows: int
    tile_channels: int
    channel_step: int
    in_row_bytes: int
    in_fixed_row_bytes: int
    weight_bytes_per_channel: int
    out_bytes_per_row_channel: int
    col_bytes: int
    window: Window
    cores: int
    chunk: int = 0
    sets: int = 2
    note: str = ""

    def tiles(self) -> Iterator[tuple[int, int, int, int]]:
        """Every tile as ``(row0, row1, channel0, channel1)``, rows outer."""
        for r0 in range(0, self.rows, self.tile_rows):
            for c0 in range(0, self.channels, self.tile_channels):
                yield (r0, min(r0 + self.tile_rows, self.rows), c0,
                       min(c0 + self.tile_channels, self.channels))

    def regions_of(self, r0: int, r1: int, c0: int, c1: int) -> tuple[int, int, int]:
        """L1 bytes of one pipeline step of a tile: input with halo, weights and output, each
        rounded up to 4 bytes (the kernels lay them out from 4-byte aligned offsets). A linear
        layer's step holds one input chunk and the weights of that chunk."""
        i0, i1 = self.window.rows(r0, r1)
        per_row = self.in_fixed_row_bytes + self.in_row_bytes * (c1 - c0) // self.channel_step
        weights = self.weight_bytes_per_channel * (c1 - c0)
        if self.chunk:
            per_row, weights = self.chunk, self.chunk * (c1 - c0)
        return (_round4((i1 - i0) * per_row), _round4(weights),
                _round4(self.out_bytes_per_row_channel * (r1 - r0) * (c1 - c0)))

    @property
    def regions(self) -> tuple[int, int, int]:
        """The largest input, weight and output region over the tiles: one buffer set's
        layout, which the kernels use at fixed offsets (zeros when untiled)."""
        if not self.tiled:
            return (0, 0, 0)
        tc = min(self.tile_channels, self.channels)
        sizes = [self.regions_of(r0, r1, 0, tc) for r0, r1 in self._row_tiles()]
        return (max(x for x, _, _ in sizes), max(w for _, w, _ in sizes),
                max(y for _, _, y in sizes))

    @property
    def set_bytes(self) -> int:
        """One buffer set (input, weights, output); the slice holds ``sets`` of them."""
        return sum(self.regions)

    @property
    def scratch_bytes(self) -> int:
        """Per-core L1 scratch after the two sets: im2col (conv), int32 partial sums (linear)."""
        return self.col_bytes + (4 * min(self.tile_channels, self.channels) if self.chunk else 0)

    @property
    def n_chunks(self) -> int:
        """Pipeline steps per tile (input chunks of a linear layer, else 1)."""
        return _ceil(self.in_fixed_row_bytes, self.chunk) if self.chunk else 1

    @property
    def n_tiles(self) -> int:
        """Number of tiles."""
        return _ceil(self.rows, self.tile_rows) * _ceil(self.channels, self.tile_channels)

    @property
    def n_steps(self) -> int:
        """Pipeline steps over all tiles (tiles x input chunks)."""
        return self.n_tiles * self.n_chunks

    def _row_tiles(self) -> list[tuple[int, int]]:
        return [(r0, min(r0 + self.tile_rows, self.rows))
                for r0 in range(0, self.rows, self.tile_rows)]

    @property
    def l1_bytes(self) -> int:
        """One core's L1 use: the buffer sets and the scratch (0 when untiled)."""
        if not self.tiled:
            return 0
        return self.sets * self.set_bytes + self.scratch_bytes

    @property
    def dma_bytes(self) -> int:
        """Bytes moved between L2 and L1 over all tiles (the scratch stays in L1)."""
        if not self.tiled:
            return 0
        rows, n_c = self._row_tiles(), _ceil(self.channels, self.tile_channels)
        per_row = self.in_fixed_row_bytes * n_c + self.in_row_bytes * self.channels // max(
            self.channel_step, 1)
        halo = sum((lambda i: i[1] - i[0])(self.window.rows(r0, r1)) for r0, r1 in rows)
        return (halo * per_row + self.weight_bytes_per_channel * self.channels * len(rows)
                + self.out_bytes_per_row_channel * self.rows * self.channels)

    @property
    def weight_tile_bytes(self) -> int:
        """Weight bytes of one pipeline step (what a weight tile streamed from L3 stages in L2
        per core)."""
        return self.regions[1]

    def to_json(self) -> dict[str, Any]:
        """The layer's tiling as a JSON object."""
        return {"name": self.name, "op": self.op, "tiled": self.tiled,
                "tile": [self.tile_rows, self.tile_channels], "output": [self.rows, self.channels],
                "tiles": self.n_tiles if self.tiled else 0, "chunk": self.chunk,
                "steps": self.n_steps if self.tiled else 0, "sets": self.sets,
                "regions": list(self.regions),
                "l1_bytes": self.l1_bytes, "dma_bytes": self.dma_bytes, "note": self.note}


@dataclass(frozen=True, kw_only=True)
class TilingPlan:
    """Every executed node's tiling.

    Attributes:
        network: the network name.
        l1_bytes: cluster L1.
        cores: cluster cores.
        layers: one per node after the input, in execution order.
    """

    network: str
    l1_bytes: int
    cores: int
    layers: tuple[LayerTiling, ...]

    @property
    def core_l1_bytes(self) -> int:
        """Each core's L1 slice (8-byte aligned)."""
        return self.l1_bytes // self.cores // 8 * 8

    def layer(self, name: str) -> LayerTiling:
        """The tiling of node ``name``."""
        for t in self.layers:
            if t.name == name:
                return t
        raise KeyError(f"tiling plan of {self.network!r} has no layer {name!r}")

    def summary(self) -> str:
        """One line: tiled layers, tiles and the largest L1 slice used."""
        tiled = [t for t in self.layers if t.tiled]
        peak = max((t.l1_bytes for t in tiled), default=0)
        untiled = [t.name for t in self.layers if not t.tiled and "smallest tile" in t.note]
        return (f"tiling plan: {len(tiled)} tiled layers, {sum(t.n_tiles for t in tiled)} tiles "
                f"({sum(t.n_steps for t in tiled)} DMA steps, "
                f"{sum(t.sets == 1 for t in tiled)} layers single buffered), largest "
                f"{peak} B of the {self.core_l1_bytes} B L1 slice per core "
                f"({self.cores} cores x {self.l1_bytes} B L1)"
                + (f"; run from L2 (no tile fits): {', '.join(untiled)}" if untiled else ""))

    def to_json(self) -> dict[str, Any]:
        """The plan as a JSON document (``validation.json``'s ``tiling_plan``)."""
        return {"l1_bytes": self.l1_bytes, "cores": self.cores,
                "core_l1_bytes": self.core_l1_bytes, "layers": [t.to_json() for t in self.layers]}


def _shape(node: Node, net: Network) -> dict[str, Any]:
    """The solver's view of a node: rows, channels, step, per-row/channel bytes, window."""
    x, y = net.infos[node.inputs[0]], net.infos[node.name]
    out_elem = 4 if y.dtype == "int32" else 1
    if isinstance(node, Conv):
        cout, cin_g, kh, kw = node.weight.shape
        c, h, w = x.shape
        grouped = node.groups > 1
        step = cout // node.groups if grouped else 1
        return dict(rows=y.shape[1], channels=cout, channel_step=step,
                    in_row_bytes=w * cin_g if grouped else 0,
                    in_fixed_row_bytes=0 if grouped else w * c,
                    weight_bytes_per_channel=cin_g * kh * kw,
                    out_bytes_per_row_channel=y.shape[2] * out_elem,
                    col_bytes=im2col_bytes(cin_g * kh * kw),
                    window=Window(stride=node.stride[0], kernel=kh, pad=node.padding[0],
                                  height=h))
    if isinstance(node, (MaxPool, AvgPool, GlobalAvgPool)):
        c, h, w = x.shape
        kh, sy, pt = ((h, 1, 0) if isinstance(node, GlobalAvgPool) else
                      (node.kernel[0], node.stride[0],
                       node.padding[0] if isinstance(node, MaxPool) else 0))
        return dict(rows=y.shape[1], channels=c, channel_step=1, in_row_bytes=w,
                    in_fixed_row_bytes=0, weight_bytes_per_channel=0,
                    out_bytes_per_row_channel=y.shape[2], col_bytes=0,
                    window=Window(stride=sy, kernel=kh, pad=pt, height=h))
    if isinstance(node, Linear):
        return dict(rows=1, channels=node.out_channels, channel_step=1, in_row_bytes=0,
                    in_fixed_row_bytes=node.fan_in, weight_bytes_per_channel=node.fan_in,
                    out_bytes_per_row_channel=out_elem, col_bytes=0, window=Window(),
                    chunk=node.fan_in)
    if isinstance(node, Add):
        return dict(rows=1, channels=y.size, channel_step=1, in_row_bytes=2,
                    in_fixed_row_bytes=0, weight_bytes_per_channel=0,
                    out_bytes_per_row_channel=1, col_bytes=0, window=Window())
    return {}


def _chunks(fan_in: int) -> Iterator[int]:
    """A linear's input chunk sizes, largest first: the whole fan-in, then ``fan_in / n``
    rounded up to 4 bytes for n = 2, 3, ... (each size once)."""
    yield fan_in
    last = fan_in
    for n in range(2, fan_in + 1):
        c = min(_round4(_ceil(fan_in, n)), fan_in)
        if c < last:
            yield c
            last = c
        if c <= 4:
            return


def _solve_chunk(node: Node, shape: dict[str, Any], budget: int,
                 cores: int) -> LayerTiling | None:
    rows, chans, step = shape["rows"], shape["channels"], shape["channel_step"]
    best: tuple[tuple[int, int, int], LayerTiling] | None = None
    for tc in range(step, chans + step, step):
        tc = min(tc, chans)
        for th in range(1, rows + 1):
            t = LayerTiling(name=node.name, op=node.op, tiled=True, tile_rows=th,
                            tile_channels=tc, cores=cores, **shape)
            if t.l1_bytes > budget:
                break                                   # more rows only grow the tile
            # the critical path (rounds x outputs of one tile), then DMA traffic, then tiles
            key = (_ceil(t.n_tiles, cores) * th * tc, t.dma_bytes, t.n_tiles)
            if best is None or key < best[0]:
                best = (key, t)
        if tc == chans or th == 1 and t.l1_bytes > budget:
            break                                       # more channels only grow the tile
    return None if best is None else best[1]


def _solve(node: Node, shape: dict[str, Any], budget: int, cores: int) -> LayerTiling:
    """The best tile of the largest input chunk (linear) with a tile that fits, double buffered
    if any tile fits twice, else single buffered."""
    for sets in (2, 1):
        for chunk in _chunks(shape["chunk"]) if shape.get("chunk") else (0,):
            best = _solve_chunk(node, {**shape, "chunk": chunk, "sets": sets}, budget, cores)
            if best is not None:
                return best
    step = shape["channel_step"]
    one = LayerTiling(name=node.name, op=node.op, tiled=True, tile_rows=1, tile_channels=step,
                      cores=cores, **{**shape, "chunk": min(shape.get("chunk", 0), 4), "sets": 1})
    raise PlanError(f"tiling: node {node.name!r} ({node.op}) needs {one.l1_bytes} B of L1 "
                    f"for its smallest tile (1 row x {step} channel(s), single buffered), "
                    f"expected at most the {budget} B L1 slice per core")


def _untiled(node: Node, cores: int, note: str) -> LayerTiling:
    return LayerTiling(name=node.name, op=node.op, tiled=False, rows=1, channels=1, tile_rows=1,
                       tile_channels=1, channel_step=1, in_row_bytes=0, in_fixed_row_bytes=0,
                       weight_bytes_per_channel=0, out_bytes_per_row_channel=0, col_bytes=0,
                       window=Window(), cores=cores, note=note)


def plan_tiling(net: Network, target: Target | None = None, strict: bool = False) -> TilingPlan:
    """The tiling plan of ``net`` for ``target`` (``deploy/data/target.json`` by default).

    A layer whose smallest tile does not fit one core's L1 slice runs from L2 untiled, with the
    reason in its ``note`` (PlanError instead when ``strict``); flatten always does.
    """
    target = target or default_target()
    budget = core_slice_bytes(target)
    layers = []
    for node in net.nodes[1:]:
        shape = _shape(node, net)
        if not shape:
            layers.append(_untiled(node, target.num_cores, "element-wise, run from L2"))
            continue
        try:
            layers.append(_solve(node, shape, budget, target.num_cores))
        except PlanError as e:
            if strict:
                raise
            layers.append(_untiled(node, target.num_cores, f"run from L2: {e}"))
    plan = TilingPlan(network=net.name, l1_bytes=target.l1_bytes, cores=target.num_cores,
                      layers=tuple(layers))
    check_tiling(plan, net)
    return plan


def check_tiling(plan: TilingPlan, net: Network) -> None:
    """Raise PlanError unless every tile fits one core's L1 slice, channel tiles respect the
    groups, and the tiles of each layer cover its output exactly once."""
    for t in plan.layers:
        if not t.tiled:
            continue
        too_big = [tile for tile in t.tiles()
                   if any(a > b for a, b in zip(t.regions_of(*tile), t.regions))]
        if too_big:
            raise PlanError(f"tiling of {t.name!r}: tile {too_big[0]} exceeds the buffer set's "
                            f"regions {t.regions}")
        if t.sets not in (1, 2):
            raise PlanError(f"tiling of {t.name!r}: {t.sets} buffer sets, expected 1 or 2")
        if t.l1_bytes > plan.core_l1_bytes:
            raise PlanError(f"tiling of {t.name!r}: a tile needs {t.l1_bytes} B, expected at "
                            f"most the {plan.core_l1_bytes} B L1 slice per core")
        if t.tile_channels % t.channel_step and t.tile_channels != t.channels:
            raise PlanError(f"tiling of {t.name!r}: {t.tile_channels} channels per tile, "
                            f"expected a multiple of the group's {t.channel_step}")
        cover = np.zeros((t.rows, t.channels), np.int64)
        for r0, r1, c0, c1 in t.tiles():
            cover[r0:r1, c0:c1] += 1
        if (cover != 1).any():
            raise PlanError(f"tiling of {t.name!r}: tiles cover some outputs "
                            f"{int(cover.min())}..{int(cover.max())} times, expected once")
    names = [t.name for t in plan.layers]
    if names != [n.name for n in net.nodes[1:]]:
        raise PlanError(f"tiling plan of {plan.network!r}: expected one entry per node after "
                        f"the input, got {names}")
