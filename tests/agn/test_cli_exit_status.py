"""Every subcommand ends bad input with a one-line message and exit status 2."""
import pytest

from agn.cli import BAD_INPUT, SUBCOMMANDS, main

BAD = {
    "deploy": lambda tmp: ["deploy", str(tmp / "no_network"), "--no-target-check"],
    "match": lambda tmp: ["match", "--run-dir", str(tmp)],
    "operating-points": lambda tmp: ["operating-points", "--run-dir", str(tmp / "none")],
    "multipliers": lambda tmp: ["multipliers", "--catalog", "marlin:300"],
    "pipeline": lambda tmp: ["pipeline", "--run-dir", str(tmp / "r"), "--pop", "-5"],
    "search": lambda tmp: ["search", "--run-dir", str(tmp)],
    "train": lambda tmp: ["train", "-c", "nosuchconfig", "--run-dir", str(tmp / "r")],
}


def test_every_subcommand_is_covered():
    assert set(BAD) == set(SUBCOMMANDS) and BAD_INPUT == 2


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_exits_2_with_one_line(command, tmp_path, capsys):
    assert main(BAD[command](tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert f"agn {command}: error: " in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("command", sorted(BAD))
def test_usage_errors_exit_2_too(command):
    with pytest.raises(SystemExit) as info:
        main([command, "--no-such-option"])
    assert info.value.code == 2
