"""file: multipliers from EvoApprox-style C models, TFApprox .bin tables and .npy arrays."""
import numpy as np
import pytest

import hwlib
from hwlib import cmodel, tablefile
from hwlib.errors import SpecError, TableError

TRUNC_C = """/***
* EvoApprox-style test circuit: column truncation k = 4 (written for this test)
***/
// MAE% = 0.019 %
// PDK45_PWR = 0.300 mW
#include <stdint.h>
static int helper(int v) { return v; }
uint16_t mul8u_TRK4(uint8_t A, uint8_t B)
{
    uint16_t P = 0;
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 8; ++j)
            if (i + j >= 4) P += (((A >> i) & 1) * ((B >> j) & 1)) << (i + j);
    return (uint16_t)helper(P);
}
"""

BAM_C = """#include <stdint.h>
int16_t mul8s_1KX5(int8_t A, int8_t B)
{
    int32_t P = 0;
    for (int i = 2; i < 8; ++i)
        for (int j = 0; j < 8; ++j) {
            if (i + j < 5) continue;
            int32_t pp = (((uint8_t)A >> i) & 1) * (((uint8_t)B >> j) & 1) * (1 << (i + j));
            P += ((i == 7) != (j == 7)) ? -pp : pp;
        }
    return (int16_t)P;
}
"""


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_c_model_unsigned_loads_as_network_form_with_header_power(tmp_path):
    p = _write(tmp_path, "mul8u_TRK4.c", TRUNC_C)
    m = hwlib.get(f"file:{p}")
    assert m.spec == f"file:{p}" and hwlib.get(m.spec) is m
    assert (m.x_domain, m.w_domain) == (hwlib.UINT8, hwlib.INT8)
    np.testing.assert_array_equal(m.circuit.table(), hwlib.get("trunc:k4:raw").table())
    np.testing.assert_array_equal(m.table(), hwlib.get("trunc:k4").table())
    assert m.power_mw == pytest.approx(0.300)
    assert m.relative_power == pytest.approx(0.300 / 0.391)
    assert "PDK45_PWR" in m.power.source and not m.power.proxy
    assert hwlib.get(m.circuit.spec) is m.circuit


def test_c_model_signed_and_power_from_matching_published_row(tmp_path):
    p = _write(tmp_path, "mul8s_1KX5.c", BAM_C)
    m = hwlib.get(f"file:{p}")
    assert (m.x_domain, m.w_domain) == (hwlib.INT8, hwlib.INT8)
    np.testing.assert_array_equal(m.table(), hwlib.get("bam:v5h2").table())
    assert m.power_mw == pytest.approx(0.289) and "published" in m.power.source
    # same name, different circuit: the published row does not match, so no power is claimed
    other = _write(tmp_path, "other/mul8s_1KX5.c", BAM_C.replace("i = 2", "i = 3"))
    assert hwlib.get(f"file:{other}").power.proxy


def test_power_from_metrics_csv_and_spec_option(tmp_path):
    p = _write(tmp_path, "mul8u_TRK4.c", TRUNC_C.replace("// PDK45_PWR = 0.300 mW\n", ""))
    t = hwlib.get("trunc:k4:raw").metrics()
    csv_path = _write(tmp_path, "metrics.csv",
                      "name,power_mW_pdk45,MAE_pct,WCE_pct,EP_pct\n"
                      f"mul8u_TRK4,0.333,{t['mae_pct']},{t['wce_pct']},{t['ep_pct']}\n")
    assert hwlib.get(f"file:{p}?csv={csv_path}").power_mw == pytest.approx(0.333)
    assert hwlib.get(f"file:{p}?power=0.25").power_mw == pytest.approx(0.25)
    assert hwlib.get(f"file:{p}").power.proxy  # nothing known: labelled, never measured


def test_c_table_is_cached_by_content_hash(tmp_path, monkeypatch):
    p = _write(tmp_path, "mul8u_TRK4.c", TRUNC_C)
    first = tablefile.load(str(p))
    assert len(list(tablefile.cache_dir().glob("*.npy"))) == 1

    def no_compiler(*args, **kwargs):
        raise AssertionError("compiled again despite the cache")
    monkeypatch.setattr(cmodel, "evaluate", no_compiler)
    np.testing.assert_array_equal(tablefile.load(str(p)).table(), first.table())
    p.write_text(TRUNC_C.replace(">= 4", ">= 5"))  # new content, new hash
    with pytest.raises(AssertionError, match="compiled again"):
        tablefile.load(str(p))


