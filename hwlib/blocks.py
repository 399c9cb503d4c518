"""Block-wise multipliers inside one layer: output-channel groups or (output, input) blocks.

A layer running several multipliers splits its weight ``(Cout, Cin, ...)`` into blocks: an
output-channel group ``out = (lo, hi)`` (filter granularity: every input channel of filters
``lo..hi-1``) or an (output, input) block adding ``inp = (lo, hi)`` (kernel granularity: the 2-D
kernels of those filters and input channels). ``inp`` indexes the weight's input-channel axis
(``Cin / groups`` for a grouped convolution). A valid set of blocks (:func:`check_blocks`) has one
group size per axis dividing that axis, and assigns every (output, input) channel pair exactly
once.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hwlib.errors import AssignmentError
from hwlib.multiplier import Multiplier

_BLOCK_KEYS = ("out", "in", "multiplier")


def _range(value: Any, what: str) -> tuple[int, int]:
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in value)
            or not 0 <= int(value[0]) < int(value[1])):
        raise AssignmentError(f"{what}: expected a channel range [lo, hi] with 0 <= lo < hi, "
                              f"got {value!r}")
    return int(value[0]), int(value[1])


@dataclass(frozen=True, kw_only=True)
class Block:
    """One channel group or block of a layer and its multiplier.

    Attributes:
        out: output channels ``lo..hi-1`` (the filters).
        inp: input channels ``lo..hi-1`` of those filters (None: all of them).
        multiplier: hwlib spec string of the block's multiplier.
    """

    out: tuple[int, int]
    inp: tuple[int, int] | None = None
    multiplier: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", _range(self.out, "block 'out'"))
        if self.inp is not None:
            object.__setattr__(self, "inp", _range(self.inp, "block 'in'"))
        if not isinstance(self.multiplier, str) or not self.multiplier:
            raise AssignmentError(f"block {self.out}: expected a multiplier spec string such as "
                                  f"'marlin:17', got {self.multiplier!r}")

    def to_json(self) -> dict[str, Any]:
        """``{"out": [lo, hi], "in": [lo, hi], "multiplier": spec}`` (``in`` when set)."""
        out: dict[str, Any] = {"out": list(self.out)}
        if self.inp is not None:
            out["in"] = list(self.inp)
        out["multiplier"] = self.multiplier
        return out

    @classmethod
    def from_json(cls, obj: Any, where: str = "block") -> Block:
        """Parse :meth:`to_json`'s object (or pass a Block through)."""
        if isinstance(obj, Block):
            return obj
        if not isinstance(obj, Mapping) or "out" not in obj or "multiplier" not in obj:
            raise AssignmentError(f"{where}: expected {{\"out\": [lo, hi], \"multiplier\": spec}}"
                                  f" (and optionally \"in\": [lo, hi]), got {obj!r:.200}")
        unknown = sorted(set(obj) - set(_BLOCK_KEYS))
        if unknown:
            raise AssignmentError(f"{where}: unknown keys {unknown}; expected {list(_BLOCK_KEYS)}")
        try:
            return cls(out=obj["out"], inp=obj.get("in"), multiplier=obj["multiplier"])
        except AssignmentError as exc:
            raise AssignmentError(f"{where}: {exc}") from None


Blocks = tuple[Block, ...]
LayerSpec = str | Blocks
"""A layer's multiplier: one spec string, or its blocks."""


def as_blocks(value: Iterable[Any], where: str = "groups") -> Blocks:
    """Blocks (or their JSON objects) in canonical order (by ``out``, then ``inp``), at least one,
    all with ``inp`` or all without."""
    if isinstance(value, (str, Mapping)) or not isinstance(value, Iterable):
        raise AssignmentError(f"{where}: expected a list of blocks, got {value!r:.200}")
    blocks = tuple(Block.from_json(b, f"{where}[{i}]") for i, b in enumerate(value))
    if not blocks:
        raise AssignmentError(f"{where}: expected at least one block, got none")
    if len({b.inp is None for b in blocks}) > 1:
        raise AssignmentError(f"{where}: expected every block with an 'in' range (kernel "
                              f"blocks) or none (output-channel groups), got a mix")
    return tuple(sorted(blocks, key=lambda b: (b.out, b.inp or (0, 0))))


