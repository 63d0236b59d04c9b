"""Property-based tests of SQL normalization, serialization, evaluation and parsing.

Each property runs ``GRAPHIX_FUZZ_EXAMPLES`` generated inputs (default 60), so the
default test run stays short. ``tests/fuzz/run_fuzz.py`` runs the same properties with
thousands of inputs.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.builders import create_database, train_sentencepiece
from graphix.errors import GraphixError, SchemaError
from graphix.execution import ReadOnlyDatabase
from graphix.graph import build_graph
from graphix.linking import SchemaLinker
from graphix.schema import Column, ForeignKey, Schema, Table, natural_name
from graphix.serialization import (
    SerializationConfig,
    encode,
    normalize_sql,
    postprocess_sql,
    serialize,
    target_text,
)

EXAMPLES = int(os.environ.get("GRAPHIX_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

SHOP_DB = [
    "CREATE TABLE Maker (maker_id INTEGER PRIMARY KEY, Name TEXT, country TEXT)",
    "CREATE TABLE Product (product_id INTEGER PRIMARY KEY, title TEXT, Price REAL, "
    "maker_id INTEGER REFERENCES Maker(maker_id))",
    "INSERT INTO Maker VALUES (1, 'Acme', 'France'), (2, 'Bolt''s', 'Chile'), "
    "(3, 'select', 'France'), (4, NULL, 'Peru')",
    "INSERT INTO Product VALUES (1, 'Pen', 1.5, 1), (2, 'Ink \"Blue\"', 3.0, 1), "
    "(3, 'Pad', 2.25, 2), (4, 'It''s', 9.0, 3), (5, 'PEN', 1.5, NULL)",
]
COLUMNS = {"maker": ["maker_id", "Name", "country"],
           "product": ["product_id", "title", "Price", "maker_id"]}
VALUES = ["'France'", "'Bolt''s'", "'select'", "'It''s'", "'PEN'", "'Pen'", "\"Chile\"", "1",
          "1.5", "3", "-2", "'a b  c'", "'%e%'"]


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    path = create_database(tmp_path_factory.mktemp("shop") / "shop.sqlite", SHOP_DB)
    schema = Schema.from_sqlite(path)
    with ReadOnlyDatabase(path) as database:
        yield schema, database


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_sentencepiece(tmp_path_factory.mktemp("spm"))


# ---------------------------------------------------------------------------- SQL strategies


def _spaced(tokens: list[str], draw) -> str:
    """Join tokens with random runs of spaces and tabs, as people and models write SQL."""
    gaps = draw(st.lists(st.sampled_from([" ", "  ", "\t", "\n "]), min_size=len(tokens),
                         max_size=len(tokens)))
    return "".join(token + gap for token, gap in zip(tokens, gaps)).strip()


def _cased(word: str, draw) -> str:
    return draw(st.sampled_from([word, word.upper(), word.lower(), word.title()]))


@st.composite
def select_queries(draw) -> str:
    """SELECT queries over the shop schema that SQLite runs without error."""
    table = draw(st.sampled_from(sorted(COLUMNS)))
    columns = COLUMNS[table]
    kw = lambda word: _cased(word, draw)  # noqa: E731 - a local shorthand
    picked = draw(st.lists(st.sampled_from(columns), min_size=1, max_size=3, unique=True))
    aggregate = draw(st.sampled_from([None, "count", "max", "min", "sum", "avg"]))
    tokens = [kw("select")]
    if draw(st.booleans()):
        tokens.append(kw("distinct"))
    if aggregate == "count":
        tokens += [kw("count"), "(", "*", ")"]
    elif aggregate:
        tokens += [kw(aggregate), "(", _cased(picked[0], draw), ")"]
    else:
        for number, column in enumerate(picked):
            tokens += ([","] if number else []) + [_cased(column, draw)]
    tokens += [kw("from"), _cased(table, draw)]
    if draw(st.booleans()):
        column = _cased(draw(st.sampled_from(columns)), draw)
        operator = draw(st.sampled_from(["=", "!=", "<", ">=", "<=", ">", kw("like")]))
        tokens += [kw("where"), column, operator, draw(st.sampled_from(VALUES))]
    if not aggregate and draw(st.booleans()):
        tokens += [kw("order"), kw("by"), _cased(picked[0], draw),
                   draw(st.sampled_from(["", kw("asc"), kw("desc")])) or kw("asc")]
        if draw(st.booleans()):
            tokens += [kw("limit"), str(draw(st.integers(0, 5)))]
    if draw(st.booleans()):
        tokens.append(";")
    return _spaced(tokens, draw)


def _bag(rows: list[tuple]) -> list:
    return sorted(map(repr, rows))


@FUZZ
@given(sql=select_queries())
def test_normalized_sql_runs_the_same(shop, sql):
    schema, database = shop
    expected = database.execute(sql, max_rows=None).rows
    normalized = normalize_sql(sql, schema)
    round_trip = postprocess_sql(target_text(schema.db_id, sql, schema))
    assert _bag(database.execute(normalized, max_rows=None).rows) == _bag(expected), normalized
    assert _bag(database.execute(round_trip, max_rows=None).rows) == _bag(expected), round_trip
    if "order" in sql.lower():
        assert database.execute(round_trip, max_rows=None).rows == expected


@FUZZ
@given(sql=select_queries())
def test_normalize_sql_is_idempotent(shop, sql):
    schema, _ = shop
    once = normalize_sql(sql, schema)
    assert normalize_sql(once, schema) == once
    assert postprocess_sql(target_text(schema.db_id, once, schema)) == \
        postprocess_sql(target_text(schema.db_id, sql, schema))


@FUZZ
@given(text=st.text(max_size=300))
def test_sql_text_functions_never_raise(text):
    assert isinstance(normalize_sql(text), str)
    assert isinstance(postprocess_sql(text), str)


# ---------------------------------------------------------------------------- serialization

IDENTIFIER = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,12}", fullmatch=True)


@st.composite
def schemas(draw) -> Schema:
    """Random schemas: 1-5 tables of 1-8 columns, some primary and foreign keys."""
    table_names = draw(st.lists(IDENTIFIER, min_size=1, max_size=5,
                                unique_by=lambda name: name.lower()))
    tables = []
    for name in table_names:
        column_names = draw(st.lists(IDENTIFIER, min_size=1, max_size=8,
                                     unique_by=lambda column: column.lower()))
        columns = tuple(Column(column, natural_name(column),
                               draw(st.sampled_from(["text", "number", "time", "others"])), name)
                        for column in column_names)
        keys = (column_names[0],) if draw(st.booleans()) else ()
        tables.append(Table(name, natural_name(name), columns, keys))
    foreign_keys = []
    if len(tables) > 1 and draw(st.booleans()):
        source, target = tables[0], tables[1]
        foreign_keys.append(ForeignKey(source.name, source.columns[-1].name, target.name,
                                       target.columns[0].name))
    return Schema(draw(IDENTIFIER), tuple(tables), tuple(foreign_keys))


@st.composite
def questions(draw, schema: Schema) -> str:
    """Questions mixing schema words, English words, numbers and arbitrary characters."""
    words = [column.text for column in schema.columns[1:]] + [t.text for t in schema.tables]
    pieces = draw(st.lists(st.one_of(
        st.sampled_from(words),
        st.sampled_from(["how", "many", "the", "of", "with", "?", ",", "'s", "-", "\"x\""]),
        st.integers(-1000, 100000).map(str),
        st.text(alphabet=string.ascii_letters + string.punctuation + "éü漢😀", min_size=1,
                max_size=8),
    ), min_size=1, max_size=25))
    return " ".join(pieces)


@FUZZ
@given(data=st.data())
def test_spans_always_cover_their_nodes(tokenizer, data):
    schema = data.draw(schemas())
    question = data.draw(questions(schema))
    max_tokens = data.draw(st.sampled_from([32, 64, 512]))
    linking = SchemaLinker(schema).link(question)
    graph = build_graph(linking, schema)
    encoded = encode(linking, schema, graph, tokenizer,
                     SerializationConfig(max_input_tokens=max_tokens))

    spans = encoded.node_spans.tolist()
    assert len(spans) == encoded.graph.num_nodes
    assert len(encoded.input_ids) <= max_tokens
    for start, end in spans:
        assert 0 <= start < end <= len(encoded.input_ids)
    if encoded.cut_items or encoded.graph.num_nodes < graph.num_nodes:
        return

    # Nothing was cut, so every node keeps its text and its subwords must overlap it.
    serialized = serialize(linking, schema, graph)
    offsets = np.asarray(tokenizer(serialized.text, return_offsets_mapping=True)
                         ["offset_mapping"])
    for node, (start, end) in enumerate(spans):
        char_start, char_end = serialized.char_spans[node]
        pieces = offsets[start:end]
        overlaps = any(a < char_end and b > char_start for a, b in pieces)
        # A node whose characters the tokenizer dropped gets the next subword instead.
        assert overlaps or pieces[0][0] >= char_end, (graph.node_text[node], node)


# ---------------------------------------------------------------------------- evaluation


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
    from graphix.metrics import Evaluator

    root = tmp_path_factory.mktemp("db")
    (root / "shop").mkdir()
    create_database(root / "shop" / "shop.sqlite", SHOP_DB)
    with Evaluator(root, timeout_s=0.2) as scorer:
        yield scorer


SQL_WORDS = ["select", "from", "where", "join", "on", "as", "group", "by", "order", "having",
             "limit", "union", "intersect", "except", "not", "in", "like", "between", "and",
             "or", "count", "(", ")", "*", ",", "=", ">", "<", "!=", "'x'", "1", "maker",
             "product", "name", "price", "t1", "t1.name", "distinct", "desc", ";", "with",
             "recursive", "values", "pragma", "attach", "drop", "value", "\"", "`", "--", "/*"]

ARBITRARY_SQL = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(SQL_WORDS), max_size=40).map(" ".join),
    select_queries(),
)


@FUZZ
@given(pred=ARBITRARY_SQL)
def test_evaluator_never_raises(evaluator, pred):
    result = evaluator.evaluate("SELECT count(*) FROM product WHERE price > 2", pred, "shop")
    assert result.em in (0, 1)
    assert result.ex in (0, 1)


@FUZZ
@given(gold=select_queries(), pred=ARBITRARY_SQL)
def test_evaluator_never_raises_on_any_gold(evaluator, gold, pred):
    result = evaluator.evaluate(gold, pred, "shop")
    assert result.em in (0, 1, None)
    assert result.ex in (0, 1, None)


@FUZZ
@given(sql=select_queries())
def test_gold_as_prediction_matches(evaluator, sql):
    result = evaluator.evaluate(sql, sql, "shop")
    assert result.ex == 1
    assert result.em in (1, None)


@FUZZ
@given(text=ARBITRARY_SQL, header=st.booleans())
def test_prefix_checker_never_raises(shop, text, header):
    from graphix.decoding import PrefixChecker

    schema, _ = shop
    checker = PrefixChecker(schema, with_db_id=header, implicit_aliases=True)
    state = checker.check(f"shop | {text}" if header else text)
    assert isinstance(checker.is_complete(state), bool)
    # Feeding in two parts reaches the same verdict as one call.
    middle = len(text) // 2
    first = checker.check((f"shop | {text[:middle]}" if header else text[:middle]))
    assert (checker.feed(first, text[middle:]).rejection is None) == (state.rejection is None)


# ---------------------------------------------------------------------------- input files

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=30,
)

ENTRY_FIELDS = ["db_id", "table_names_original", "table_names", "column_names_original",
                "column_names", "column_types", "primary_keys", "foreign_keys"]


@FUZZ
@given(entry=st.fixed_dictionaries({name: JSON_VALUES for name in ENTRY_FIELDS}))
def test_tables_entry_raises_only_schema_error(entry):
    try:
        schema = Schema.from_spider_entry(entry)
    except SchemaError:
        return
    assert all(isinstance(table.name, str) for table in schema.tables)
    assert all(a >= 1 and b >= 1 for a, b in schema.foreign_key_pairs)


@FUZZ
@given(payload=JSON_VALUES)
def test_tables_file_raises_only_schema_error(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("tables") / "tables.json"
    path.write_text(json.dumps(payload))
    try:
        Schema.load_spider_tables(path)
    except SchemaError:
        pass


@FUZZ
@given(question=st.text(max_size=2100))
def test_check_question_raises_only_input_error(question):
    from graphix.api import Text2SQL
    from graphix.errors import InputError

    try:
        cleaned = Text2SQL.check_question(question)
    except InputError:
        return
    assert cleaned.strip() == cleaned
    assert cleaned
    cleaned.encode("utf-8")


@functools.cache
def _shop_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return create_database(Path(folder) / "shop.sqlite", SHOP_DB).read_bytes()


@FUZZ
@given(data=st.data())
def test_damaged_database_raises_only_graphix_errors(tmp_path_factory, data):
    from graphix.value_index import ValueIndex

    damaged = bytearray(_shop_bytes())
    for _ in range(data.draw(st.integers(1, 40))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    damaged = damaged[:data.draw(st.integers(0, len(damaged)))]
    folder = tmp_path_factory.mktemp("damaged")
    path = folder / "shop.sqlite"
    path.write_bytes(bytes(damaged))
    try:
        schema = Schema.from_sqlite(path)
        ValueIndex.load_or_build(path, schema, cache_dir=folder / "cache")
        with ReadOnlyDatabase(path) as database:
            for table in schema.tables:
                database.execute(f'SELECT * FROM "{table.name}"', timeout_s=1)
    except GraphixError:
        pass
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["shop.sqlite"]


@FUZZ
@given(sql=select_queries())
def test_prefix_checker_accepts_normalized_targets(shop, sql):
    from graphix.decoding import PrefixChecker

    schema, _ = shop
    checker = PrefixChecker(schema)
    target = target_text(schema.db_id, sql, schema)
    state = checker.check(target)
    assert state.rejection is None, (target, state.rejection)
    assert checker.is_complete(state), target


def test_sqlite_header_with_garbage_is_database_error(tmp_path):
    path = tmp_path / "db.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x)")
    connection.close()
    data = bytearray(path.read_bytes())
    data[16:100] = bytes(range(84))
    path.write_bytes(bytes(data))
    with pytest.raises(GraphixError):
        Schema.from_sqlite(path)
