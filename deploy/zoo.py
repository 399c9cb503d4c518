"""Seeded integer networks with random parameters: LeNet-5, ResNet-8/20, a small MobileNetV2
and random small graphs.

They exercise the IR, the reference and the firmware (tests, benchmarks, search smoke runs);
trained networks come from ``agn``'s export instead.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from deploy.ir import (
    Add,
    AvgPool,
    Conv,
    Flatten,
    GlobalAvgPool,
    Input,
    Linear,
    MaxPool,
    Node,
    Requant,
    Requantize,
)
from deploy.network import Network

SpecPicker = Callable[[np.random.Generator], str]


def random_marlin(rng: np.random.Generator) -> str:
    """A uniformly random MARLIN level spec ``marlin:0..255``."""
    return f"marlin:{int(rng.integers(0, 256))}"


def random_requant(rng: np.random.Generator, channels: int, acc_std: float, zp_out: int = 0,
                   target: float = 48.0) -> Requant:
    """Requant parameters mapping accumulators of std ``acc_std`` to roughly ``target`` (uint8)."""
    mult = rng.integers(2**14, 2**15, size=channels)
    ratio = mult * max(acc_std, 1.0) / target
    shift = np.clip(np.round(np.log2(ratio)), 1, 62).astype(np.int64)
    return Requant(mult=mult, shift=shift, zp_out=zp_out)


class _Builder:
    """Appends nodes while tracking shapes, to size weights and requant parameters."""

    def __init__(self, rng: np.random.Generator, pick: SpecPicker, shape: tuple[int, int, int],
                 zero_point: int, random_zp: bool = False) -> None:
        self.rng, self.pick = rng, pick
        self.nodes: list[Node] = [Input(name="input", shape=shape, scale=1 / 64,
                                        zero_point=zero_point, mean=(0.0,) * shape[0],
                                        std=(1.0,) * shape[0])]
        self.shapes: dict[str, tuple[int, ...]] = {"input": shape}
        self.rms: dict[str, float] = {"input": 147.0}
        self.zps: dict[str, int] = {"input": zero_point}
        self.random_zp = random_zp

    def _add(self, node: Node, shape: tuple[int, ...], rms: float = 40.0, zp: int = 0) -> str:
        self.nodes.append(node)
        self.shapes[node.name] = shape
        self.rms[node.name] = rms
        self.zps[node.name] = zp
        return node.name

    def _zp(self) -> int:
        """A random non-zero output zero point (no ReLU) for 30 % of the tensors when enabled."""
        return int(self.rng.integers(1, 128)) if self.random_zp and self.rng.random() < 0.3 else 0

    def _weights(self, shape: tuple[int, ...]) -> np.ndarray:
        return np.clip(np.round(self.rng.normal(0, 40, size=shape)), -128, 127).astype(np.int8)

    def conv(self, name: str, src: str, cout: int, k: int, stride: int = 1,
             padding: tuple[int, int, int, int] | int = 0, groups: int = 1,
             fused: bool = True) -> str:
        cin, h, w = self.shapes[src]
        pad = (padding,) * 4 if isinstance(padding, int) else padding
        weight = self._weights((cout, cin // groups, k, k))
        fan_in = weight[0].size
        bias = self.rng.integers(-2000, 2000, size=cout)
        std = math.sqrt(fan_in) * self.rms[src] * 40
        zp = self._zp()
        rq = random_requant(self.rng, cout, std, zp_out=zp)
        ho = (h + pad[0] + pad[1] - k) // stride + 1
        wo = (w + pad[2] + pad[3] - k) // stride + 1
        node = Conv(name=name, input=src, weight=weight, bias=bias,
                    multiplier=self.pick(self.rng), stride=(stride, stride), padding=pad,
                    groups=groups, requant=rq if fused else None)
        if fused:
            return self._add(node, (cout, ho, wo), zp=zp)
        out = self._add(node, (cout, ho, wo))
        return self._add(Requantize(name=f"{name}_rq", input=out, requant=rq), (cout, ho, wo),
                         zp=zp)

    def linear(self, name: str, src: str, cout: int, logits: bool = False) -> str:
        (fan_in,) = self.shapes[src]
        weight = self._weights((cout, fan_in))
        std = math.sqrt(fan_in) * self.rms[src] * 40
        rq = None if logits else random_requant(self.rng, cout, std)
        node = Linear(name=name, input=src, weight=weight,
                      bias=self.rng.integers(-2000, 2000, cout), multiplier=self.pick(self.rng),
                      requant=rq)
        return self._add(node, (cout,))

    def maxpool(self, name: str, src: str, k: int, stride: int, padding: int = 0) -> str:
        c, h, w = self.shapes[src]
        ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
        return self._add(MaxPool(name=name, input=src, kernel=(k, k), stride=(stride, stride),
                                 padding=(padding,) * 4), (c, ho, wo), self.rms[src] * 1.5,
                         self.zps[src])

    def avgpool(self, name: str, src: str, k: int, stride: int) -> str:
        c, h, w = self.shapes[src]
        zp = self._zp()
        rq = random_requant(self.rng, c, self.rms[src] * k * k, zp_out=zp)
        return self._add(AvgPool(name=name, input=src, kernel=(k, k), stride=(stride, stride),
                                 requant=rq), (c, (h - k) // stride + 1, (w - k) // stride + 1),
                         zp=zp)

    def global_avgpool(self, name: str, src: str) -> str:
        c, h, w = self.shapes[src]
        zp = self._zp()
        rq = random_requant(self.rng, c, self.rms[src] * h * w, zp_out=zp)
        return self._add(GlobalAvgPool(name=name, input=src, requant=rq), (c, 1, 1), zp=zp)

    def add(self, name: str, a: str, b: str) -> str:
        mult_a, mult_b = (int(v) for v in self.rng.integers(2**11, 2**13, size=2))
        rms = (self.rms[a] * mult_a + self.rms[b] * mult_b) / 2**13
        zp = self._zp()
        lo, hi = (int(self.rng.integers(0, 20)), int(self.rng.integers(200, 256))) \
            if self.random_zp else (0, 255)
        return self._add(Add(name=name, a=a, b=b, mult_a=mult_a, mult_b=mult_b, shift=13,
                             zp_a=self.zps[a], zp_b=self.zps[b], zp_out=zp, lo=lo, hi=hi),
                         self.shapes[a], rms, zp)

    def flatten(self, name: str, src: str) -> str:
        return self._add(Flatten(name=name, input=src), (int(np.prod(self.shapes[src])),),
                         self.rms[src], self.zps[src])

    def network(self, name: str) -> Network:
        return Network(tuple(self.nodes), name=name)


def lenet5(seed: int = 0, pick: SpecPicker = random_marlin) -> Network:
    """LeNet-5 shape: 1x32x32 -> conv 6@5x5, max 2, conv 16@5x5, max 2, fc 120, 84, 10 logits."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng, pick, (1, 32, 32), zero_point=int(rng.integers(1, 256)))
    x = b.maxpool("pool1", b.conv("conv1", "input", 6, 5), 2, 2)
    x = b.flatten("flatten", b.maxpool("pool2", b.conv("conv2", x, 16, 5), 2, 2))
    x = b.linear("fc2", b.linear("fc1", x, 120), 84)
    b.linear("fc3", x, 10, logits=True)
    return b.network("lenet5")


