"""The `isoflop` command: one subcommand per tool, each registered by the module that owns it.

Each subcommand's module registers its parser; the heavy libraries a tool needs are imported inside the
function that runs it, so `isoflop --help` stays fast. A module that fails to import is a bug, and says so.

Exit status: 0 on success, 1 when a command fails while running (a `UserError`: a missing file, column or
key), 2 for a usage error (argparse: an unknown flag, a missing argument).
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
    "isoflop.compare",
    "isoflop.ledger",
    "isoflop.track",
    "isoflop.mix.cli",
    "isoflop.config",
    "isoflop.launch",
    "isoflop.task_laws.cli",
]

EXAMPLES = """examples:
  isoflop fit runs.csv --law chinchilla --out law.json         fit a law to your own runs
  isoflop predict law.json --N 1e9 --D 2e10                    its loss at a size and token count
  isoflop predict results/default/laws.json --C 1e14           compute-optimal N, D and loss at 1e14 FLOPs
  isoflop compare results/a results/b --out compare.png        two studies' frontiers and their loss gap
  isoflop dedup docs.parquet --out deduped.parquet             exact and near-duplicate dedup
  isoflop mix fit --mixtures M.csv --metrics L.csv --target loss --model lgbm --out fit.json
                                                               a mixture-to-loss predictor from proxy runs
  isoflop COMMAND --help                                       a command's flags and examples

exit status: 0 success, 1 the command failed (bad input, named in one line), 2 usage error
"""

RUNTIME_FAILURE = 1


def version() -> str:
    """The installed distribution's version; the source tree's `__version__` when isoflop runs uninstalled."""
    from importlib import metadata

    try:
        return metadata.version("isoflop")
    except metadata.PackageNotFoundError:
        from isoflop import __version__

        return __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="isoflop",
        description="Scaling-law study tools. The whole study runs with `make study` (Snakemake); "
        "these subcommands serve the workflow and users who bring their own data.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"isoflop {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module_name in SUBCOMMANDS:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)  # usage errors exit here with status 2
    if getattr(args, "passes_unknown_args", False):  # `isoflop study` hands the rest to Snakemake
        args.snakemake_args = unknown
    elif unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"isoflop {args.command}: error: {err}", file=sys.stderr)
        return RUNTIME_FAILURE
    except OSError as err:  # a full disk is the user's to fix, like a bad input: one line, no traceback
        from isoflop.workflow import out_of_space

        if not out_of_space(err):
            raise
        # a write's ENOSPC often carries no file name: the command's output is then where it was writing
        path = getattr(err, "filename", None) or getattr(args, "out", None)
        where = f" writing {path}" if path else ""
        print(f"isoflop {args.command}: error: no space left on device{where}: free space there and run the "
              f"command again", file=sys.stderr)
        return RUNTIME_FAILURE


if __name__ == "__main__":
    sys.exit(main())
