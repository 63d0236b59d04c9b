"""The ``graphix`` command line.

Each subcommand lives in its own module under `graphix.commands` and defines ``HELP``
(one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules import their
heavy dependencies inside ``run`` so that ``graphix --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys
import traceback

from graphix import __version__, commands
from graphix.errors import GraphixError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphix",
        description="Graphix-T5 text-to-SQL: ask questions of SQLite databases, "
        "train and evaluate on Spider, compress trained models.",
    )
    parser.add_argument("--version", action="version", version=f"graphix {__version__}")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log debug messages and show tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"graphix.commands.{info.name}")
        name = getattr(module, "NAME", info.name)
        sub = subparsers.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse stops filling a positional list at the first option, so key=value
    # overrides that follow an option arrive here and join the list.
    overrides = [item for item in extra if "=" in item and not item.startswith("-")]
    if hasattr(args, "overrides") and len(overrides) == len(extra):
        args.overrides.extend(overrides)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not args.verbose:
        # Hugging Face libraries draw a progress bar for every model and dataset they
        # load; the commands report their own progress. Read when they are imported.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except GraphixError as error:
        if args.verbose:
            traceback.print_exc()
        print(f"graphix {args.command}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"graphix {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