def check_blocks(blocks: Blocks, out_channels: int, in_channels: int,
                 where: str = "groups") -> None:
    """Raise unless ``blocks`` tile ``out_channels x in_channels`` exactly once with one group
    size per axis dividing that axis.

    Raises:
        AssignmentError: naming ``where``, the bad block and what was expected.
    """
    for axis, size, ranges in (("out", out_channels, [b.out for b in blocks]),
                               ("in", in_channels, [b.inp for b in blocks if b.inp is not None])):
        if not ranges:
            continue
        sizes = sorted({hi - lo for lo, hi in ranges})
        if len(sizes) > 1 or size % sizes[0]:
            raise AssignmentError(f"{where}: '{axis}' group sizes {sizes} expected one size "
                                  f"dividing the layer's {size} {axis}put channels")
        bad = [r for r in ranges if r[1] > size or r[0] % sizes[0]]
        if bad:
            raise AssignmentError(f"{where}: '{axis}' range {list(bad[0])} expected inside "
                                  f"[0, {size}] on a multiple of the group size {sizes[0]}")
    count = np.zeros((out_channels, in_channels), np.int64)
    for b in blocks:
        lo, hi = b.inp or (0, in_channels)
        count[b.out[0]:b.out[1], lo:hi] += 1
    if (count != 1).any():
        o, i = (int(v) for v in np.argwhere(count != 1)[0])
        raise AssignmentError(f"{where}: expected every (output, input) channel pair assigned "
                              f"exactly once; ({o}, {i}) is assigned {int(count[o, i])} times")


def block_index(blocks: Blocks, out_channels: int,
                in_channels: int) -> tuple[tuple[str, ...], np.ndarray]:
    """``(specs, index)``: the distinct multiplier specs in first-appearance order and the int
    ``(out_channels, in_channels)`` array of each channel pair's position in ``specs``
    (after :func:`check_blocks`)."""
    check_blocks(blocks, out_channels, in_channels)
    specs = tuple(dict.fromkeys(b.multiplier for b in blocks))
    pos = {s: k for k, s in enumerate(specs)}
    index = np.empty((out_channels, in_channels), np.int64)
    for b in blocks:
        lo, hi = b.inp or (0, in_channels)
        index[b.out[0]:b.out[1], lo:hi] = pos[b.multiplier]
    return specs, index


def layer_specs(spec: LayerSpec) -> tuple[str, ...]:
    """The distinct multiplier specs of a layer (one for a layer-wise spec)."""
    return (spec,) if isinstance(spec, str) else tuple(dict.fromkeys(b.multiplier
                                                                      for b in spec))


def filters_per_multiplier(spec: LayerSpec, out_channels: int,
                           in_channels: int = 1) -> dict[str, float]:
    """How many filters run at each multiplier: output channels for groups; for kernel blocks
    the kernel count divided by ``in_channels`` (fractional when a filter mixes multipliers)."""
    if isinstance(spec, str):
        return {spec: float(out_channels)}
    specs, index = block_index(spec, out_channels,
                               in_channels if spec[0].inp is not None else 1)
    return {s: float((index == k).sum()) / index.shape[1] for k, s in enumerate(specs)}


def blocks_per_multiplier(spec: LayerSpec) -> dict[str, int]:
    """How many of a layer's blocks (channel groups or kernel blocks) run at each multiplier, in
    first-appearance order (one for a layer-wise spec)."""
    if isinstance(spec, str):
        return {spec: 1}
    counts: dict[str, int] = {}
    for b in spec:
        counts[b.multiplier] = counts.get(b.multiplier, 0) + 1
    return counts


def describe(spec: LayerSpec) -> str:
    """A layer's spec as text: the spec, or ``"marlin:3 x 8, marlin:40 x 8"`` (filters per
    multiplier); for kernel blocks ``"marlin:3 x 2.5 (10/24 blocks), ..."`` (filters, fractional
    where blocks split a filter, and blocks per multiplier)."""
    if isinstance(spec, str):
        return spec
    out = max(b.out[1] for b in spec)
    inp = max((b.inp[1] for b in spec if b.inp is not None), default=1)
    filters = filters_per_multiplier(spec, out, inp)
    if spec[0].inp is None:
        return ", ".join(f"{s} x {n:g}" for s, n in filters.items())
    blocks = blocks_per_multiplier(spec)
    return ", ".join(f"{s} x {filters[s]:g} ({blocks[s]}/{len(spec)} blocks)" for s in filters)


def zero_weight_column(mul: Multiplier) -> np.ndarray:
    """``mul(x, 0)`` for every x of ``mul.x_domain`` (int64): what a weight masked to 0 leaves
    in a block-wise layer run once per multiplier (not 0 for every circuit).

    Raises:
        AssignmentError: 0 outside the multiplier's weight domain (it cannot be masked).
    """
    wd = mul.w_domain
    if not wd.lo <= 0 <= wd.hi:
        raise AssignmentError(f"multiplier {mul.spec!r}: block-wise layers mask weights with 0, "
                              f"outside its weight domain {wd.name} [{wd.lo}, {wd.hi}]")
    return np.asarray(mul.table()[:, -wd.lo], np.int64)


def from_channel_specs(specs: Sequence[str], group: int = 1) -> Blocks:
    """Output-channel groups of size ``group`` from one spec per group (in channel order)."""
    return tuple(Block(out=(k * group, (k + 1) * group), multiplier=s)
                 for k, s in enumerate(specs))
