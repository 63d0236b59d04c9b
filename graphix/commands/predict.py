"""``graphix predict``: write one SQL prediction per Spider example for ``graphix evaluate``."""

from __future__ import annotations

import argparse

from graphix.commands._decoding import add_decoding_arguments

HELP = "predict SQL for a Spider split; writes one sql<TAB>db_id line per example, in file order"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--spider-dir", help="Spider folder (default: $GRAPHIX_SPIDER_DIR)")
    parser.add_argument("--split", default="dev", choices=["dev", "train"],
                        help="split to predict (default: dev)")
    parser.add_argument("--out", required=True, help="prediction file to write")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--beams", type=int, default=1, help="beam width (default: 1)")
    add_decoding_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="questions decoded together (default: 16)")
    parser.add_argument("--limit", type=int, help="predict only the first N examples")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    from pathlib import Path

    from tqdm.auto import tqdm

    from graphix.api import Text2SQL
    from graphix.data import resolve_spider_dir
    from graphix.errors import InputError

    if args.beams < 1:
        raise InputError(f"--beams must be at least 1, got {args.beams}")
    spider = resolve_spider_dir(args.spider_dir)
    model = Text2SQL.from_pretrained(args.model)
    examples, schemas = _split_examples(spider, args.split)
    if args.limit:
        examples = examples[: args.limit]
    for number, example in enumerate(examples):
        try:
            model.check_usable_question(example.question)
        except InputError as error:
            raise InputError(f"{args.split} example {number} ({example.db_id}): {error}") from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")

    lines = []
    step = args.batch_size
    for start in tqdm(range(0, len(examples), step), desc="predict", unit="batch"):
        chunk = examples[start:start + step]
        answers = model.ask_many([e.question for e in chunk],
                                 [schemas[e.db_id] for e in chunk],
                                 num_beams=args.beams, constrained=args.constrained,
                                 execution_guided=args.execution_guided, execute=False,
                                 batch_size=step)
        lines.extend(f"{' '.join(a.sql.split()) or 'SELECT'}\t{e.db_id}"
                     for a, e in zip(answers, chunk))
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(temporary, out)
    print(json.dumps({"predictions": len(lines), "out": str(out)}))
    return 0


def _split_examples(spider, split: str):
    """Return every example of `split` in file order, and a schema for each database.

    Examples whose database file is missing keep their place, so the prediction file
    lines up with Spider's gold file. Their schema comes from tables.json alone, so no
    cell values are linked for them.
    """
    import dataclasses

    from graphix.data import SPLIT_FILES, database_path, load_examples
    from graphix.errors import SchemaError
    from graphix.schema import Schema

    tables = Schema.load_spider_tables(spider / "tables.json")
    examples = [e for name in SPLIT_FILES[split] for e in load_examples(spider / name)]
    schemas = {}
    for db_id in {e.db_id for e in examples}:
        if db_id not in tables:
            raise SchemaError(f"{split}: database {db_id!r} is not in {spider / 'tables.json'}; "
                              "add its schema there")
        path = database_path(spider, db_id)
        schemas[db_id] = dataclasses.replace(tables[db_id], path=path if path.is_file() else None)
    return examples, schemas
