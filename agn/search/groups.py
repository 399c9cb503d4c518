"""Filter and kernel granularity search space: three genes per layer, whatever its block count.

Each layer's output-channel groups (of ``group`` channels; filter granularity) or its (output
group, input group) blocks (of ``group`` x ``in_group`` channels, ``in_group`` capped at a
layer's input channels, :func:`errormodels.blocks.layer_in_group`; kernel granularity, flat index
``o * G + g`` with G input groups per filter) are ranked by predicted sensitivity, least sensitive
first (:func:`errormodels.channels.sensitivity_order`,
:func:`errormodels.blocks.kernel_sensitivity_order`). A layer's genes are
``(sensitive, tolerant, share)``: two candidates in the power-sorted gene order of
:class:`~agn.search.space.SearchSpace`, and the share ``share / upper`` of the groups, taken from
the least sensitive end, that run at the ``tolerant`` one; the others run at ``sensitive``. A
layer whose groups all share a multiplier decodes to that one spec (layer-wise), so layer-wise
assignments (the error model's seeds) are points of the space. At kernel granularity the ranking
is over all of a layer's blocks, so the tolerant share takes the least sensitive kernels of every
filter, not whole filters.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agn.search.space import Encoding, SearchSpace, SearchSpaceError, _resolve
from errormodels.blocks import layer_in_group
from hwlib.assignment import Assignment, LayerAssignment, as_assignment
from hwlib.blocks import Block, LayerSpec, block_index, from_channel_specs
from hwlib.catalogs import Catalog

GENES_PER_LAYER = 3


@dataclass(frozen=True)
class GroupedSpace(SearchSpace):
    """A :class:`SearchSpace` whose layers hold one multiplier per output-channel group.

    Attributes:
        order: per layer, its group (block) indices least sensitive first (a permutation of
            ``range(channels // group * G)``, G input groups per filter).
        group: output channels per group.
        in_group: input channels per block at kernel granularity; 0 at filter granularity.
        in_channels: per layer, its filters' input channels (kernel granularity; empty at
            filter granularity).
    """

    order: tuple[tuple[int, ...], ...] = ()
    group: int = 1
    in_group: int = 0
    in_channels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoding is not Encoding.SORTED:
            raise SearchSpaceError("GroupedSpace: expected the power-sorted encoding")
        if len(self.order) != len(self.layers):
            raise SearchSpaceError(f"GroupedSpace: {len(self.order)} group orders for "
                                   f"{len(self.layers)} layers")
        for name, o in zip(self.layers, self.order):
            if sorted(o) != list(range(len(o))) or not o:
                raise SearchSpaceError(f"GroupedSpace: layer {name!r} order {list(o)!r:.80} is "
                                       f"not a permutation of its groups")
        if self.in_group and (len(self.in_channels) != len(self.layers) or any(
                c % layer_in_group(self.in_group, c) or len(o) % (c // layer_in_group(
                    self.in_group, c)) for c, o in zip(self.in_channels, self.order))):
            raise SearchSpaceError(f"GroupedSpace: input channels per layer "
                                   f"{list(self.in_channels)} expected one per layer, each "
                                   f"divided by its input group and its groups dividing its "
                                   f"block count")

    @classmethod
    def build_grouped(cls, layers: Sequence[str], multiplications: Sequence[int],
                      catalog: str | Catalog, order: Sequence[Sequence[int]],
                      group: int = 1, in_group: int = 0,
                      in_channels: Sequence[int] = ()) -> GroupedSpace:
        """The space over ``catalog`` with each layer's groups (or blocks, when ``in_group``)
        in ``order``."""
        return cls(tuple(layers), tuple(int(c) for c in multiplications), _resolve(catalog),
                   Encoding.SORTED, tuple(tuple(int(i) for i in o) for o in order), int(group),
                   int(in_group), tuple(int(c) for c in in_channels))

    @property
    def granularity(self) -> str:
        """``"kernel"`` with input groups, else ``"filter"``."""
        return "kernel" if self.in_group else "filter"

    def identity(self) -> dict[str, Any]:
        kernel = {"in_group": self.in_group, "in_channels": list(self.in_channels)}
        return {**super().identity(), "group": self.group,
                "order": [list(o) for o in self.order], **(kernel if self.in_group else {})}

    def _in_blocks(self, i: int) -> int:
        """Input groups per filter of layer ``i`` (kernel granularity)."""
        return self.in_channels[i] // layer_in_group(self.in_group, self.in_channels[i])

    def _blocks(self, i: int, specs: Sequence[str]) -> LayerSpec:
        """Layer ``i``'s spec from one spec per group (block), in group order."""
        if len(set(specs)) == 1:
            return specs[0]
        if not self.in_group:
            return from_channel_specs(specs, self.group)
        g_in, k, m = self._in_blocks(i), self.group, layer_in_group(self.in_group,
                                                                    self.in_channels[i])
        return tuple(Block(out=(b // g_in * k, (b // g_in + 1) * k),
                           inp=(b % g_in * m, (b % g_in + 1) * m), multiplier=s)
                     for b, s in enumerate(specs))

    def _per_block(self, i: int, spec: LayerSpec) -> list[str]:
        """One spec per group (block) of layer ``i`` from its layer spec."""
        n = len(self.order[i])
        if isinstance(spec, str):
            return [spec] * n
        g_in = self._in_blocks(i) if self.in_group else 1
        m = layer_in_group(self.in_group, self.in_channels[i]) if self.in_group else 1
        found, idx = block_index(spec, n // g_in * self.group, g_in * m)
        return [found[idx[b // g_in * self.group, b % g_in * m]] for b in range(n)]

    @property
    def gene_layout(self) -> str:
        return "sensitive, tolerant and share genes per layer"

    @property
    def n_var(self) -> int:
        return GENES_PER_LAYER * len(self.layers)

    def _layer_specs(self, genes: np.ndarray) -> list[list[str]]:
        """Per layer, the spec of each group (group order)."""
        out = []
        for i, o in enumerate(self.order):
            hi, lo, share = (int(v) for v in genes[GENES_PER_LAYER * i:GENES_PER_LAYER * i + 3])
            tolerant = int(round(share * len(o) / self.upper)) if self.upper else 0
            specs = [self.candidates[hi]] * len(o)
            for g in o[:tolerant]:
                specs[g] = self.candidates[lo]
            out.append(specs)
        return out

    def decode(self, genome: Sequence[int] | np.ndarray) -> dict[str, LayerSpec]:  # type: ignore[override]
        """Layer name -> spec (all groups alike) or its output-channel groups."""
        return {name: self._blocks(i, specs)
                for i, (name, specs) in enumerate(zip(self.layers,
                                                      self._layer_specs(self.check(genome))))}

    def energy(self, genome: Sequence[int] | np.ndarray) -> float:
        return self.catalog.energy(list(self.decode(genome).values()), self.multiplications)

    def assignment(self, genome: Sequence[int] | np.ndarray, rule: str,
                   details: Mapping[str, Any] | None = None) -> Assignment:
        specs = self.decode(genome)
        layers = tuple(LayerAssignment(name=n, multiplications=c,
                                       **({"multiplier": s} if isinstance(s, str)
                                          else {"groups": s}))
                       for (n, s), c in zip(specs.items(), self.multiplications))
        return Assignment(layers=layers, catalog=self.catalog.spec, rule=rule,
                          energy=self.energy(genome),
                          power_source=self.catalog.power_source_of(specs.values()),
                          details={"granularity": self.granularity, "group": self.group,
                                   **({"in_group": self.in_group} if self.in_group else {}),
                                   **dict(details or {})})

    def encode(self, assignment: Assignment | Mapping[str, Any]) -> np.ndarray:
        """Genes of an assignment: a layer-wise spec gives (spec, spec, 0); groups give the most
        sensitive group's spec, the least sensitive one's and the share of groups at the latter
        (exact when the groups follow the ranking with two multipliers, else the nearest such
        point)."""
        asg = as_assignment(assignment)
        asg.check_names(self.layers, "assignment for the search layers")
        index = {s: i for i, s in enumerate(self.candidates)}
        specs = asg.specs()
        genes: list[int] = []
        for i, (name, o) in enumerate(zip(self.layers, self.order)):
            per_group = self._per_block(i, specs[name])
            bad = sorted({s for s in per_group if s not in index})
            if bad:
                raise SearchSpaceError(f"assignment uses multipliers outside the catalog: "
                                       f"{name}: {bad}")
            lo, hi = per_group[o[0]], per_group[o[-1]]
            tolerant = sum(per_group[g] == lo for g in o) if lo != hi else 0
            genes += [index[hi], index[lo], int(round(tolerant * self.upper / len(o)))]
        return np.array(genes, dtype=np.int64)

    def uniform(self, gene: int) -> np.ndarray:
        return self.check(np.tile([gene, gene, 0], len(self.layers)))
