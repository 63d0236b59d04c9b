"""``graphix preprocess``: write a Spider split as a cached Hugging Face dataset."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

HELP = "link, graph and serialize a Spider split into a Hugging Face dataset on disk"

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spider-dir", type=Path, default=None,
                        help="Spider folder with tables.json, the split files and database/ "
                             "(default: $GRAPHIX_SPIDER_DIR)")
    parser.add_argument("--split", choices=("dev", "train"), required=True,
                        help="which split to preprocess; train is train_spider + train_others")
    parser.add_argument("--out", type=Path, required=True,
                        help="output folder for the dataset (datasets.save_to_disk layout)")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer folder or name for AutoTokenizer; without it the "
                             "dataset holds text and character spans but no token ids")
    parser.add_argument("--max-input-tokens", type=int, default=512,
                        help="maximum input length in subword tokens; schema items past it are cut "
                             "(default: 512)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="value index cache folder (default: $GRAPHIX_CACHE_DIR/value_index "
                             "or ~/.cache/graphix/value_index)")
    parser.add_argument("--limit", type=int, default=None,
                        help="preprocess only the first N examples")


def run(args: argparse.Namespace) -> int:
    from graphix.errors import InputError
    from graphix.preprocess import PreprocessConfig, preprocess_split
    from graphix.serialization import SerializationConfig

    if args.max_input_tokens < 8:
        raise InputError(f"--max-input-tokens must be at least 8, got {args.max_input_tokens}")
    tokenizer = None
    if args.tokenizer is not None:
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer, use_fast=True)
        except (OSError, ValueError) as error:
            raise InputError(f"cannot load tokenizer {args.tokenizer!r}: {error}") from None
    config = PreprocessConfig(
        serialization=SerializationConfig(max_input_tokens=args.max_input_tokens),
        cache_dir=args.cache_dir,
    )
    dataset = preprocess_split(args.spider_dir, args.split, tokenizer, config, limit=args.limit)
    dataset.save_to_disk(str(args.out))
    print(f"wrote {len(dataset)} {args.split} examples to {args.out}")
    return 0
