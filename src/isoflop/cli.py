"""The `isoflop` command: one subcommand per tool, each registered by the module that owns it.

Subcommand modules are imported lazily so `isoflop --help` stays fast and a missing optional
dependency of one tool never breaks another.
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
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name and err.name.startswith("isoflop"):
                continue  # tool not built yet
            raise
        module.register(sub)
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