def _cifar_resnet(name: str, blocks: int, seed: int, pick: SpecPicker, width: int = 16
                  ) -> Network:
    rng = np.random.default_rng(seed)
    b = _Builder(rng, pick, (3, 32, 32), zero_point=int(rng.integers(1, 256)))
    x = b.conv("conv1", "input", width, 3, padding=1)
    cin, i = width, 0
    for cout, first_stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
        for j in range(blocks):
            i, stride = i + 1, first_stride if j == 0 else 1
            y = b.conv(f"block{i}_conv1", x, cout, 3, stride=stride, padding=1)
            y = b.conv(f"block{i}_conv2", y, cout, 3, padding=1)
            short = (x if (cin, stride) == (cout, 1)
                     else b.conv(f"block{i}_down", x, cout, 1, stride))
            x, cin = b.add(f"block{i}_add", y, short), cout
    x = b.flatten("flatten", b.global_avgpool("gap", x))
    b.linear("fc", x, 10, logits=True)
    return b.network(name)


def resnet8(seed: int = 0, pick: SpecPicker = random_marlin) -> Network:
    """ResNet-8 shape (MARLIN's): 3x32x32, conv 16, basic blocks 16, 32/2, 64/2, GAP, fc 10."""
    return _cifar_resnet("resnet8", 1, seed, pick)


