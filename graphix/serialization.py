"""Model input and target text, and the map from graph nodes to subword spans.

Input text (the PICARD layout that Graphix uses)::

    question | db_id | table : column ( value , value ) , column | table : ...

Table and column names are the database identifiers in lowercase, so that the decoder can
copy them into SQL; the values are the cell values that value linking found (at most k per
column). Each graph node reads a character span of this text: a question token its own
characters, a table or column its name, and the ``*`` column, which the layout does not
print, the ``db_id``. `encode` turns character spans into subword spans with the fast
tokenizer's offset mapping, so it works for any Hugging Face fast tokenizer.

Target text is ``db_id | sql`` with the SQL normalized by `normalize_sql`;
`postprocess_sql` turns decoded text back into SQL that SQLite runs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import torch

from graphix.graph import Graph, NodeKind
from graphix.linking import Linking
from graphix.schema import Schema

logger = logging.getLogger(__name__)

SEPARATOR = " | "


@dataclass(frozen=True)
class SerializationConfig:
    """Lengths of the encoded input and target."""

    max_input_tokens: int = 512
    """Maximum input length in subword tokens, special tokens included. Schema items past it are cut."""
    max_target_tokens: int = 256
    """Maximum target length in subword tokens. Longer targets are truncated."""


@dataclass
class SerializedInput:
    """Input text with one character span ``[start, end)`` per graph node."""

    text: str
    char_spans: list[tuple[int, int]]
    """Per node of the graph; (-1, -1) for a table or column left out of the text."""


@dataclass
class EncodedInput:
    """Subword ids and the graph restricted to the nodes that survived truncation."""

    text: str
    input_ids: list[int]
    node_spans: torch.Tensor
    """[N, 2] long: subword ``[start, end)`` of each node in `input_ids`, end > start."""
    graph: Graph
    cut_items: int
    """Tables and columns left out to fit `SerializationConfig.max_input_tokens`."""


# ---------------------------------------------------------------------- input text

def serialize(linking: Linking, schema: Schema, graph: Graph,
              keep: set[tuple[str, int]] | None = None) -> SerializedInput:
    """Write the input text of one example; `keep` limits the tables and columns shown.

    `keep` contains ``("table", position)`` and ``("column", spider_index)`` items; None
    shows the whole schema. A column is shown only when its table is kept too.
    """
    parts: list[str] = []
    length = 0

    def emit(piece: str) -> tuple[int, int]:
        nonlocal length
        start = length
        parts.append(piece)
        length += len(piece)
        return start, length

    emit(linking.question)
    emit(SEPARATOR)
    db_span = emit(schema.db_id)
    table_spans: dict[int, tuple[int, int]] = {}
    column_spans: dict[int, tuple[int, int]] = {0: db_span}

    first_column = 1
    for position, table in enumerate(schema.tables):
        indices = range(first_column, first_column + len(table.columns))
        first_column += len(table.columns)
        if keep is not None and ("table", position) not in keep:
            continue
        emit(SEPARATOR)
        table_spans[position] = emit(table.name.lower())
        shown = [i for i in indices if keep is None or ("column", i) in keep]
        for number, index in enumerate(shown):
            emit(" : " if number == 0 else " , ")
            column_spans[index] = emit(schema.columns[index].name.lower())
            values = linking.column_values.get(index)
            if values:
                emit(" ( " + " , ".join(values) + " )")

    char_spans = []
    for kind, index in zip(graph.node_kind, graph.node_index):
        if kind == NodeKind.QUESTION:
            token = linking.tokens[index]
            char_spans.append((token.start, token.end))
        elif kind == NodeKind.TABLE:
            char_spans.append(table_spans.get(index, (-1, -1)))
        else:
            char_spans.append(column_spans.get(index, (-1, -1)))
    return SerializedInput("".join(parts), char_spans)


def align_spans(offsets: np.ndarray, char_spans: np.ndarray) -> np.ndarray:
    """Map character spans to subword spans through a fast tokenizer's offset mapping.

    `offsets` is [T, 2] (character start, end of each subword; special tokens have
    start == end) and `char_spans` is [N, 2]. A subword belongs to a node when their
    character ranges overlap. Returns [N, 2] subword ``[start, end)`` with -1 for nodes
    that no subword covers, which happens only to text cut off by truncation, or to
    characters the tokenizer dropped (then the node gets the next subword instead).
    """
    starts, ends = offsets[:, 0], offsets[:, 1]
    real = ends > starts
    lo, hi = char_spans[:, :1], char_spans[:, 1:]
    overlap = (starts[None, :] < hi) & (ends[None, :] > lo) & real[None, :]  # [N, T]
    has = overlap.any(axis=1)
    first = overlap.argmax(axis=1)
    last = overlap.shape[1] - 1 - overlap[:, ::-1].argmax(axis=1)
    spans = np.stack([first, last + 1], axis=1)
    spans[~has] = -1

    # A node inside the text whose characters no subword kept gets the following subword.
    text_end = ends[real].max() if real.any() else 0
    for node in np.flatnonzero(~has & (char_spans[:, 0] >= 0) & (char_spans[:, 0] < text_end)):
        after = np.flatnonzero(real & (ends > char_spans[node, 0]))
        spans[node] = (after[0], after[0] + 1)
    return spans


def encode(linking: Linking, schema: Schema, graph: Graph, tokenizer,
           config: SerializationConfig = SerializationConfig()) -> EncodedInput:
    """Serialize and tokenize one example, cutting schema items that do not fit.

    Linked tables and columns are kept first, then the key columns of their tables, then
    their other columns, then the rest of the schema in order. Nodes whose text is cut
    are removed from the graph together with their edges.
    """
    return encode_many([(linking, schema, graph)], tokenizer, config)[0]


def encode_many(items: list[tuple[Linking, Schema, Graph]], tokenizer,
                config: SerializationConfig = SerializationConfig()) -> list[EncodedInput]:
    """`encode` for many examples, with one batched tokenizer call for inputs that fit."""
    serialized = [serialize(linking, schema, graph) for linking, schema, graph in items]
    batch = tokenizer([entry.text for entry in serialized], return_offsets_mapping=True,
                      add_special_tokens=True)
    encoded = []
    for number, (linking, schema, graph) in enumerate(items):
        ids = batch["input_ids"][number]
        if len(ids) <= config.max_input_tokens:
            offsets = np.asarray(batch["offset_mapping"][number], dtype=np.int64).reshape(-1, 2)
            encoded.append(_finish(serialized[number], list(ids), offsets, graph, 0))
        else:
            encoded.append(_encode_cut(linking, schema, graph, tokenizer, config))
    return encoded


def _encode_cut(linking: Linking, schema: Schema, graph: Graph, tokenizer,
                config: SerializationConfig) -> EncodedInput:
    """Encode an example whose full input is too long: choose items, then cut the rest."""
    keep = _choose_items(linking, schema, tokenizer, config.max_input_tokens)
    serialized = serialize(linking, schema, graph, keep)
    encoding = _tokenize(tokenizer, serialized.text, config.max_input_tokens)
    cut_items = len(schema.tables) + len(schema.columns) - 1 - len(keep)
    logger.debug("%s: cut %d schema items to fit %d tokens", schema.db_id, cut_items,
                 config.max_input_tokens)
    if encoding["truncated"]:
        # The budget counts items tokenized apart; joined text can tokenize longer.
        logger.debug("%s: input still over %d tokens, its end is cut", schema.db_id,
                     config.max_input_tokens)
    return _finish(serialized, encoding["input_ids"], encoding["offsets"], graph, cut_items)


def _finish(serialized: SerializedInput, input_ids: list[int], offsets: np.ndarray, graph: Graph,
            cut_items: int) -> EncodedInput:
    """Align node spans and drop the nodes that no subword covers."""
    char_spans = np.asarray(serialized.char_spans, dtype=np.int64).reshape(-1, 2)
    spans = align_spans(offsets, char_spans)
    alive = np.flatnonzero(spans[:, 0] >= 0)
    if len(alive) < graph.num_nodes:
        graph = graph.subgraph(alive.tolist())
        spans = spans[alive]
    return EncodedInput(serialized.text, input_ids, torch.as_tensor(spans), graph, cut_items)


def _tokenize(tokenizer, text: str, max_tokens: int) -> dict:
    """Tokenize `text`; past `max_tokens` the tokenizer's own truncation cuts the end."""
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    truncated = len(encoding["input_ids"]) > max_tokens
    if truncated:
        encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True,
                             truncation=True, max_length=max_tokens)
    offsets = np.asarray(encoding["offset_mapping"], dtype=np.int64).reshape(-1, 2)
    return {"input_ids": list(encoding["input_ids"]), "offsets": offsets, "truncated": truncated}