def test_c_file_and_bin_round_trip_to_the_same_table(tmp_path):
    m = hwlib.get(f"file:{_write(tmp_path, 'mul8u_TRK4.c', TRUNC_C)}")
    raw = m.circuit.table().astype("<u2")  # bit-pattern order = value order for unsigned
    (tmp_path / "mul8u_TRK4.bin").write_bytes(raw.tobytes())
    b = hwlib.get(f"file:{tmp_path / 'mul8u_TRK4.bin'}")
    np.testing.assert_array_equal(b.table(), m.table())
    s = hwlib.get(f"file:{_write(tmp_path, 'mul8s_1KX5.c', BAM_C)}")
    order = (np.arange(256) - 128) & 0xFF
    patt = np.empty((256, 256), np.int64)
    patt[np.ix_(order, order)] = s.table()  # TFApprox: index (a & 0xFF) * 256 + (b & 0xFF)
    (tmp_path / "bam52.bin").write_bytes(patt.astype("<i2").tobytes())
    sb = hwlib.get(f"file:{tmp_path / 'bam52.bin'}?signed=1")
    np.testing.assert_array_equal(sb.table(), s.table())


def test_npy_tables_in_table_order(tmp_path):
    np.save(tmp_path / "mul8s_tm2.npy", hwlib.get("tm:k2").table())
    np.testing.assert_array_equal(hwlib.get(f"file:{tmp_path / 'mul8s_tm2.npy'}").table(),
                                  hwlib.get("tm:k2").table())
    np.save(tmp_path / "t.npy", hwlib.get("drum:k4:raw").table())
    m = hwlib.get(f"file:{tmp_path / 't.npy'}?signed=0")
    np.testing.assert_array_equal(m.table(), hwlib.get("drum:k4").table())


def test_malformed_files_are_refused(tmp_path):
    (tmp_path / "mul8u_short.bin").write_bytes(b"\0" * 1000)
    with pytest.raises(TableError, match="131072 bytes.*got 1000"):
        hwlib.get(f"file:{tmp_path / 'mul8u_short.bin'}")
    np.save(tmp_path / "mul8u_shape.npy", np.zeros((256, 255), np.int64))
    with pytest.raises(TableError, match=r"256x256 integer array, got shape \(256, 255\)"):
        hwlib.get(f"file:{tmp_path / 'mul8u_shape.npy'}")
    np.save(tmp_path / "mul8u_float.npy", np.zeros((256, 256)))
    with pytest.raises(TableError, match="float64"):
        hwlib.get(f"file:{tmp_path / 'mul8u_float.npy'}")
    np.save(tmp_path / "noname.npy", np.zeros((256, 256), np.int64))
    with pytest.raises(SpecError, match="cannot tell signedness.*signed=1"):
        hwlib.get(f"file:{tmp_path / 'noname.npy'}")
    with pytest.raises(SpecError, match="no such file"):
        hwlib.get(f"file:{tmp_path / 'missing.c'}")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(SpecError, match=r"expected a \.c, \.bin or \.npy file"):
        hwlib.get(f"file:{tmp_path / 'x.txt'}")
    with pytest.raises(SpecError, match=r"unknown option\(s\) \['bogus'\]"):
        hwlib.get(f"file:{tmp_path / 'noname.npy'}?bogus=1")


def test_c_file_that_does_not_compile(tmp_path):
    p = _write(tmp_path, "mul8u_BROKEN.c",
               "#include <stdint.h>\n"
               "uint16_t mul8u_BROKEN(uint8_t A, uint8_t B) { return A * ; }\n")
    with pytest.raises(cmodel.CModelError,
                       match=r"(?s)does not compile.*mul8u_BROKEN\.c:2:.*error"):
        hwlib.get(f"file:{p}")


def test_c_file_without_function(tmp_path):
    p = _write(tmp_path, "mul8u_NONE.c", "int main(void) { return 0; }\n")
    with pytest.raises(cmodel.CModelError, match="found no function"):
        hwlib.get(f"file:{p}")
    two = _write(tmp_path, "two.c", "#include <stdint.h>\n"
                 "uint16_t f(uint8_t A, uint8_t B) { return A * B; }\n"
                 "uint16_t g(uint8_t A, uint8_t B) { return A * B + 1; }\n")
    with pytest.raises(cmodel.CModelError, match=r"2 functions \(\['f', 'g'\]\)"):
        hwlib.get(f"file:{two}")
    g = hwlib.get(f"file:{two}?func=g")
    assert int(g.circuit(np.array(3), np.array(4))) == 13


def test_declared_unsigned_but_outputs_signed_is_refused(tmp_path):
    p = _write(tmp_path, "mul8u_LIAR.c", "#include <stdint.h>\n"
               "uint16_t mul8u_LIAR(uint8_t A, uint8_t B) { return (int8_t)A * (int8_t)B; }\n")
    with pytest.raises(TableError, match="declared unsigned, but its outputs look signed"):
        hwlib.get(f"file:{p}")


