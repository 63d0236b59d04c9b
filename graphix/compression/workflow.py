"""The steps around a compression: load a model, pick examples, save the result.

Shared by ``graphix compress`` and ``evaluation/bench_compression.py``. A compressed folder
holds what ``Text2SQL.from_pretrained`` reads (weights, config, tokenizer, ``training.json``)
plus ``compression.json``, a summary of what was removed or shared and on which examples.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Sequence
from pathlib import Path

from graphix.errors import InputError

logger = logging.getLogger(__name__)

SUMMARY_FILE = "compression.json"


def load_text2sql(path: str | Path | None):
    """Load a model folder (None: the bundled model) as a :class:`graphix.api.Text2SQL`."""
    from graphix.api import Text2SQL

    return Text2SQL.from_pretrained(path)


def spider_records(tokenizer, spider_dir, split: str, count: int | None, *, seed: int = 0,
                   max_input_tokens: int = 512, max_target_tokens: int = 256) -> list[dict]:
    """Preprocess `count` examples of a Spider split, drawn with `seed` (None: all of them).

    The same seed and count give the same examples, in their original order.
    """
    from graphix.data import load_spider_split
    from graphix.preprocess import PreprocessConfig, preprocess_examples
    from graphix.serialization import SerializationConfig

    if count is not None and count < 1:
        raise InputError(f"the number of examples must be at least 1, got {count}")
    split_data = load_spider_split(spider_dir, split)
    if count is not None and count < len(split_data.examples):
        chosen = sorted(random.Random(seed).sample(range(len(split_data.examples)), count))
        split_data.examples = [split_data.examples[i] for i in chosen]
    config = PreprocessConfig(serialization=SerializationConfig(
        max_input_tokens=max_input_tokens, max_target_tokens=max_target_tokens))
    return preprocess_examples(split_data, tokenizer, config, progress=False)


def batches_of(records: Sequence[dict], batch_size: int, use_graph: bool) -> list[dict]:
    """Collate records into model input batches with labels, in order."""
    from graphix.compression.distillation import model_batch

    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    return [model_batch(records[i:i + batch_size], use_graph)
            for i in range(0, len(records), batch_size)]


def count_parameters(model) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def save_compressed(model, tokenizer, out: str | Path, source: Path | None,
                    summary: dict) -> Path:
    """Write the model, its tokenizer, the source's ``training.json`` and a summary to `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if source is not None and (Path(source) / "training.json").is_file():
        shutil.copyfile(Path(source) / "training.json", out / "training.json")
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logger.info("saved the compressed model to %s", out)
    return out
