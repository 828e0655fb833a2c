"""``python -m graphfuse.bench SUBCOMMAND``: the benchmark harness."""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import sys
from pathlib import Path

from graphfuse.bench import ablation, accuracy, build, robustness, throughput, tune
from graphfuse.bench.checks import UsageError, check_positive, check_writable_file, check_writable_folder
from graphfuse.io import atomic_write_text

SUBCOMMANDS = {"build": build, "throughput": throughput, "accuracy": accuracy, "ablation": ablation,
               "robustness": robustness, "tune": tune}
#: Modules of the ``bench`` extra each subcommand needs whatever its options (speech synthesis, which
#: only some tasks need, says so itself when it runs).
NEEDS = {"accuracy": ("matplotlib",), "ablation": ("matplotlib",), "robustness": ("matplotlib",)}
#: What each subcommand's ``--out`` names: a folder of outputs or one file (``--json`` is always a file).
OUT = {"accuracy": "folder", "ablation": "folder", "robustness": "folder", "tune": "file"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m graphfuse.bench", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    counts = {}
    for name, module in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__,
                                          formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(subparser)
        subparser.add_argument("--json", type=Path, help="also write the results as JSON to this path")
        counts[name] = [action.dest for action in subparser._actions if action.type is int]
    args = parser.parse_args(argv)
    check_positive(args, counts[args.command])  # every whole-number option counts something
    return args


def check_outputs(args: argparse.Namespace) -> None:
    """Refuses an ``--out`` or ``--json`` that cannot be written, before any work starts."""
    kind = OUT.get(args.command)
    if kind == "folder":
        check_writable_folder("--out", args.out)
    elif kind == "file":
        check_writable_file("--out", args.out)
    if args.json is not None:
        check_writable_file("--json", args.json)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    missing = [name for name in NEEDS.get(args.command, ()) if importlib.util.find_spec(name) is None]
    if missing:
        print(f"error: python -m graphfuse.bench {args.command} needs {', '.join(missing)}, which the benchmark "
              f"extra brings: pip install 'graphfuse[bench]'", file=sys.stderr)
        return 2
    check_outputs(args)
    report = SUBCOMMANDS[args.command].main(args)
    if args.json is not None:
        atomic_write_text(args.json, json.dumps(report, indent=2) + "\n")
        logging.getLogger("graphfuse.bench").info("results written to %s", args.json)
    return 1 if report.get("failed") else 0  # a subcommand lists its failed runs under "failed"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UsageError as error:
        print(error, file=sys.stderr)
        sys.exit(error.code)