def test_wide_const_operand_types(tmp_path):
    p = _write(tmp_path, "gen.c", "#include <stdint.h>\n"
               "int32_t mul8s_WIDE(const int64_t A, const int64_t B) "
               "{ return (A >> 1 << 1) * B; }\n")
    m = hwlib.get(f"file:{p}")
    assert (m.x_domain, m.w_domain) == (hwlib.INT8, hwlib.INT8)
    np.testing.assert_array_equal(m.table(), hwlib.get("bam:v0h1").table())


def test_signed_option_overrides_an_unsigned_declaration(tmp_path):
    p = _write(tmp_path, "lie.c", "#include <stdint.h>\n"
               "uint16_t mul8u_LIE(uint8_t A, uint8_t B) { return (int8_t)A * (int8_t)B; }\n")
    m = hwlib.get(f"file:{p}?signed=1")
    assert (m.x_domain, m.w_domain) == (hwlib.INT8, hwlib.INT8)
    assert m.is_exact  # uint16_t results re-read as int16_t


def test_unnamed_c_model_identical_to_a_published_circuit_gets_its_power(tmp_path):
    p = _write(tmp_path, "mine.c", "#include <stdint.h>\n"
               "int16_t my_tm2(int8_t A, int8_t B) { return (A >> 2) * 4 * ((B >> 2) * 4); }\n")
    m = hwlib.get(f"file:{p}")
    np.testing.assert_array_equal(m.table(), hwlib.get("tm:k2").table())
    assert m.power_mw == pytest.approx(0.200)
    assert "mul8s_1L2L" in m.power.source and "table identical" in m.power.source


@pytest.mark.parametrize("signed, value, dtype", [
    (False, -1, np.int64), (True, 40000, np.int64), (False, 70000, np.int64),
    (True, 70000, np.int64), (False, 2**63 + 5, np.uint64)])
def test_npy_values_outside_the_product_range_are_refused(tmp_path, signed, value, dtype):
    """A .npy table holds products: -1 is not 65535, 40000 not -25536, 2**63 + 5 not negative."""
    base = hwlib.get("tm:k2" if signed else "drum:k4:raw").table()
    t = base.astype(dtype) if value >= 0 else base.copy()
    t[3, 7] = value
    name = "mul8s_bad.npy" if signed else "mul8u_bad.npy"
    np.save(tmp_path / name, t)
    with pytest.raises(TableError, match=rf"entry \[3, 7\] = {value} is outside"):
        tablefile.load(str(tmp_path / name))


def test_npy_signed_table_in_twos_complement_order_is_detected(tmp_path):
    """TorchApprox saves signed tables with rows 0..127, -128..-1: refused by default, loaded
    with ?order=bits to the same multiplier as the value-order file."""
    table = hwlib.get("tm:k2").table()  # value order, row = a + 128
    order = (np.arange(256) - 128) & 0xFF  # value index -> two's-complement index
    bits = np.empty_like(table)
    bits[np.ix_(order, order)] = table
    np.save(tmp_path / "mul8s_torchapprox.npy", bits)
    path = tmp_path / "mul8s_torchapprox.npy"
    with pytest.raises(TableError, match=r"two's-complement index order.*'\?order=bits'"):
        tablefile.load(str(path))
    np.testing.assert_array_equal(tablefile.load(f"{path}?order=bits").table(), table)
    np.save(tmp_path / "mul8s_value.npy", table)
    np.testing.assert_array_equal(
        tablefile.load(f"{tmp_path / 'mul8s_value.npy'}?order=value").table(), table)
    with pytest.raises(SpecError, match="order='sideways', expected 'value' or 'bits'"):
        tablefile.load(f"{path}?order=sideways")
    with pytest.raises(SpecError, match="order=bits applies to signed tables only"):
        tablefile.load(f"{path}?order=bits&signed=0")


def test_truncated_cache_entry_is_rebuilt(tmp_path):
    p = _write(tmp_path, "mul8u_TRK4.c", TRUNC_C)
    first = tablefile.load(str(p)).table()
    (entry,) = tablefile.cache_dir().glob("*.npy")
    entry.write_bytes(entry.read_bytes()[:1000])  # a kill mid-write of an older version
    np.testing.assert_array_equal(tablefile.load(str(p)).table(), first)
    assert np.load(entry).shape == (256, 256)  # the entry was rewritten whole


def test_c_model_that_hangs_gives_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(cmodel, "TIMEOUT_S", 1)
    hang = TRUNC_C.replace("uint16_t P = 0;", "uint16_t P = 0; for (volatile int z = 1; z;) {}")
    p = _write(tmp_path, "mul8u_HANG.c", hang)
    with pytest.raises(cmodel.CModelError, match=r"did not finish within 1 s"):
        tablefile.load(str(p))
