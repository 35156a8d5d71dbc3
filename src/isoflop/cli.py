"""The `isoflop` command: one subcommand per tool, each registered by the module that owns it.

Each subcommand's module registers its parser; the heavy libraries a tool needs are imported inside the
function that runs it, so `isoflop --help` stays fast. A module that fails to import is a bug, and says so.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from isoflop.errors import UserError

# Each module exposes `register(subparsers)`, adding parsers whose `func(args)` returns an exit code.
SUBCOMMANDS = [
    "isoflop.fit.cli",
    "isoflop.curate.cli",
    "isoflop.track",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isoflop",
        description="Scaling-law study tools. The whole study runs with `make study` (Snakemake); "
        "these subcommands serve the workflow and users who bring their own data.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"isoflop {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
