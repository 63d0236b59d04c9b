"""``graphix graph``: draw the link graph of one question over one SQLite database."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw the question-schema link graph of one question as an image"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help="the question to link")
    parser.add_argument("--db", type=Path, required=True, help="SQLite database file")
    parser.add_argument("--out", type=Path, required=True,
                        help="image file to write; the suffix picks the format (.png, .svg, .pdf)")
    parser.add_argument("--schema-edges", action="store_true",
                        help="also draw schema-only edges (has, pk, same table, keys, *); by "
                             "default only question edges are drawn")
    parser.add_argument("--no-values", action="store_true",
                        help="skip value linking, which builds or loads the value index")


IMAGE_SUFFIXES = (".png", ".svg", ".pdf")


def run(args: argparse.Namespace) -> int:
    from graphix.api import Text2SQL
    from graphix.drawing import draw_graph
    from graphix.errors import InputError
    from graphix.graph import build_graph
    from graphix.linking import SchemaLinker
    from graphix.schema import Schema
    from graphix.value_index import ValueIndex

    question = Text2SQL.check_question(args.question)
    if args.out.suffix.lower() not in IMAGE_SUFFIXES or args.out.is_dir():
        raise InputError(f"--out {args.out} must be an image file name ending in "
                         + ", ".join(IMAGE_SUFFIXES))
    schema = Schema.from_sqlite(args.db)
    index = None if args.no_values else ValueIndex.load_or_build(args.db, schema)
    linking = SchemaLinker(schema, index).link(question)
    graph = build_graph(linking, schema)
    try:
        draw_graph(graph, args.out, schema_edges=args.schema_edges, title=question)
    except OSError as error:
        raise InputError(f"cannot write {args.out}: {error.strerror}") from None
    print(f"wrote {args.out} ({graph.num_nodes} nodes, {graph.edge_type.numel()} edges)")
    return 0
