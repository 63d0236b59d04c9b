"""Input text, node spans for several tokenizers, truncation, and target SQL round trips."""

from __future__ import annotations

import logging
import sqlite3

import numpy as np
import pytest

from fixtures.builders import (
    create_database,
    train_byte_level_bpe,
    train_sentencepiece,
    train_word_level,
)
from graphix.graph import NodeKind, build_graph
from graphix.linking import SchemaLinker
from graphix.schema import Schema
from graphix.serialization import (
    SerializationConfig,
    align_spans,
    encode,
    normalize_sql,
    postprocess_sql,
    serialize,
    target_text,
)
from graphix.value_index import ValueIndex

BAND_DB = [
    "CREATE TABLE band (band_id INTEGER PRIMARY KEY, genre TEXT)",
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, "
    "band_id INTEGER REFERENCES band(band_id))",
    "INSERT INTO band VALUES (1, 'rock'), (2, 'jazz')",
    "INSERT INTO singer VALUES (1, 'Ann', 'France', 1), (2, 'Bob', 'Chile', 2), "
    "(3, 'Cy', 'name', 2)",
]


@pytest.fixture
def band(tmp_path):
    path = create_database(tmp_path / "band.sqlite", BAND_DB)
    schema = Schema.from_sqlite(path)
    index = ValueIndex.load_or_build(path, schema, cache_dir=tmp_path / "cache")
    return path, schema, SchemaLinker(schema, index)


