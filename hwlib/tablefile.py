"""``file:`` multipliers: a user's circuit from a C model, a TFApprox ``.bin`` or a ``.npy`` table.

Spec: ``file:PATH[?opt=value&...]``. Options: ``signed=0|1`` (else the C declaration, else a
``mul8s_``/``mul8u_`` file-name prefix), ``power=<mW>`` (else the C header's ``PDK45_PWR``, else
``csv=<metrics.csv>``, else a shipped EvoApprox row of the same name whose published MAE%, WCE% and
EP% match the table), ``func=<name>`` (C files with several candidate functions),
``order=value|bits`` (signed ``.npy`` tables only, see below).

Layouts: ``.c`` and ``.bin`` are indexed by operand bit patterns (TFApprox: 65,536 little-endian
uint16/int16, index ``(a & 0xFF) * 256 + (b & 0xFF)``, row = first operand); ``.npy`` holds a
256x256 integer array of product values in :meth:`Multiplier.table` order (row = value - domain
lo, ``order=value``, the default) or, for signed tables, in two's-complement index order (row =
``a & 0xFF``: 0..127 then -128..-1, as TorchApprox saves them, ``order=bits``). A signed table
that reads far better in the other order than in the one given is refused with a message naming
the option. ``.npy`` values are products, never re-read as 16-bit patterns: a value outside the
product range (0..65535 unsigned, -32768..32767 signed) is refused naming the entry. Unsigned
circuits come back in network form (:class:`hwlib.signmag.SignMagnitude`), signed ones as
int8 x int8 tables. Compiled C tables are cached by content hash under
``$XDG_CACHE_HOME/agn-toolkit`` (or ``~/.cache/agn-toolkit``). ``hwlib.get`` keeps one instance
per spec string for the life of the process; :func:`load` reads the file afresh.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from urllib.parse import parse_qsl

import numpy as np

from hwlib import cmodel
from hwlib.domain import INT8, UINT8
from hwlib.errors import SpecError, TableError
from hwlib.fileio import atomic_path
from hwlib.multiplier import Multiplier, TableMultiplier, error_metrics
from hwlib.power import UNKNOWN_POWER, Power
from hwlib.signmag import network_form

OPTIONS = ("signed", "power", "csv", "func", "order")
CACHE_VERSION = "1"
#: Product range of a 16-bit result, by signedness.
PRODUCT_RANGE = {False: (0, 65535), True: (-32768, 32767)}


def cache_dir() -> Path:
    """Directory of cached compiled tables."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "agn-toolkit" / "ctables"


