"""Decoding options shared by ``graphix ask`` and ``graphix predict``."""

from __future__ import annotations

import argparse


def add_decoding_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--constrained", action="store_true",
                        help="reject, during beam search, continuations that can no longer "
                             "become valid SQL for the schema")
    parser.add_argument("--execution-guided", action="store_true",
                        help="return the best beam that names only schema items and runs "
                             "without error (use with --beams > 1)")