def _choose_items(linking: Linking, schema: Schema, tokenizer,
                  max_tokens: int) -> set[tuple[str, int]]:
    """Pick the tables and columns to show, by priority, within the token budget."""
    linked_tables, linked_columns = linking.linked_items()
    linked_tables |= {schema.column_table_index(c) for c in linked_columns if c}
    keys = set(schema.primary_key_indices)
    keys.update(i for pair in schema.foreign_key_pairs for i in pair)

    def tier(index: int) -> int:
        table = schema.column_table_index(index)
        if index in linked_columns:
            return 0
        if table in linked_tables:
            return 1 if index in keys else 2
        return 3

    columns = sorted(range(1, len(schema.columns)), key=lambda i: (tier(i), i))
    # Linked tables come first even when none of their columns is linked.
    first_column = {}
    for index in range(len(schema.columns) - 1, 0, -1):
        first_column[schema.column_table_index(index)] = index
    table_first = [first_column[t] for t in sorted(linked_tables) if t in first_column]
    order = list(dict.fromkeys(table_first + columns))

    column_texts = []
    for index in order:
        text = " , " + schema.columns[index].name.lower()
        values = linking.column_values.get(index)
        if values:
            text += " ( " + " , ".join(values) + " )"
        column_texts.append(text)
    table_texts = [SEPARATOR + table.name.lower() + " :" for table in schema.tables]
    lengths = tokenizer(column_texts + table_texts + [linking.question + SEPARATOR + schema.db_id],
                        add_special_tokens=False)["input_ids"]
    column_cost = [len(ids) for ids in lengths[: len(order)]]
    table_cost = [len(ids) for ids in lengths[len(order): len(order) + len(schema.tables)]]
    budget = max_tokens - tokenizer.num_special_tokens_to_add(pair=False) - len(lengths[-1])

    keep: set[tuple[str, int]] = set()
    for index, cost in zip(order, column_cost):
        table = schema.column_table_index(index)
        if ("table", table) not in keep:
            cost += table_cost[table]
        if cost <= budget:
            keep.add(("column", index))
            keep.add(("table", table))
            budget -= cost
    return keep


