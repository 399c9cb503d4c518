"""``agn multipliers``: table, --show, --plot, errors, and no torch import."""
import subprocess
import sys

import pytest

from agn.cli import main


def test_table_of_a_catalog(capsys):
    assert main(["multipliers", "--catalog", "evo:mul8s_1KX5,marlin:3,trunc:k4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:6] == ["spec", "MAE%", "WCE%", "EP%", "mean", "std"]
    rows = {line.split()[0]: line.split() for line in out[2:]}
    assert list(rows) == ["evo:mul8s_1KX5", "marlin:3", "trunc:k4"]
    assert rows["evo:mul8s_1KX5"][1:9] == ["0.1545", "0.6851", "91.89", "-16.25", "139.4",
                                          "0.289", "0.680", "EvoApproxLib"]
    assert rows["marlin:3"][6:9] == ["0.2375", "0.985", "MARLIN"]
    assert rows["trunc:k4"][6:9] == ["-", "0.856", "proxy"]  # a proxy never shows mW


def test_show_one_multiplier(capsys):
    assert main(["multipliers", "--show", "bam:v5h2"]) == 0
    out = capsys.readouterr().out
    assert "x domain       int8 [-128, 127] (networks feed [0, 127])" in out
    assert "factors        rank 4, f in [0, 31], g in [-120, 128]" in out
    assert "power          0.289 mW, relative 0.6800, EvoApproxLib v2022 PDK45" in out
    assert main(["multipliers", "--show", "drum:k6"]) == 0
    out = capsys.readouterr().out
    assert "circuit        drum:k6:raw" in out and "factors        none" in out


def test_plot_is_written(tmp_path, capsys):
    out = tmp_path / "runs" / "m.png"
    assert main(["multipliers", "--catalog", "marlin:1,marlin:255,bam:v*h2",
                 "--plot", str(out), "--metric", "mae_pct"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["m.png"]  # no temporary left behind


def test_bad_spec_is_reported(capsys):
    assert main(["multipliers", "--catalog", "foo:*"]) == 2
    assert "family 'foo' has no wildcard" in capsys.readouterr().err
    assert main(["multipliers", "--show", "marlin:256"]) == 2
    assert "256" in capsys.readouterr().err


@pytest.mark.slow
def test_marlin_catalog_plot_runs_fast_without_torch(tmp_path):
    code = ("import sys, time; t = time.perf_counter(); from agn.cli import main; "
            f"rc = main(['multipliers', '--catalog', 'marlin:*', '--plot', r'{tmp_path}/m.png']); "
            "print('TORCH' if 'torch' in sys.modules else 'NOTORCH', time.perf_counter() - t); "
            "sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    flag, seconds = res.stdout.splitlines()[-1].split()
    assert flag == "NOTORCH"
    assert len(res.stdout.splitlines()) == 256 + 2 + 2  # header, rule, 256 levels, wrote, timing
    assert float(seconds) < 15.0  # well under 5 s on an idle 2-core machine; slack for load


def test_pareto_front():
    from agn.cli.multipliers import pareto_front

    pts = [(1.0, 0.0), (0.9, 5.0), (0.95, 7.0), (0.8, 5.0), (0.7, 9.0), (0.7, 8.0)]
    assert pareto_front(pts) == [(0.7, 8.0), (0.8, 5.0), (1.0, 0.0)]
