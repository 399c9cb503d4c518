"""Anonymous multipliers addressed by content: ``table:sha256:<hex>``.

A Multiplier object whose spec hwlib cannot resolve (a ``TableMultiplier`` built from an array,
a user's subclass) is adopted under the spec ``table:sha256:<fingerprint>`` (the SHA-256 of its
domains and table, :meth:`hwlib.Multiplier.fingerprint`), registered in this process. Its table
travels with the network that uses it: :func:`table_arrays` gives what ``deploy.save`` stores
next to the weights and :func:`load_tables` registers them again when ``deploy.load`` reads the
file (checking each table against its hash), so the reference, the torch engine and the firmware
of any process look up the same table by the same spec.

Two tables with the same content are one spec; the power of the first one adopted is kept.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from hwlib.domain import INT8, INT9, UINT7, UINT8, Domain
from hwlib.errors import SpecError, TableError
from hwlib.multiplier import Multiplier, TableMultiplier
from hwlib.power import Power

__all__ = ["FAMILY", "PREFIX", "adopt", "is_content_spec", "load_tables", "lookup",
           "table_arrays"]

FAMILY = "table"
PREFIX = f"{FAMILY}:sha256:"
ARRAY_PREFIX = "tables."  # keys of the stored arrays: tables.<hex>.<field>
_KNOWN_DOMAINS = {(d.lo, d.hi): d for d in (UINT8, INT8, UINT7, INT9)}
_TABLES: dict[str, Multiplier] = {}


def is_content_spec(spec: str) -> bool:
    """Whether ``spec`` names a table by content (``table:sha256:<hex>``)."""
    return spec.startswith(PREFIX)


def adopt(m: Multiplier) -> Multiplier:
    """``m`` itself when hwlib resolves its spec to the same table, else its content-addressed
    twin ``table:sha256:<fingerprint>`` (registered in this process)."""
    from hwlib.registry import get

    try:
        named = get(m.spec)
    except SpecError:
        named = None
    if named is m or (named is not None and named.fingerprint() == m.fingerprint()):
        return named
    return _register(m.fingerprint(), m.table(), m.x_domain, m.w_domain, m.power)


def lookup(arg: str) -> Multiplier:
    """The registry factory of the ``table`` family (``arg`` is ``sha256:<hex>``)."""
    digest = arg.removeprefix("sha256:")
    if digest in _TABLES:
        return _TABLES[digest]
    raise SpecError(f"multiplier spec '{FAMILY}:{arg}': an anonymous table not known in this "
                    f"process; it travels with the network that uses it (deploy.load registers "
                    f"the tables of its network.npz), or adopt its Multiplier object "
                    f"(hwlib.anonymous.adopt)")


def table_arrays(specs: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays that store the content-addressed tables among ``specs`` (others ignored)."""
    from hwlib.registry import get

    out: dict[str, np.ndarray] = {}
    for spec in sorted({s for s in specs if is_content_spec(s)}):
        m = get(spec)
        key = f"{ARRAY_PREFIX}{spec.removeprefix(PREFIX)}"
        p = m.power
        out[f"{key}.table"] = np.ascontiguousarray(m.table(), dtype=np.int64)
        out[f"{key}.domains"] = np.array([m.x_domain.lo, m.x_domain.hi, m.w_domain.lo,
                                          m.w_domain.hi], dtype=np.int64)
        out[f"{key}.power"] = np.array([np.nan if p.mw is None else p.mw, p.relative,
                                        float(p.proxy)], dtype=np.float64)
        out[f"{key}.source"] = np.array(p.source)
    return out


def load_tables(arrays: Mapping[str, np.ndarray]) -> list[str]:
    """Register every table :func:`table_arrays` stored in ``arrays``; their specs.

    Raises:
        TableError: a stored table whose content does not match its hash, or a missing field.
    """
    digests = sorted({k[len(ARRAY_PREFIX):].split(".")[0] for k in arrays
                      if k.startswith(ARRAY_PREFIX)})
    specs = []
    for digest in digests:
        key = f"{ARRAY_PREFIX}{digest}"
        try:
            table, dom, power, source = (arrays[f"{key}.{f}"]
                                         for f in ("table", "domains", "power", "source"))
        except KeyError as exc:
            raise TableError(f"stored table {PREFIX}{digest}: field {exc} missing") from None
        x_lo, x_hi, w_lo, w_hi = (int(v) for v in dom)
        mw, relative, proxy = (float(v) for v in power)
        m = _register(digest, table, _domain(x_lo, x_hi), _domain(w_lo, w_hi),
                      Power(None if np.isnan(mw) else mw, relative, str(source), bool(proxy)))
        specs.append(m.spec)
    return specs


def _domain(lo: int, hi: int) -> Domain:
    return _KNOWN_DOMAINS.get((lo, hi)) or Domain(f"int[{lo},{hi}]", lo, hi)


def _register(digest: str, table: np.ndarray, x_domain: Domain, w_domain: Domain,
              power: Power) -> Multiplier:
    """The multiplier registered under ``digest`` (the first one with that content)."""
    m = TableMultiplier(f"{PREFIX}{digest}", table, x_domain, w_domain, power)
    if m.fingerprint() != digest:
        raise TableError(f"stored table {PREFIX}{digest}: its content hashes to "
                         f"{m.fingerprint()}; the file is corrupt")
    return _TABLES.setdefault(digest, m)
