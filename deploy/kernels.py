"""Facts of the generated SIMD kernels and their reading from an rv32 disassembly.

The conv and linear kernels (``nn_kernels.c``) compute every product as one lane of XpulpV2's
``pv.sdotusp.b rD, rs1, rs2`` (``rD += sum_i zext(rs1.b[i]) * sext(rs2.b[i])``), emitted with
``.insn`` so the stock cross compiler assembles it: funct7 ``1010100``, funct3 ``001`` (``.b``),
opcode ``1010111`` (the PULP ISA's vector-op major opcode). :func:`simd_report` finds the loops
of an ``objdump -d`` listing (backward branches), the innermost loop holding the dot products,
its instructions per MAC, and where the MARLIN enables sit.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

SDOTUSP_B_MATCH = 0xA8001057
"""``pv.sdotusp.b`` with rd = rs1 = rs2 = x0: funct7 0x54, funct3 1, opcode 0x57."""
SDOTUSP_B_MASK = 0xFE00707F
"""Bits fixed by the opcode (all but the three register fields)."""
PULP_NN_LOOP_INSNS = 14
"""PULP-NN's 2x4 matmul inner loop (``pulp_nn_matmul``): 6 word loads with post-increment
(``p.lw``) and 8 ``pv.sdotusp.b`` per 4 input bytes, in a zero-overhead hardware loop."""
PULP_NN_LOOP_MACS = 32
"""MACs of one PULP-NN inner-loop iteration: 2 pixels x 4 channels x 4 bytes."""

_FUNC = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
_INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*([^#<]*)")
_BRANCHES = {"beq", "bne", "blt", "bge", "bltu", "bgeu", "beqz", "bnez", "blez", "bgez", "bltz",
             "bgtz", "bgt", "ble", "bgtu", "bleu", "j", "c.j", "c.beqz", "c.bnez"}


def im2col_bytes(k: int) -> int:
    """Per-core im2col bytes of a convolution with ``k = Kh*Kw*Cin/groups``: two 4-byte aligned
    columns, one per output pixel of the kernels' 2-pixel step (``NN_COL_BYTES``)."""
    if k < 1:
        raise ValueError(f"im2col_bytes: expected k >= 1, got {k}")
    return 2 * (-(-k // 4) * 4)


def encode_sdotusp_b(rd: int, rs1: int, rs2: int) -> int:
    """The 32-bit word of ``pv.sdotusp.b x<rd>, x<rs1>, x<rs2>``."""
    for name, r in (("rd", rd), ("rs1", rs1), ("rs2", rs2)):
        if not 0 <= r < 32:
            raise ValueError(f"encode_sdotusp_b: {name} expected a register 0..31, got {r}")
    return SDOTUSP_B_MATCH | rs2 << 20 | rs1 << 15 | rd << 7


@dataclass(frozen=True)
class Insn:
    """One disassembled instruction: address, mnemonic and operand text."""

    address: int
    op: str
    args: str

    @property
    def is_sdotusp_b(self) -> bool:
        """True for a ``pv.sdotusp.b`` word (shown by objdump as ``.4byte 0x...``)."""
        if self.op == "pv.sdotusp.b":
            return True
        if self.op not in (".4byte", ".insn", ".word"):
            return False
        word = int(self.args.split(",")[-1].strip(), 16)
        return word & SDOTUSP_B_MASK == SDOTUSP_B_MATCH

    @property
    def branch_target(self) -> int | None:
        """Target address of a branch or jump, None for other instructions."""
        if self.op not in _BRANCHES:
            return None
        return int(self.args.split(",")[-1].strip(), 16)


@dataclass(frozen=True)
class Loop:
    """Instructions from a backward branch's target up to and including the branch."""

    function: str
    start: int
    end: int
    body: tuple[Insn, ...]

    @property
    def dot_products(self) -> int:
        """``pv.sdotusp.b`` instructions in the loop."""
        return sum(i.is_sdotusp_b for i in self.body)

    def contains(self, other: Loop) -> bool:
        """True when ``other`` lies inside this loop (and is not this loop)."""
        return (self.start <= other.start and other.end <= self.end
                and (self.start, self.end) != (other.start, other.end))


@dataclass(frozen=True)
class SimdReport:
    """The SIMD inner loop and the MARLIN enables of one kernels object file.

    Attributes:
        function: function holding the inner loop with the most dot products.
        loop_instructions: instructions of one iteration of that loop.
        loop_dot_products: ``pv.sdotusp.b`` in it (4 MACs each).
        enables: per function, (``csrs``, ``csrc``) of the enable bits on the CSR.
        enables_in_loops: enable sets or clears found inside any loop.
        csr_in_inner_loops: CSR instructions inside a loop that holds dot products.
    """

    function: str
    loop_instructions: int
    loop_dot_products: int
    enables: dict[str, tuple[int, int]]
    enables_in_loops: int
    csr_in_inner_loops: int

    @property
    def macs(self) -> int:
        """MACs of one iteration of the inner loop."""
        return 4 * self.loop_dot_products

    @property
    def per_mac(self) -> float:
        """Instructions per MAC of the inner loop."""
        return self.loop_instructions / self.macs if self.macs else float("inf")

    @property
    def pulp_nn_per_mac(self) -> float:
        """PULP-NN's 2x4 inner loop: 14 instructions per 32 MACs."""
        return PULP_NN_LOOP_INSNS / PULP_NN_LOOP_MACS

    @property
    def ratio(self) -> float:
        """``per_mac`` over PULP-NN's."""
        return self.per_mac / self.pulp_nn_per_mac

    def summary(self) -> str:
        """One line: the figure and how it is counted."""
        return (f"SIMD inner loop ({self.function}): {self.loop_instructions} rv32 instructions "
                f"for {self.loop_dot_products} pv.sdotusp.b = {self.macs} MACs, "
                f"{self.per_mac:.3f} instr/MAC; PULP-NN 2x4 loop {PULP_NN_LOOP_INSNS}/"
                f"{PULP_NN_LOOP_MACS} = {self.pulp_nn_per_mac:.3f} (x{self.ratio:.2f})")


def functions(disassembly: str) -> dict[str, list[Insn]]:
    """The instructions of every function of an ``objdump -d`` listing (``.L`` labels merged
    into their function)."""
    out: dict[str, list[Insn]] = {}
    func = ""
    for line in disassembly.splitlines():
        m = _FUNC.match(line.strip())
        if m:
            if not m.group(1).startswith(".L"):
                func = m.group(1)
                out.setdefault(func, [])
            continue
        m = _INSN.match(line)
        if m and func:
            out[func].append(Insn(int(m.group(1), 16), m.group(2), m.group(3).strip()))
    return out


def loops(function: str, insns: list[Insn]) -> list[Loop]:
    """Every loop of one function: each backward branch closes one."""
    out = []
    for i, insn in enumerate(insns):
        target = insn.branch_target
        if target is not None and target <= insn.address:
            body = tuple(x for x in insns[:i + 1] if x.address >= target)
            out.append(Loop(function, target, insn.address, body))
    return out


def simd_report(disassembly: str, csr: int, enable_bits: int) -> SimdReport:
    """Read the SIMD inner loop and the enables' placement from the kernels' disassembly.

    Raises:
        ValueError: no loop holds a ``pv.sdotusp.b``.
    """
    name = f"0x{csr:x}"
    enable = re.compile(rf"^{name},\s*{enable_bits}$")
    best: Loop | None = None
    enables: dict[str, tuple[int, int]] = {}
    in_loops = in_inner = 0
    for func, insns in functions(disassembly).items():
        all_loops = loops(func, insns)
        inner = [l for l in all_loops if not any(l.contains(o) for o in all_loops)]
        for l in inner:
            if l.dot_products and (best is None or l.dot_products > best.dot_products):
                best = l
        sets = clears = 0
        for insn in insns:
            looped = [l for l in all_loops if l.start <= insn.address <= l.end]
            if insn.op.startswith("csr") and insn.args.startswith(name + ","):
                in_inner += any(l.dot_products for l in looped)
            if insn.op in ("csrs", "csrsi", "csrc", "csrci") and enable.match(insn.args):
                sets += insn.op.startswith("csrs")
                clears += insn.op.startswith("csrc")
                in_loops += bool(looped)
        if sets or clears:
            enables[func] = (sets, clears)
    if best is None:
        raise ValueError("simd_report: no loop of the disassembly holds a pv.sdotusp.b")
    return SimdReport(function=best.function, loop_instructions=len(best.body),
                      loop_dot_products=best.dot_products, enables=enables,
                      enables_in_loops=in_loops, csr_in_inner_loops=in_inner)
