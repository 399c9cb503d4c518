"""Memory plan: where every activation buffer and every layer's parameters live, from the IR.

See ``docs/firmware.md``.

Activations share one L2 arena allocated by liveness: node ``i``'s output is live from step ``i``
(when it is written) to the step of its last reader (the network output to the last step), and
two buffers may share bytes only when their live intervals are disjoint. Offsets are aligned
(``align`` bytes, 8 by default: the cluster DMA's and ASan's granule). Buffers are placed
largest first at the lowest aligned offset that collides with no placed buffer live at the same
time (the greedy-by-size heuristic). Layer parameters (weights, bias, requant) stay in L2 while
they fit beside the arena; the others are marked for streaming from L3 through an L2 staging
buffer: a whole layer's parameters before it runs, or, for a layer whose parameters alone do not
fit L2 beside the arena, its weights tile by tile (one L2 slot per core, as large as the layer's
weight tile; its bias and requantisation stay in L2).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from deploy.errors import PlanError
from deploy.ir import _Layer
from deploy.network import Network
from deploy.target import Target, default_target
from deploy.tiling import TilingPlan, plan_tiling

MEMORIES = ("L2", "L3", "L3 tiles")


@dataclass(frozen=True, kw_only=True)
class Buffer:
    """One node's output buffer in the L2 arena.

    Attributes:
        name: the IR node name.
        offset: byte offset in the arena (a multiple of the plan's alignment).
        size: bytes (elements x element size).
        first: step writing it (the node's index in execution order; the input is step 0).
        last: step of its last reader (``first`` when nothing reads it, the last step for the
            network output).
    """

    name: str
    offset: int
    size: int
    first: int
    last: int

    @property
    def end(self) -> int:
        """One past the last byte."""
        return self.offset + self.size

    def live_with(self, other: Buffer) -> bool:
        """True when both are live at some step (their inclusive intervals meet)."""
        return self.first <= other.last and other.first <= self.last

    def overlaps(self, other: Buffer) -> bool:
        """True when both use some byte of the arena."""
        return self.offset < other.end and other.offset < self.end


@dataclass(frozen=True, kw_only=True)
class Parameters:
    """One conv/linear layer's parameters and where they live.

    Attributes:
        name: the IR node name.
        bytes: int8 weights + int32 bias + requant (int32 multiplier, uint8 shift per channel).
        weight_bytes: the int8 weights (padded to 4 bytes) among ``bytes``.
        memory: ``"L2"``, ``"L3"`` (streamed to the L2 staging buffer before the layer runs) or
            ``"L3 tiles"`` (weights streamed through the staging buffer tile by tile, bias and
            requant in L2).
    """

    name: str
    bytes: int
    weight_bytes: int
    memory: str

    @property
    def l2_resident_bytes(self) -> int:
        """Bytes kept in L2 for the whole run (outside the staging buffer)."""
        return {"L2": self.bytes, "L3": 0}.get(self.memory, self.bytes - self.weight_bytes)

    @property
    def l3_resident_bytes(self) -> int:
        """Bytes living in L3."""
        return self.bytes - self.l2_resident_bytes


@dataclass(frozen=True, kw_only=True)
class MemoryPlan:
    """Arena offsets of every activation buffer and the placement of every layer's parameters.

    Attributes:
        network: the network name.
        align: offset alignment in bytes.
        l2_bytes: the L2 size planned for.
        arena_bytes: the arena's size (peak bytes of simultaneously live activations, plus
            alignment and fragmentation).
        buffers: one per node, in execution order.
        parameters: one per conv/linear layer, in execution order.
        tile_staging_bytes: the staging slots of weights streamed tile by tile (cores x the
            largest such weight tile; 0 when none is).
    """

    network: str
    align: int
    l2_bytes: int
    arena_bytes: int
    buffers: tuple[Buffer, ...]
    parameters: tuple[Parameters, ...]
    tile_staging_bytes: int = 0

    def buffer(self, name: str) -> Buffer:
        """The buffer of node ``name`` (KeyError naming the nodes otherwise)."""
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(f"memory plan of {self.network!r} has no buffer {name!r}; buffers: "
                       f"{[b.name for b in self.buffers]}")

    def placement(self, name: str) -> str:
        """Where layer ``name``'s parameters live (``"L2"`` or ``"L3"``; KeyError otherwise)."""
        for p in self.parameters:
            if p.name == name:
                return p.memory
        raise KeyError(f"memory plan of {self.network!r} has no layer parameters {name!r}")

    @property
    def unplanned_bytes(self) -> int:
        """Bytes of one static buffer per node (what the arena replaces)."""
        return sum(b.size for b in self.buffers)

    @property
    def live_peak_bytes(self) -> int:
        """The largest total size of buffers live at one step (a lower bound of the arena)."""
        steps = range(max(b.last for b in self.buffers) + 1)
        return max(sum(b.size for b in self.buffers if b.first <= s <= b.last) for s in steps)

    @property
    def l2_parameter_bytes(self) -> int:
        """Parameters kept in L2."""
        return sum(p.l2_resident_bytes for p in self.parameters)

    @property
    def l3_bytes(self) -> int:
        """Parameters streamed from L3."""
        return sum(p.l3_resident_bytes for p in self.parameters)

    @property
    def staging_bytes(self) -> int:
        """The L2 staging buffer of streamed parameters (0 when nothing streams): the largest
        layer streamed whole, or the tile slots, whichever is larger (one layer runs at a
        time)."""
        return max(max((p.bytes for p in self.parameters if p.memory == "L3"), default=0),
                   self.tile_staging_bytes)

    @property
    def peak_l2_bytes(self) -> int:
        """Arena + parameters kept in L2 + the staging buffer."""
        return self.arena_bytes + self.l2_parameter_bytes + self.staging_bytes

    @property
    def fits(self) -> bool:
        """True when :attr:`peak_l2_bytes` is within L2."""
        return self.peak_l2_bytes <= self.l2_bytes

    def summary(self) -> str:
        """One line: peak L2 (arena, parameters, staging) and the L3 bytes."""
        tiles = [p.name for p in self.parameters if p.memory == "L3 tiles"]
        return (f"memory plan: peak L2 {self.peak_l2_bytes} B of {self.l2_bytes} B (activation "
                f"arena {self.arena_bytes} B for {self.unplanned_bytes} B of buffers, live peak "
                f"{self.live_peak_bytes} B; parameters {self.l2_parameter_bytes} B in L2"
                + (f", staging {self.staging_bytes} B" if self.staging_bytes else "")
                + f"); L3 {self.l3_bytes} B"
                + (f" (weights streamed per tile: {', '.join(tiles)})" if tiles else "")
                + ("" if self.fits else "  (DOES NOT FIT L2)"))

    def to_json(self) -> dict[str, Any]:
        """The plan as a JSON document (``validation.json``'s ``memory_plan``)."""
        return {
            "align": self.align, "l2_bytes": self.l2_bytes, "arena_bytes": self.arena_bytes,
            "live_peak_bytes": self.live_peak_bytes, "unplanned_bytes": self.unplanned_bytes,
            "l2_parameter_bytes": self.l2_parameter_bytes, "staging_bytes": self.staging_bytes,
            "tile_staging_bytes": self.tile_staging_bytes, "peak_l2_bytes": self.peak_l2_bytes,
            "l3_bytes": self.l3_bytes, "fits": self.fits,
            "buffers": [{"name": b.name, "offset": b.offset, "bytes": b.size, "first": b.first,
                         "last": b.last} for b in self.buffers],
            "parameters": [{"name": p.name, "bytes": p.bytes, "weight_bytes": p.weight_bytes,
                            "memory": p.memory} for p in self.parameters]}


def parameter_layout(node: _Layer) -> dict[str, int]:
    """Byte offsets of a layer's parameters packed as one block (what L3 streaming copies to
    the L2 staging buffer): int8 weights, then (4-byte aligned) int32 bias, int32 requant
    multipliers and uint8 shifts per channel; ``bytes`` is the block's size."""
    bias = _aligned(int(node.weight.size), 4)
    mult = bias + 4 * int(node.bias.size)
    channels = 0 if node.requant is None else node.requant.channels
    shift = mult + 4 * channels
    return {"weight": 0, "bias": bias, "mult": mult, "shift": shift, "bytes": shift + channels}


def parameter_bytes(node: _Layer) -> int:
    """A layer's parameter bytes: int8 weights (padded to 4 bytes), int32 bias, int32 + uint8
    requant per channel."""
    return parameter_layout(node)["bytes"]


def lifetimes(net: Network) -> dict[str, tuple[int, int]]:
    """``{node: (step written, step of its last reader)}``; the output lives to the last step."""
    step = {n.name: i for i, n in enumerate(net.nodes)}
    live = {n.name: (i, i) for i, n in enumerate(net.nodes)}
    for i, n in enumerate(net.nodes):
        for src in n.inputs:
            live[src] = (step[src], max(live[src][1], i))
    last = len(net.nodes) - 1
    live[net.output.name] = (step[net.output.name], last)
    return live


def _aligned(v: int, align: int) -> int:
    return -(-v // align) * align


def _place(size: int, first: int, last: int, placed: list[Buffer], align: int) -> int:
    """The lowest aligned offset where ``size`` bytes collide with no buffer live with them."""
    probe = Buffer(name="", offset=0, size=size, first=first, last=last)
    busy = sorted((b.offset, b.end) for b in placed if b.live_with(probe))
    offset = 0
    for lo, hi in busy:
        if offset + size <= lo:
            break
        offset = max(offset, _aligned(hi, align))
    return offset


def _place_parameters(net: Network, arena: int, l2_bytes: int, tiling: TilingPlan,
                      cores: int) -> tuple[tuple[Parameters, ...], int]:
    """Every layer's placement and the tile staging bytes.

    All parameters stay in L2 when they fit beside the arena. Otherwise a tiled layer whose
    parameters alone do not fit beside the arena streams its weights per tile; the others are
    kept in L2, in execution order, while they fit beside the staging buffer and are streamed
    whole otherwise."""
    layers = [n for n in net.nodes if isinstance(n, _Layer)]
    blocks = [parameter_layout(n) for n in layers]
    if arena + sum(b["bytes"] for b in blocks) <= l2_bytes:
        return tuple(Parameters(name=n.name, bytes=b["bytes"], weight_bytes=b["bias"],
                                memory="L2") for n, b in zip(layers, blocks)), 0
    per_tile = {n.name for n, b in zip(layers, blocks)
                if arena + b["bytes"] > l2_bytes and tiling.layer(n.name).tiled}
    slots = max((cores * tiling.layer(name).weight_tile_bytes for name in per_tile), default=0)
    staging = max([slots] + [b["bytes"] for n, b in zip(layers, blocks) if n.name not in per_tile])
    used = sum(b["bytes"] - b["bias"] for n, b in zip(layers, blocks) if n.name in per_tile)
    out = []
    for n, b in zip(layers, blocks):
        if n.name in per_tile:
            memory = "L3 tiles"
        else:
            memory = "L2" if arena + staging + used + b["bytes"] <= l2_bytes else "L3"
            used += b["bytes"] if memory == "L2" else 0
        out.append(Parameters(name=n.name, bytes=b["bytes"], weight_bytes=b["bias"],
                              memory=memory))
    return tuple(out), slots


def plan_memory(net: Network, target: Target | None = None, align: int = 8,
                tiling: TilingPlan | None = None) -> MemoryPlan:
    """The memory plan of ``net`` for ``target`` (``deploy/data/target.json`` by default);
    ``tiling`` (planned for the same target when None) sizes the slots of weights streamed
    per tile.

    Raises:
        PlanError: ``align`` is not a power of two, or the plan breaks :func:`check_plan`.
    """
    if not isinstance(align, int) or align < 1 or align & (align - 1):
        raise PlanError(f"plan_memory: align expected a power of two >= 1, got {align!r}")
    target = target or default_target()
    live = lifetimes(net)
    sizes = {n.name: net.infos[n.name].size * (4 if net.infos[n.name].dtype == "int32" else 1)
             for n in net.nodes}
    order = {n.name: i for i, n in enumerate(net.nodes)}
    placed: list[Buffer] = []
    for name in sorted(sizes, key=lambda k: (-sizes[k], order[k])):
        first, last = live[name]
        placed.append(Buffer(name=name, offset=_place(sizes[name], first, last, placed, align),
                             size=sizes[name], first=first, last=last))
    buffers = tuple(sorted(placed, key=lambda b: order[b.name]))
    arena = _aligned(max(b.end for b in buffers), align)
    parameters, slots = _place_parameters(net, arena, target.l2_bytes,
                                          tiling or plan_tiling(net, target), target.num_cores)
    plan = MemoryPlan(network=net.name, align=align, l2_bytes=target.l2_bytes, arena_bytes=arena,
                      buffers=buffers, parameters=parameters, tile_staging_bytes=slots)
    check_plan(plan, net)
    return plan


def _pairs(buffers: tuple[Buffer, ...]) -> Iterator[tuple[Buffer, Buffer]]:
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            yield a, b


def check_plan(plan: MemoryPlan, net: Network) -> None:
    """Raise PlanError unless every node has one aligned buffer of its size inside the arena,
    live from its step to its last reader, and no two simultaneously live buffers overlap."""
    live = lifetimes(net)
    names = [b.name for b in plan.buffers]
    if names != [n.name for n in net.nodes]:
        raise PlanError(f"memory plan of {plan.network!r}: expected one buffer per node in "
                        f"execution order, got {names}")
    for b in plan.buffers:
        info = net.infos[b.name]
        want = info.size * (4 if info.dtype == "int32" else 1)
        if b.size != want or b.offset % plan.align or b.offset < 0 or b.end > plan.arena_bytes:
            raise PlanError(f"memory plan of {plan.network!r}: buffer {b.name!r} at "
                            f"[{b.offset}, {b.end}) expected {want} B, aligned to {plan.align}, "
                            f"inside the {plan.arena_bytes} B arena")
        if (b.first, b.last) != live[b.name]:
            raise PlanError(f"memory plan of {plan.network!r}: buffer {b.name!r} live over steps "
                            f"{b.first}..{b.last}, expected {live[b.name][0]}..{live[b.name][1]}")
    for a, b in _pairs(plan.buffers):
        if a.live_with(b) and a.overlaps(b):
            raise PlanError(f"memory plan of {plan.network!r}: buffers {a.name!r} [{a.offset}, "
                            f"{a.end}) and {b.name!r} [{b.offset}, {b.end}) overlap while both "
                            f"are live (steps {max(a.first, b.first)}..{min(a.last, b.last)})")
    for p in plan.parameters:
        if p.memory not in MEMORIES:
            raise PlanError(f"memory plan of {plan.network!r}: parameters of {p.name!r} in "
                            f"{p.memory!r}, expected one of {MEMORIES}")
