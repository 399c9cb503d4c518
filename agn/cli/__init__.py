"""The ``agn`` command line: one subcommand per module in this package."""
from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys

# Each module exposes ``add_parser(subparsers)`` which registers its subcommand and sets
# ``func(args) -> int`` as the handler. Modules are imported lazily per subcommand.
SUBCOMMANDS: dict[str, str] = {
    "deploy": "agn.cli.deploy",
    "match": "agn.cli.match",
    "multipliers": "agn.cli.multipliers",
    "operating-points": "agn.cli.operating_points",
    "pipeline": "agn.cli.pipeline",
    "search": "agn.cli.search",
    "train": "agn.cli.train",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; with ``only`` set, import just that subcommand's module."""
    parser = argparse.ArgumentParser(
        prog="agn", description="Approximate multipliers for neural networks: train, match, "
        "search, deploy.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module).add_parser(sub)
        else:
            sub.add_parser(name, help=f"(run 'agn {name} -h')")
    return parser


#: Exit status of every subcommand on bad input (argparse's own usage-error status).
BAD_INPUT = 2
#: Exit status after Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130
#: Subcommands that a rerun of the same command resumes.
RESUMABLE = ("pipeline", "search", "train", "operating-points")
#: What counts as bad input: a value, configuration, spec or file the user can correct.
BAD_INPUT_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                    PermissionError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``agn`` console script.

    Bad input (a ValueError such as a refused configuration, or a missing file) ends every
    subcommand with a one-line ``agn COMMAND: error: ...`` on stderr and exit status 2, like
    argparse's usage errors; set AGN_TRACEBACK=1 to see the traceback instead. Ctrl-C ends
    with one line naming the stage that stopped and the command that resumes it, status 130.
    """
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(first if first in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return BAD_INPUT
    try:
        return int(args.func(args) or 0)
    except BAD_INPUT_ERRORS as exc:  # bad input: its message, not a traceback
        if os.environ.get("AGN_TRACEBACK"):
            raise
        print(f"agn {args.command}: error: {exc}", file=sys.stderr)
        return BAD_INPUT
    except KeyboardInterrupt as exc:
        if os.environ.get("AGN_TRACEBACK"):
            raise
        print(interrupted_message(args.command, argv, exc), file=sys.stderr)
        return INTERRUPTED


def interrupted_message(command: str, argv: list[str], exc: KeyboardInterrupt) -> str:
    """The line printed after Ctrl-C: where the run stopped and how to resume it."""
    stage = getattr(exc, "stage", None)  # agn.run.RunInterrupted (not imported: torch)
    where = f" in stage {stage!r} of {exc.run_dir}" if stage else ""
    if command not in RESUMABLE:
        return f"agn {command}: stopped by Ctrl-C{where}"
    return f"agn {command}: stopped by Ctrl-C{where}; resume with: agn {shlex.join(argv)}"


if __name__ == "__main__":
    raise SystemExit(main())