def load(arg: str) -> Multiplier:
    """Factory for ``file:PATH[?options]`` (see the module docstring)."""
    spec = f"file:{arg}"
    path_s, _, query = arg.partition("?")
    opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    bad = sorted(set(opts) - set(OPTIONS))
    if bad:
        raise SpecError(f"multiplier spec {spec!r}: unknown option(s) {bad}; known: {OPTIONS}")
    path = Path(path_s)
    if not path.is_file():
        raise SpecError(f"multiplier spec {spec!r}: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    header_mw: float | None = None
    declared: bool | None = None  # signedness the C declaration states
    if suffix == ".c":
        source = path.read_text(errors="replace")
        func = cmodel.find_function(source, str(path), opts.get("func"))
        raw, declared = _compiled_table(source, func, str(path)), func.signed
        header_mw, name = cmodel.header_power_mw(source), func.name
    elif suffix == ".bin":
        raw, name = _read_bin(path, _signed_option(opts, path)), path.stem
    elif suffix == ".npy":
        signed = _signed_option(opts, path)
        table, name = _read_npy(path, signed, _order_option(opts, path, signed)), path.stem
    else:
        raise SpecError(f"multiplier spec {spec!r}: expected a .c, .bin or .npy file, "
                        f"got {path.suffix!r}")
    if "order" in opts and suffix != ".npy":
        raise SpecError(f"multiplier spec {spec!r}: option 'order' applies to .npy tables only")
    signed = _signed_option(opts, path, declared)
    if suffix != ".npy":
        table = _checked_table(raw, signed, str(path), declared is not None or "signed" not in opts)
    power = _power(opts, header_mw, name, table, signed, spec)
    if signed:
        return TableMultiplier(spec, table, INT8, INT8, power)
    return network_form(TableMultiplier(spec + ":raw", table, UINT8, UINT8, power))


def _signed_option(opts: dict[str, str], path: Path, declared: bool | None = None) -> bool:
    if "signed" in opts:
        if opts["signed"] not in ("0", "1", "true", "false"):
            raise SpecError(f"file:{path}: option signed={opts['signed']!r}, expected 0 or 1")
        return opts["signed"] in ("1", "true")
    if declared is not None:
        return declared
    for prefix, signed in (("mul8s", True), ("mul8u", False)):
        if path.stem.startswith(prefix):
            return signed
    raise SpecError(f"file:{path}: cannot tell signedness; name the file mul8s_*/mul8u_* or add "
                    f"'?signed=1' or '?signed=0' to the spec")


def _read_bin(path: Path, signed: bool) -> np.ndarray:
    data = path.read_bytes()
    if len(data) != 65536 * 2:
        raise TableError(f"table file {path}: expected 131072 bytes (65,536 little-endian 16-bit "
                         f"values, row = first operand), got {len(data)}")
    return np.frombuffer(data, dtype="<i2" if signed else "<u2").astype(np.int64).reshape(256, 256)


def _order_option(opts: dict[str, str], path: Path, signed: bool) -> str | None:
    """The ``order`` option of a ``.npy`` table (None when not given)."""
    order = opts.get("order")
    if order is None:
        return None
    if order not in ("value", "bits"):
        raise SpecError(f"file:{path}: option order={order!r}, expected 'value' or 'bits'")
    if not signed and order == "bits":
        raise SpecError(f"file:{path}: option order=bits applies to signed tables only (an "
                        f"unsigned table's value order is its bit order)")
    return order


def _read_npy(path: Path, signed: bool, order: str | None) -> np.ndarray:
    """A ``.npy`` table of product values -> domain-order int64 table (see the module docstring).

    ``order`` None means value order, with a check that the table does not read far better in
    two's-complement index order (the layout TorchApprox saves).
    """
    try:
        t = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise TableError(f"table file {path}: not a plain .npy array ({exc})") from None
    if t.shape != (256, 256) or t.dtype.kind not in "iu":
        raise TableError(f"table file {path}: expected a 256x256 integer array, got shape "
                         f"{t.shape} dtype {t.dtype}")
    lo, hi = PRODUCT_RANGE[signed]
    bad = np.argwhere((t < lo) | (t > hi))  # compared in t's own dtype: no wrap-around
    if bad.size:
        r, c = (int(v) for v in bad[0])
        kind = "signed" if signed else "unsigned"
        raise TableError(f"table file {path}: entry [{r}, {c}] = {t[r, c]} is outside the "
                         f"{kind} 8x8 product range {lo}..{hi} ({len(bad)} such entries); a .npy "
                         f"table holds product values, not bit patterns")
    t = t.astype(np.int64)
    if not signed:
        return t
    bits = (np.arange(256) ^ 0x80) - 0x80  # operand value of each two's-complement index
    swap = np.argsort(bits)  # two's-complement order -> value order
    if order == "bits":
        return t[np.ix_(swap, swap)]
    if order is None:
        values = np.arange(-128, 128)
        exact = {"value": values[:, None] * values[None, :], "bits": bits[:, None] * bits[None, :]}
        mae = {k: float(np.abs(t - e).mean()) for k, e in exact.items()}
        if mae["value"] > 64 and mae["bits"] < mae["value"] / 4:
            raise TableError(
                f"table file {path}: the signed table reads as two's-complement index order "
                f"(rows 0..127 then -128..-1, as TorchApprox saves it; mean |error| "
                f"{mae['bits']:.3g} against {mae['value']:.3g} in value order -128..127); add "
                f"'?order=bits' to the spec to load it in that order, or '?order=value' to keep "
                f"value order")
    return t


def _compiled_table(source: str, func: cmodel.CFunction, path: str) -> np.ndarray:
    """The tabulated C model, from the cache when a valid entry exists (a truncated or foreign
    entry is rebuilt, never trusted)."""
    key = hashlib.sha256(f"{CACHE_VERSION}\0{func}\0{source}".encode()).hexdigest()
    cached = cache_dir() / f"{key}.npy"
    table = _cached_table(cached)
    if table is not None:
        return table
    table = cmodel.evaluate(source, func, path)
    with atomic_path(cached) as tmp:
        np.save(tmp, table)
    return table


def _cached_table(cached: Path) -> np.ndarray | None:
    """A cache entry's table, or None when it is missing, unreadable or not a 256x256 int64."""
    try:
        table = np.load(cached, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if table.shape != (256, 256) or table.dtype != np.int64:
        return None
    return table


def _checked_table(raw: np.ndarray, signed: bool, path: str, check: bool) -> np.ndarray:
    """Bit-pattern table -> domain-order table, refusing outputs that contradict the signedness.

    16-bit outputs are read in the chosen signedness (a ``uint16_t`` result of a circuit used as
    signed is reinterpreted as ``int16_t``); wider outputs are kept as they are.
    """
    pattern = raw & 0xFFFF
    views = {False: pattern, True: pattern - ((pattern >> 15) << 16)}
    ops = {False: np.arange(256), True: (np.arange(256) ^ 0x80) - 0x80}
    mae = {s: float(np.abs(views[s] - ops[s][:, None] * ops[s][None, :]).mean() / 2**16 * 100)
           for s in (False, True)}
    fits16 = raw.min() >= -32768 and raw.max() <= 65535
    if check and fits16 and mae[signed] > 1.0 and mae[not signed] < mae[signed] / 4:
        kind = "signed" if signed else "unsigned"
        other = "unsigned" if signed else "signed"
        raise TableError(
            f"table {path}: declared {kind}, but its outputs look {other} (MAE% {mae[signed]:.3g} "
            f"read as {kind}, {mae[not signed]:.3g} read as {other}); fix the declaration or "
            f"pass '?signed={int(not signed)}'")
    values = views[signed] if fits16 else raw
    if not signed:
        return values
    order = (np.arange(256) - 128) & 0xFF
    return values[np.ix_(order, order)]


def _power(opts: dict[str, str], header_mw: float | None, name: str, table: np.ndarray,
           signed: bool, spec: str) -> Power:
    from hwlib.evoapprox import SIGNED_EXACT_MW, UNSIGNED_EXACT_MW, identify, published_metrics
    from hwlib.registry import get

    exact_mw = SIGNED_EXACT_MW if signed else UNSIGNED_EXACT_MW
    if "power" in opts:
        try:
            mw = float(opts["power"])
        except ValueError:
            raise SpecError(f"{spec}: option power={opts['power']!r}, expected mW") from None
        return Power(mw, mw / exact_mw, f"given in the spec, relative to PDK45 exact {exact_mw} mW")
    if header_mw is not None:
        return Power(header_mw, header_mw / exact_mw, f"PDK45_PWR of the C header ({name})")
    rows: list[tuple[str, dict[str, str]]] = []
    if "csv" in opts:
        with open(opts["csv"], newline="") as fh:
            rows = [(opts["csv"], r) for r in csv.DictReader(fh) if r.get("name") == name]
    else:
        rows = [(f"EvoApproxLib-lite {g}", t[name]) for g in ("v2022", "master")
                if name in (t := published_metrics(g))]
    vals = np.arange(-128, 128) if signed else np.arange(256)
    got = error_metrics(table - vals[:, None] * vals[None, :], vals[:, None] * vals[None, :])
    for origin, row in rows:
        if all(abs(got[k] - float(row[c])) <= 0.006 + 0.01 * float(row[c])
               for k, c in (("mae_pct", "MAE_pct"), ("wce_pct", "WCE_pct"), ("ep_pct", "EP_pct"))):
            mw = float(row["power_mW_pdk45"])
            return Power(mw, mw / exact_mw, f"{origin} PDK45 (published), {name}")
    same = identify(table) if signed else None
    if same is not None:
        p = get(f"evo:{same}").power
        return Power(p.mw, p.relative, f"{p.source} (table identical to {same})")
    return UNKNOWN_POWER
