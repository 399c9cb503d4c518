"""Bit-exact approximate forward of an integer CIFAR ResNet-8 over 10,000 images / float forward.

ResNet-8: conv 3->16, then three stages (16, 32, 64 channels) of one basic block each (stride 2
and a 1x1 projection shortcut from stage 2), global average pool, FC 64->10. Weights are random
int8, every conv and the FC runs on a random MARLIN level through ``agn.sim``; requantisation,
residual adds and pooling follow docs/integer_semantics.md with int64 arithmetic. The float
network is the same graph in float32 (torch convs, ReLU, add, pool, linear). Both run on the
same batches, interleaved, in one process; the approximate forward is first checked bit for bit
against the brute-force reference on a few images.

    python bench/engine_network.py [--images 10000] [--batch 500] [--threads 1] [--seed 0]
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from agn import sim

INPUT_ZP = 128


@dataclass(frozen=True)
class Layer:
    """One approximable layer: int8 weights, MARLIN level, geometry and requantisation."""

    w: torch.Tensor
    spec: str
    stride: int
    padding: int
    mult: int
    shift: int


def build(seed: int) -> dict[str, Layer]:
    """Random int8 ResNet-8 with random MARLIN levels; shifts calibrated on random inputs."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    shapes = {  # name: (Cout, Cin, k, stride, padding)
        "stem": (16, 3, 3, 1, 1), "s1.c1": (16, 16, 3, 1, 1), "s1.c2": (16, 16, 3, 1, 1),
        "s2.c1": (32, 16, 3, 2, 1), "s2.c2": (32, 32, 3, 1, 1), "s2.sc": (32, 16, 1, 2, 0),
        "s3.c1": (64, 32, 3, 2, 1), "s3.c2": (64, 64, 3, 1, 1), "s3.sc": (64, 32, 1, 2, 0),
        "fc": (10, 64, 1, 1, 0),
    }
    layers = {}
    for name, (co, ci, k, s, p) in shapes.items():
        w = torch.randint(-128, 128, (co, ci, k, k), generator=gen, dtype=torch.int8)
        # acc std for uniform uint8 inputs and uniform int8 weights ~ 74 * 128 * sqrt(fan-in);
        # map about 3 std onto 0..255
        fan_in = ci * k * k
        shift = int(np.ceil(np.log2(3 * 74 * 128 * np.sqrt(fan_in) / 255)))
        layers[name] = Layer(w if name != "fc" else w[:, :, 0, 0], f"marlin:{rng.integers(256)}",
                             s, p, 1, shift)
    return layers


def requant(acc: torch.Tensor, layer: Layer) -> torch.Tensor:
    """``clip(((acc * mult + 2^(shift-1)) >> shift), 0, 255)`` as uint8 (zp_out 0, ReLU).

    With mult = 1 and the engine's int32 accumulators (|acc| < 2^31 proven) the int64 product of
    docs/integer_semantics.md equals the int32 one, so this runs in place in int32.
    """
    assert layer.mult == 1 and acc.dtype == torch.int32
    acc.add_(1 << (layer.shift - 1)).bitwise_right_shift_(layer.shift).clamp_(0, 255)
    return acc.to(torch.uint8)


def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Residual add: ``clip((a + b + 1) >> 1, 0, 255)`` (mult_a = mult_b = 1, shift 1)."""
    return (a.to(torch.int16).add_(b).add_(1).bitwise_right_shift_(1)).to(torch.uint8)


def approx_forward(x: torch.Tensor, net: dict[str, Layer], conv=sim.approx_conv2d,
                   linear=sim.approx_linear) -> torch.Tensor:
    """Integer ResNet-8 logits (int64) with every product through its MARLIN level."""
    def c(name: str, t: torch.Tensor, zp: int = 0) -> torch.Tensor:
        layer = net[name]
        return requant(conv(t, layer.w, layer.spec, layer.stride, layer.padding, 1, zp).to(
            torch.int32), layer)

    h = c("stem", x, INPUT_ZP)
    h = add(c("s1.c2", c("s1.c1", h)), h)
    h = add(c("s2.c2", c("s2.c1", h)), c("s2.sc", h))
    h = add(c("s3.c2", c("s3.c1", h)), c("s3.sc", h))
    pooled = (h.sum((2, 3), dtype=torch.int64) + 32) >> 6  # 8x8 global average, rounded
    fc = net["fc"]
    return linear(pooled, fc.w, fc.spec).to(torch.int64)


def float_forward(x: torch.Tensor, wf: dict[str, torch.Tensor],
                  net: dict[str, Layer]) -> torch.Tensor:
    """The same graph in float32."""
    def c(name: str, t: torch.Tensor) -> torch.Tensor:
        layer = net[name]
        return F.conv2d(t, wf[name], stride=layer.stride, padding=layer.padding)

    h = F.relu(c("stem", x))
    h = F.relu(c("s1.c2", F.relu(c("s1.c1", h))) + h)
    h = F.relu(c("s2.c2", F.relu(c("s2.c1", h))) + c("s2.sc", h))
    h = F.relu(c("s3.c2", F.relu(c("s3.c1", h))) + c("s3.sc", h))
    return F.linear(F.adaptive_avg_pool2d(h, 1).flatten(1), wf["fc"])


def main(argv: list[str] | None = None) -> int:
    """Check bit-exactness on a few images, then time both forwards batch by batch."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = build(args.seed)
    wf = {k: v.w.float() for k, v in net.items()}
    gen = torch.Generator().manual_seed(args.seed + 1)
    print(f"torch {torch.__version__}, {args.threads} threads; levels: "
          + ", ".join(f"{k}={v.spec.split(':')[1]}" for k, v in net.items()))
    for name, layer in net.items():
        w4 = layer.w if layer.w.dim() == 4 else layer.w[:, :, None, None]
        print(f"  {name:<6} {tuple(w4.shape)!s:<16} {sim.describe(layer.spec, w4)}")

    probe = torch.randint(0, 256, (3, 3, 32, 32), generator=gen, dtype=torch.uint8)
    ref = approx_forward(probe, net, conv=sim.reference_conv2d, linear=sim.reference_linear)
    fast = approx_forward(probe, net)
    print(f"bit-exact against the brute-force reference on {len(probe)} images: "
          f"{torch.equal(fast, ref)}")
    if not torch.equal(fast, ref):
        return 1

    t_approx, t_float, ratios = 0.0, 0.0, []
    n_batches = -(-args.images // args.batch)
    for b in range(n_batches):
        n = min(args.batch, args.images - b * args.batch)
        x = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
        xf = x.float() - INPUT_ZP
        t0 = time.perf_counter()
        approx_forward(x, net)
        t1 = time.perf_counter()
        float_forward(xf, wf, net)
        t2 = time.perf_counter()
        t_approx, t_float = t_approx + t1 - t0, t_float + t2 - t1
        ratios.append((t1 - t0) / (t2 - t1))
        print(f"  batch {b + 1}/{n_batches}: approx {t1 - t0:.3f} s, float {t2 - t1:.3f} s",
              flush=True)
    print(f"{args.images} images: approximate {t_approx:.2f} s, float {t_float:.2f} s, "
          f"ratio {t_approx / t_float:.2f} (median per batch {statistics.median(ratios):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
