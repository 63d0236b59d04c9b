"""Examples and Spider splits.

A Spider folder contains ``tables.json``, ``dev.json``, ``train_spider.json``,
``train_others.json`` and ``database/<db_id>/<db_id>.sqlite``. The ``train`` split is
``train_spider.json`` followed by ``train_others.json``. Examples whose database file is
missing cannot be linked to values or executed, so loading skips them and logs how many.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from graphix.errors import InputError, SchemaError
from graphix.schema import Schema

logger = logging.getLogger(__name__)

SPLIT_FILES = {
    "dev": ("dev.json",),
    "train": ("train_spider.json", "train_others.json"),
}


@dataclass(frozen=True)
class Example:
    """One question about one database, with its gold SQL when known."""

    question: str
    db_id: str
    query: str | None = None


@dataclass
class SpiderSplit:
    """The examples of one split and the schemas of their databases."""

    name: str
    examples: list[Example]
    schemas: dict[str, Schema]
    """Schemas by db_id, each with `Schema.path` set to its SQLite file."""
    skipped: int
    """Examples left out because their database file is missing."""


def resolve_spider_dir(spider_dir: str | Path | None = None) -> Path:
    """Return `spider_dir`, else ``$GRAPHIX_SPIDER_DIR``; raise InputError if neither is usable."""
    candidate = spider_dir if spider_dir is not None else os.environ.get("GRAPHIX_SPIDER_DIR")
    if candidate is None:
        raise InputError("no Spider folder given: pass --spider-dir or set GRAPHIX_SPIDER_DIR")
    path = Path(candidate)
    if not (path / "tables.json").is_file():
        raise InputError(f"Spider folder {path} has no tables.json; pass the folder that contains "
                         "tables.json, dev.json and database/")
    return path


def database_path(spider_dir: str | Path, db_id: str) -> Path:
    """Return where Spider keeps the SQLite file of `db_id` (it may not exist)."""
    return Path(spider_dir) / "database" / db_id / f"{db_id}.sqlite"


def load_examples(path: str | Path) -> list[Example]:
    """Read a Spider-format JSON list of ``{question, db_id, query}`` objects."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"examples file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"examples file {path} is not valid JSON: {error}") from None
    if not isinstance(entries, list):
        raise InputError(f"examples file {path} must contain a JSON list of examples")
    examples = []
    for number, entry in enumerate(entries):
        fields = (entry.get("question"), entry.get("db_id")) if isinstance(entry, dict) else ()
        if len(fields) != 2 or not all(isinstance(value, str) for value in fields):
            raise InputError(f"{path}: entry {number} needs the string fields question and db_id")
        query = entry.get("query")
        try:
            "".join(fields).encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"{path}: entry {number} contains a lone surrogate escape "
                             "(such as \\ud800); write its text as valid UTF-8") from None
        examples.append(Example(fields[0], fields[1], query if isinstance(query, str) else None))
    return examples


def load_spider_split(spider_dir: str | Path | None, split: str) -> SpiderSplit:
    """Load the ``dev`` or ``train`` split, skipping examples whose database is missing."""
    if split not in SPLIT_FILES:
        raise InputError(f"unknown split {split!r}; choose one of {', '.join(SPLIT_FILES)}")
    root = resolve_spider_dir(spider_dir)
    all_schemas = Schema.load_spider_tables(root / "tables.json")

    examples: list[Example] = []
    for file_name in SPLIT_FILES[split]:
        examples.extend(load_examples(root / file_name))

    schemas: dict[str, Schema] = {}
    kept, missing = [], {}
    for example in examples:
        if example.db_id not in schemas and example.db_id not in missing:
            if example.db_id not in all_schemas:
                raise SchemaError(f"{split}: database {example.db_id!r} is not in "
                                  f"{root / 'tables.json'}")
            path = database_path(root, example.db_id)
            if path.is_file():
                schemas[example.db_id] = dataclasses.replace(all_schemas[example.db_id], path=path)
            else:
                missing[example.db_id] = 0
        if example.db_id in missing:
            missing[example.db_id] += 1
        else:
            kept.append(example)

    skipped = sum(missing.values())
    if skipped:
        logger.info("%s: skipped %d examples whose database file is missing (%s)", split,
                    skipped, ", ".join(f"{db} {count}" for db, count in sorted(missing.items())))
    return SpiderSplit(split, kept, schemas, skipped)
