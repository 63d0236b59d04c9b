"""Decoding options shared by ``graphix ask`` and ``graphix predict``."""

from __future__ import annotations

import argparse


def add_decoding_arguments(parser: argparse.ArgumentParser, *, constrained: bool = False) -> None:
    """Add --constrained / --no-constrained (default `constrained`) and --execution-guided."""
    parser.add_argument("--constrained", action=argparse.BooleanOptionalAction,
                        default=constrained,
                        help="reject, during decoding, continuations that can no longer "
                             "become valid SQL for the schema (default: "
                             f"{'on' if constrained else 'off'})")
    parser.add_argument("--execution-guided", action="store_true",
                        help="return the best beam that names only schema items and runs "
                             "without error, else the cheapest cut or grammar completion "
                             "of a beam that runs (use with --beams > 1)")