# ---------------------------------------------------------------------- target SQL

_SQL_TOKEN = re.compile(
    r"""
    (?P<single>'(?:[^']|'')*')
  | (?P<open>'.*)
  | (?P<double>"(?:[^"]|"")*")
  | (?P<backtick>`[^`]*`)
  | (?P<name>\d*[^\W\d][\w$]*(?:\s*\.\s*(?:\d*[^\W\d][\w$]*|\*|"(?:[^"]|"")*"|`[^`]*`))*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<op><=|>=|!=|<>|==|\|\||[-+*/%<>=(),;.|])
  | (?P<space>\s+)
  | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_PLAIN_NAME = re.compile(r"[^\W\d]\w*")
_SPLIT_OPERATORS = re.compile(r"([<>!])\s+([=>])")


def _sql_tokens(sql: str) -> list[tuple[str, str]]:
    return [(m.lastgroup, m.group()) for m in _SQL_TOKEN.finditer(sql) if m.lastgroup != "space"]


def normalize_sql(sql: str, schema: Schema | None = None) -> str:
    """Return `sql` in the deterministic target form.

    Lowercase outside string literals, one space between tokens, ``(``, ``)``, ``,`` and
    operators as tokens of their own, qualified names such as ``t1.name`` as one token,
    string literals in single quotes, no trailing semicolon. A double-quoted token is an
    identifier when `schema` has such a column in a table that the query names (that is
    how SQLite resolves it), else a string literal.

    >>> normalize_sql('SELECT T1.Name, count(*) FROM singer AS T1 WHERE T1.Country = "It\\'s";')
    "select t1.name , count ( * ) from singer as t1 where t1.country = 'It''s'"
    """
    tokens = _sql_tokens(sql)
    scope = _columns_in_scope(tokens, schema)
    out = []
    for kind, text in tokens:
        if kind == "single":
            out.append(text)
        elif kind == "open":
            out.append(text.rstrip() + "'")
        elif kind == "double":
            out.append(_double_quoted(text, scope))
        elif kind == "name":
            out.append(re.sub(r"\s+", "", _lower_outside_quotes(text)))
        else:
            out.append(text.lower())
    while out and out[-1] == ";":
        out.pop()
    return " ".join(out)


def _lower_outside_quotes(text: str) -> str:
    return re.sub(r'"(?:[^"]|"")*"|`[^`]*`|[^"`]+', lambda m: m.group().lower(), text)


def _columns_in_scope(tokens: list[tuple[str, str]], schema: Schema | None) -> set[str]:
    """Return lowercase names of the columns of every table the query names, and aliases."""
    if schema is None:
        return set()
    scope = set()
    previous = ""
    for kind, text in tokens:
        if kind == "name":
            table = schema.table(text)
            if table is not None:
                scope.update(column.name.lower() for column in table.columns)
            if previous == "as":
                scope.add(text.lower())
        previous = text.lower()
    return scope


def _double_quoted(text: str, scope: set[str]) -> str:
    inner = text[1:-1].replace('""', '"')
    if inner.lower() in scope:
        return inner.lower() if _PLAIN_NAME.fullmatch(inner) else text.lower()
    return "'" + inner.replace("'", "''") + "'"


def target_text(db_id: str, sql: str, schema: Schema | None = None) -> str:
    """Return the decoder target ``db_id | normalized sql``."""
    return f"{db_id}{SEPARATOR}{normalize_sql(sql, schema)}"


_PREFIX = re.compile(r"\s*[\w.\-]+\s*\|(?!\|)\s*(.*)", re.DOTALL)


# An aggregate call with a flat argument, as the decoder spaces it: ``count ( * )``.
_AGGREGATE_CALL = re.compile(r"\b(count|sum|avg|min|max) \( ([^()]*?) \)", re.IGNORECASE)


def _tighten(text: str) -> str:
    """Join split operators and write aggregate calls and commas as people do."""
    text = _SPLIT_OPERATORS.sub(r"\1\2", text)
    text = _AGGREGATE_CALL.sub(r"\1(\2)", text)
    return text.replace(" , ", ", ")


def postprocess_sql(decoded: str) -> str:
    """Turn decoded target text into runnable SQL: drop ``db_id |`` and repair spacing.

    >>> postprocess_sql("concert_singer | select t1 . name from singer as t1 where age > = 20")
    'select t1.name from singer as t1 where age >= 20'
    >>> postprocess_sql("shop | select count ( * ) , max ( distinct price ) from item")
    'select count(*), max(distinct price) from item'
    """
    match = _PREFIX.match(decoded)
    sql = match.group(1) if match else decoded
    out = []
    for kind, text in _sql_tokens(sql):
        if kind == "name":
            text = re.sub(r"\s+", "", _lower_outside_quotes(text))
        elif kind == "open":
            text = text.rstrip() + "'"
        out.append(text)
    joined = " ".join(out)
    # Operators a decoder split into two tokens, outside string literals.
    pieces = re.split(r"('(?:[^']|'')*')", joined)
    pieces[::2] = [_tighten(piece) for piece in pieces[::2]]
    return "".join(pieces).strip().rstrip(";").strip()