@pytest.fixture(scope="module", params=["sentencepiece", "byte_level_bpe", "word_level"])
def tokenizer(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "sentencepiece":
        return train_sentencepiece(folder)
    if request.param == "byte_level_bpe":
        return train_byte_level_bpe(folder)
    return train_word_level(folder, ["|", ":", ",", "(", ")"])


# ---------------------------------------------------------------------- input text


def test_serialize_text_and_char_spans(band):
    _, schema, linker = band
    linking = linker.link("Which singers from France play rock?")
    graph = build_graph(linking, schema)
    serialized = serialize(linking, schema, graph)
    assert serialized.text == (
        "Which singers from France play rock? | band | band : band_id , genre ( rock ) "
        "| singer : singer_id , name , country ( France ) , band_id"
    )
    texts = [serialized.text[a:b] for a, b in serialized.char_spans]
    # Question tokens, then tables, then columns; * reads the db_id.
    assert texts[:8] == ["Which", "singers", "from", "France", "play", "rock", "?", "band"]
    assert texts[8:] == ["singer", "band", "band_id", "genre", "singer_id", "name", "country",
                         "band_id"]
    assert serialized.char_spans[9] == (39, 43)


def test_spans_cover_their_nodes(band, tokenizer):
    _, schema, linker = band
    linking = linker.link("How many singers from France play jazz or rock?")
    graph = build_graph(linking, schema)
    encoded = encode(linking, schema, graph, tokenizer)
    serialized = serialize(linking, schema, graph)
    offsets = np.asarray(tokenizer(serialized.text, return_offsets_mapping=True)["offset_mapping"])

    assert encoded.graph.num_nodes == graph.num_nodes
    assert encoded.node_spans.shape == (graph.num_nodes, 2)
    assert encoded.input_ids == tokenizer(serialized.text)["input_ids"]
    for node, (start, end) in enumerate(encoded.node_spans.tolist()):
        assert end > start
        char_start, char_end = serialized.char_spans[node]
        covered = set()
        for a, b in offsets[start:end]:
            assert a < char_end, (node, start, end)
            assert b > char_start, (node, start, end)
            covered.update(range(a, b))
        needed = {c for c in range(char_start, char_end) if not serialized.text[c].isspace()}
        assert needed <= covered, graph.node_text[node]


def test_align_spans_by_hand():
    # Subwords: "ab" "c" " d" and a special token; nodes: "abc", "c", "d", cut text.
    offsets = np.array([[0, 2], [2, 3], [3, 5], [0, 0]])
    spans = align_spans(offsets, np.array([[0, 3], [2, 3], [4, 5], [9, 12]]))
    assert spans.tolist() == [[0, 2], [1, 2], [2, 3], [-1, -1]]


def test_align_spans_dropped_characters_get_next_subword():
    # The tokenizer dropped characters 2..4; a node there takes the next subword.
    offsets = np.array([[0, 2], [4, 6]])
    spans = align_spans(offsets, np.array([[2, 3]]))
    assert spans.tolist() == [[1, 2]]


# ---------------------------------------------------------------------- truncation

WIDE_DB = [
    "CREATE TABLE t_a (a_id INTEGER PRIMARY KEY, x TEXT, y TEXT)",
    "CREATE TABLE t_b (b_id INTEGER PRIMARY KEY, p TEXT, q TEXT)",
    "CREATE TABLE t_c (c_id INTEGER PRIMARY KEY, name TEXT, r TEXT, s TEXT)",
]


@pytest.mark.parametrize("max_tokens, kept, cut", [
    # Words: "show name | wide" = 4, </s> = 1. Estimated costs: a table's first column 2 + its
    # header "| t_c :" 3, every other column 2 (" , name").  Order: t_c.c_id (first column of
    # the linked table), t_c.name (linked), t_c.r, t_c.s, then t_a and t_b.
    # Kept schema nodes are listed in graph order: tables, *, columns.
    (14, ["t_c", "*", "c_id", "name", "r"], 9),
    (16, ["t_c", "*", "c_id", "name", "r", "s"], 8),
    (21, ["t_a", "t_c", "*", "a_id", "c_id", "name", "r", "s"], 6),
    (100, ["t_a", "t_b", "t_c", "*", "a_id", "x", "y", "b_id", "p", "q", "c_id", "name", "r", "s"],
     0),
])
def test_truncation_keeps_linked_items_first(tmp_path, caplog, max_tokens, kept, cut):
    path = create_database(tmp_path / "wide.sqlite", WIDE_DB)
    schema = Schema.from_sqlite(path)
    tokenizer = train_word_level(tmp_path / "tok", ["show", "name", "|", ":", ","])
    linking = SchemaLinker(schema).link("show name")
    graph = build_graph(linking, schema)

    with caplog.at_level(logging.DEBUG, logger="graphix.serialization"):
        encoded = encode(linking, schema, graph, tokenizer, SerializationConfig(max_tokens))
    assert len(encoded.input_ids) <= max_tokens
    assert encoded.cut_items == cut
    if cut:
        assert f"cut {cut} schema items" in caplog.text

    schema_nodes = [text.split(".")[-1] for kind, text in
                    zip(encoded.graph.node_kind, encoded.graph.node_text) if kind != NodeKind.QUESTION]
    assert schema_nodes == kept
    assert encoded.node_spans.shape == (encoded.graph.num_nodes, 2)
    assert int(encoded.graph.edge_index.max()) < encoded.graph.num_nodes
    for start, end in encoded.node_spans.tolist():
        assert 0 <= start < end <= len(encoded.input_ids)


def test_hard_truncation_removes_cut_question_nodes(tmp_path):
    path = create_database(tmp_path / "wide.sqlite", WIDE_DB)
    schema = Schema.from_sqlite(path)
    tokenizer = train_word_level(tmp_path / "tok", ["a"])
    linking = SchemaLinker(schema).link("a " * 20)
    graph = build_graph(linking, schema)
    encoded = encode(linking, schema, graph, tokenizer, SerializationConfig(max_input_tokens=8))
    assert len(encoded.input_ids) == 8
    # 7 words survive before </s>; every schema node and 13 question tokens are cut.
    assert encoded.graph.num_nodes == 7
    assert set(encoded.graph.node_kind) == {NodeKind.QUESTION}
    assert encoded.node_spans.tolist() == [[i, i + 1] for i in range(7)]


# ---------------------------------------------------------------------- target SQL


@pytest.mark.parametrize("sql, expected", [
    ("SELECT count(*) FROM singer", "select count ( * ) from singer"),
    ("SELECT T1.Name FROM Singer AS T1 WHERE T1.Country = \"France\";",
     "select t1.name from singer as t1 where t1.country = 'France'"),
    ("SELECT name FROM singer WHERE name = \"O'Neil\"",
     "select name from singer where name = 'O''Neil'"),
    ("SELECT name FROM singer WHERE name LIKE '%Ann%'",
     "select name from singer where name like '%Ann%'"),
    ("select  a>=1 AND b!=2 or c<>3 ;;", "select a >= 1 and b != 2 or c <> 3"),
    ("SELECT T1 . name,avg(age) FROM singer t1", "select t1.name , avg ( age ) from singer t1"),
    ("SELECT 2010_Population FROM t WHERE x = 1.5e3", "select 2010_population from t where x = 1.5e3"),
])
def test_normalize_sql_cases(sql, expected):
    assert normalize_sql(sql) == expected


def test_double_quotes_resolve_like_sqlite(band):
    path, schema, _ = band
    # singer has a column "country", so SQLite reads "country" as that column.
    sql = 'SELECT name FROM singer WHERE country = "country"'
    assert normalize_sql(sql, schema) == "select name from singer where country = country"
    # band has no column "name": "name" is a string literal there.
    sql_literal = 'SELECT count(*) FROM band WHERE genre = "name"'
    assert normalize_sql(sql_literal, schema) == \
        "select count ( * ) from band where genre = 'name'"
    # Without a schema every double-quoted token is a literal.
    assert normalize_sql(sql) == "select name from singer where country = 'country'"

    connection = sqlite3.connect(path)
    for original in (sql, sql_literal, 'SELECT "name" FROM singer WHERE name != "name"'):
        restored = postprocess_sql(target_text(schema.db_id, original, schema))
        assert connection.execute(restored).fetchall() == connection.execute(original).fetchall()
    connection.close()


def test_target_text_prefix():
    assert target_text("band", "SELECT * FROM band;") == "band | select * from band"


@pytest.mark.parametrize("decoded, expected", [
    ("band | select * from band", "select * from band"),
    ("concert_singer | select t1 . name from singer as t1 where age > = 20",
     "select t1.name from singer as t1 where age >= 20"),
    ("x | select a from t where b = 'x > = y' and c ! = 1 and d < > 2",
     "select a from t where b = 'x > = y' and c != 1 and d <> 2"),
    ("select a || b from t", "select a || b from t"),
    ("db | select name from t where name = 'unfinished", "select name from t where name = 'unfinished'"),
    ("db | select count ( * ) from t ;", "select count(*) from t"),
])
def test_postprocess_sql_cases(decoded, expected):
    assert postprocess_sql(decoded) == expected


@pytest.mark.slow
@pytest.mark.spider
def test_spider_round_trip_executes_the_same(spider):
    """normalize -> post-process keeps the result of every dev and train gold query."""
    from graphix.data import load_spider_split
    from graphix.errors import SQLExecutionError
    from graphix.execution import ReadOnlyDatabase

    checked, failures, unrunnable = 0, [], 0
    for split in ("dev", "train"):
        data = load_spider_split(spider, split)
        databases = {}
        for example in data.examples:
            schema = data.schemas[example.db_id]
            database = databases.setdefault(example.db_id, ReadOnlyDatabase(schema.path))
            try:
                gold = database.execute(example.query, timeout_s=30, max_rows=None).rows
            except SQLExecutionError:
                unrunnable += 1
                continue
            restored = postprocess_sql(target_text(example.db_id, example.query, schema))
            checked += 1
            try:
                rows = database.execute(restored, timeout_s=30, max_rows=None).rows
            except SQLExecutionError as error:
                failures.append((example.query, restored, str(error)))
                continue
            if rows != gold:
                failures.append((example.query, restored, "different rows"))
        for database in databases.values():
            database.close()
    assert checked > 9000
    assert unrunnable < 10
    assert failures == []