def resnet20(seed: int = 0, pick: SpecPicker = random_marlin, width: int = 16) -> Network:
    """CIFAR ResNet-20 shape: 3x32x32, conv ``width`` (16), 3 basic blocks each of ``width``,
    ``2 width``/2, ``4 width``/2 (1x1 projection shortcuts where the shape changes), GAP, fc 10.
    A larger ``width`` gives networks whose weights exceed L2 (32: 1.1 MB)."""
    return _cifar_resnet("resnet20" if width == 16 else f"resnet20_w{width}", 3, seed, pick,
                         width)


def mobilenetv2_small(seed: int = 0, pick: SpecPicker = random_marlin) -> Network:
    """A small MobileNetV2 shape for 3x32x32: conv 16, inverted residual blocks (1x1 expand,
    3x3 depthwise, 1x1 project; residual add at stride 1) of (expansion, channels, blocks,
    stride) (1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2), conv 1x1 128, GAP, fc 10."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng, pick, (3, 32, 32), zero_point=int(rng.integers(1, 256)))
    x, cin, i = b.conv("conv1", "input", 16, 3, padding=1), 16, 0
    for t, cout, n, first_stride in ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2)):
        for j in range(n):
            i, stride = i + 1, first_stride if j == 0 else 1
            y = x if t == 1 else b.conv(f"ir{i}_expand", x, cin * t, 1)
            y = b.conv(f"ir{i}_dw", y, cin * t, 3, stride=stride, padding=1, groups=cin * t)
            y = b.conv(f"ir{i}_project", y, cout, 1)
            x = b.add(f"ir{i}_add", y, x) if (stride, cin) == (1, cout) else y
            cin = cout
    x = b.flatten("flatten", b.global_avgpool("gap", b.conv("conv_last", x, 128, 1)))
    b.linear("fc", x, 10, logits=True)
    return b.network("mobilenetv2_small")


def random_network(seed: int, pick: SpecPicker = random_marlin, name: str = "") -> Network:
    """A small random graph: random shapes, strides, paddings, groups, pools, residual adds,
    fused and separate requantisation, a non-zero input zero point, random non-zero zero points
    and clip ranges on some tensors, int32 logits at the end."""
    rng = np.random.default_rng(seed)
    c, h, w = (int(v) for v in (rng.integers(1, 5), rng.integers(4, 10), rng.integers(4, 10)))
    b = _Builder(rng, pick, (c, h, w), zero_point=int(rng.integers(1, 256)), random_zp=True)
    x = "input"
    for i in range(int(rng.integers(1, 4))):
        cin, hh, ww = b.shapes[x]
        k = int(rng.integers(1, min(3, hh, ww) + 1))
        groups = int(rng.choice([g for g in (1, 2, 3) if cin % g == 0]))
        cout = groups * int(rng.integers(1, 4))
        pt, pb, pl, pr = (int(p) for p in rng.integers(0, 3, size=4))
        stride = int(rng.integers(1, 3))
        x = b.conv(f"conv{i}", x, cout, k, stride, (pt, pb, pl, pr), groups,
                   fused=bool(rng.random() < 0.8))
        cin, hh, ww = b.shapes[x]
        if rng.random() < 0.4:
            y = b.conv(f"res{i}", x, cin, 3, 1, 1)
            x = b.add(f"add{i}", y, x)
        kind = rng.random()
        if kind < 0.25 and min(hh, ww) >= 2:
            x = b.maxpool(f"maxpool{i}", x, 2, int(rng.integers(1, 3)), int(rng.integers(0, 2)))
        elif kind < 0.4 and min(hh, ww) >= 2:
            x = b.avgpool(f"avgpool{i}", x, 2, int(rng.integers(1, 3)))
    if rng.random() < 0.5:
        x = b.global_avgpool("gap", x)
    x = b.flatten("flatten", x)
    if rng.random() < 0.5:
        x = b.linear("fc_hidden", x, int(rng.integers(2, 9)))
    b.linear("fc", x, int(rng.integers(2, 11)), logits=True)
    return b.network(name or f"random{seed}")
