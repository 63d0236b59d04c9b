"""Schema linking: tokens and lemmas, name matches, the value index and value matches."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fixtures.builders import create_database
from graphix.data import database_path, load_examples
from graphix.graph import Relation, build_graph
from graphix.linking import LinkingConfig, Match, SchemaLinker
from graphix.schema import Schema
from graphix.text import lemmatize, normalize_phrase, tokenize, value_key
from graphix.value_index import ValueIndex, cache_path

FIXTURES = Path(__file__).parent / "fixtures"

SINGER_DB = [
    "CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER)",
    "CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year TEXT, "
    "singer_id INTEGER REFERENCES singer(singer_id))",
    "INSERT INTO singer VALUES (1, 'Paul Johnson', 'Brazil', 30), (2, 'Ann Lee', 'France', 41), "
    "(3, 'Tom Brady', 'United States', 25)",
    "INSERT INTO concert VALUES (1, 'Summer Nights', '2014', 1), (2, 'Dogs Day', '2015', 2)",
]


@pytest.fixture
def singer_db(tmp_path) -> tuple[Schema, ValueIndex]:
    path = create_database(tmp_path / "music.sqlite", SINGER_DB)
    schema = Schema.from_sqlite(path)
    return schema, ValueIndex.load_or_build(path, schema, cache_dir=tmp_path / "cache")


def relations_of(linking, schema: Schema) -> dict[tuple[int, str], Match]:
    """Return {(token position, 'table' or 'table.column'): match} for readable asserts."""
    named = {}
    for (position, kind, index), match in linking.token_relations().items():
        if kind == "table":
            name = schema.tables[index].name
        else:
            column = schema.columns[index]
            name = f"{column.table}.{column.name}"
        named[(position, name)] = match
    return named


# ---------------------------------------------------------------------- text


def test_tokenize_offsets_and_punctuation():
    question = "Who's from St. Louis, aged 3.5?"
    tokens = tokenize(question)
    assert [t.text for t in tokens] == ["Who", "'", "s", "from", "St", ".", "Louis", ",", "aged",
                                        "3.5", "?"]
    for token in tokens:
        assert question[token.start:token.end] == token.text
    assert not tokens[1].is_word
    assert tokens[3].is_stopword


@pytest.mark.parametrize("word, lemma", [
    ("singers", "singer"), ("cities", "city"), ("classes", "class"), ("boxes", "box"),
    ("addresses", "address"), ("status", "status"), ("people", "person"), ("named", "name"),
    ("located", "locate"), ("opened", "open"), ("ordered", "order"), ("stopped", "stop"),
    ("running", "run"), ("playing", "play"), ("ids", "id"), ("series", "series"),
    ("courses", "course"), ("movies", "movie"), ("earnings", "earnings"),
])
def test_lemmatize_forms(word, lemma):
    assert lemmatize(word) == lemma


def test_normalize_phrase_and_value_key():
    assert normalize_phrase("Song_Names") == ("song", "name")
    assert value_key("  Hewlett-Packard  Co.") == "hewlett packard co"


# ---------------------------------------------------------------------- names


def test_name_exact_and_partial(singer_db):
    schema, _ = singer_db
    linking = SchemaLinker(schema).link("Show the concert names of singers")
    relations = relations_of(linking, schema)
    # "concert names" is the whole name "concert name"; "concert" alone is the table.
    assert relations[(2, "concert.concert_name")] == Match.EXACT
    assert relations[(3, "concert.concert_name")] == Match.EXACT
    assert relations[(2, "concert")] == Match.EXACT
    assert relations[(2, "concert.concert_id")] == Match.PARTIAL
    # "singers" lemmatizes to the table name and is part of "singer id".
    assert relations[(5, "singer")] == Match.EXACT
    assert relations[(5, "singer.singer_id")] == Match.PARTIAL
    assert relations[(5, "concert.singer_id")] == Match.PARTIAL


def test_exact_wins_over_partial_for_same_pair(singer_db):
    schema, _ = singer_db
    linking = SchemaLinker(schema).link("singer id")
    relations = relations_of(linking, schema)
    # The bigram matches "singer id" exactly; the unigram "singer" only partially.
    assert relations[(0, "singer.singer_id")] == Match.EXACT
    assert relations[(1, "singer.singer_id")] == Match.EXACT


def test_stopwords_and_punctuation_never_link(singer_db):
    schema, _ = singer_db
    linking = SchemaLinker(schema).link("What is the , of ?")
    assert linking.links == []


# ---------------------------------------------------------------------- values


def test_value_exact_multiword(singer_db):
    schema, index = singer_db
    linking = SchemaLinker(schema, index).link("Which singer is from the United States?")
    relations = relations_of(linking, schema)
    assert relations[(5, "singer.country")] == Match.VALUE
    assert relations[(6, "singer.country")] == Match.VALUE
    assert linking.column_values[schema.column_index("singer", "country")] == ["United States"]


def test_value_match_ignores_case_and_lemma(singer_db):
    schema, index = singer_db
    # "dog day" only matches "Dogs Day" after lemmatizing both sides.
    linking = SchemaLinker(schema, index).link("when was the dog day concert")
    relations = relations_of(linking, schema)
    assert relations[(3, "concert.concert_name")] == Match.VALUE
    assert relations[(4, "concert.concert_name")] == Match.VALUE


@pytest.mark.parametrize("word, threshold, expected", [
    # fuzz.ratio("brazill", "brazil") = 100 * (1 - 1 / 13) = 92.3
    ("Brazill", 90.0, True),
    ("Brazill", 93.0, False),
    # fuzz.ratio("brasil", "brazil") = 100 * (1 - 2 / 12) = 83.3
    ("Brasil", 90.0, False),
    ("Brasil", 83.0, True),
    ("Brasil", 84.0, False),
])
def test_value_near_miss_threshold(singer_db, word, threshold, expected):
    schema, index = singer_db
    linker = SchemaLinker(schema, index, LinkingConfig(value_threshold=threshold))
    linking = linker.link(f"singers from {word}")
    relations = relations_of(linking, schema)
    assert ((2, "singer.country") in relations) is expected
    if expected:
        link = next(link for link in linking.links if link.match == Match.VALUE)
        assert link.value == "Brazil"
        assert link.score < 100


def test_near_misses_can_be_turned_off(singer_db):
    schema, index = singer_db
    linker = SchemaLinker(schema, index, LinkingConfig(near_misses=False))
    assert not [link for link in linker.link("singers from Brazill").links
                if link.match == Match.VALUE]


def test_longer_value_covers_shorter(tmp_path):
    path = create_database(tmp_path / "c.sqlite", [
        "CREATE TABLE city (name TEXT, state TEXT)",
        "INSERT INTO city VALUES ('New York', 'York'), ('Newark', 'New Jersey')",
    ])
    schema = Schema.from_sqlite(path)
    index = ValueIndex.load_or_build(path, schema, cache_dir=tmp_path)
    linking = SchemaLinker(schema, index).link("people in new york")
    values = [(link.start, link.end, link.value) for link in linking.links
              if link.match == Match.VALUE]
    # "york" alone is a state value, but the tokens are already covered by "New York".
    assert values == [(2, 4, "New York")]


def test_values_per_column_limit(tmp_path):
    path = create_database(tmp_path / "c.sqlite", [
        "CREATE TABLE pet (kind TEXT)",
        "INSERT INTO pet VALUES ('cat'), ('dog'), ('bird')",
    ])
    schema = Schema.from_sqlite(path)
    index = ValueIndex.load_or_build(path, schema, cache_dir=tmp_path)
    linker = SchemaLinker(schema, index, LinkingConfig(values_per_column=2))
    linking = linker.link("cat or dog or bird")
    assert linking.column_values[1] == ["cat", "dog"]


# ---------------------------------------------------------------------- index cache


def test_value_index_reads_only_text_cells(singer_db):
    schema, index = singer_db
    assert ("singer", "age") not in index.values
    assert sorted(index.values[("singer", "name")]) == ["Ann Lee", "Paul Johnson", "Tom Brady"]
    # Text that looks like a number is still text.
    assert sorted(index.values[("concert", "year")]) == ["2014", "2015"]


def test_value_index_cache_follows_content(tmp_path):
    path = create_database(tmp_path / "db.sqlite", SINGER_DB)
    schema = Schema.from_sqlite(path)
    cache = tmp_path / "cache"
    ValueIndex.load_or_build(path, schema, cache_dir=cache)
    first = cache_path(path, cache)
    assert first.is_file()

    # A cached index is read from disk: edit the cache and see the edit come back.
    payload = json.loads(first.read_text())
    payload["columns"].append(["singer", "country", ["Atlantis"]])
    first.write_text(json.dumps(payload))
    reloaded = ValueIndex.load_or_build(path, schema, cache_dir=cache)
    assert reloaded.exact("atlantis")

    # Changing the database changes its hash, so the index is rebuilt from the file.
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO singer VALUES (4, 'Zed Zee', 'Chile', 50)")
    connection.close()
    second = cache_path(path, cache)
    assert second != first
    rebuilt = ValueIndex.load_or_build(path, schema, cache_dir=cache)
    assert second.is_file()
    assert rebuilt.exact("chile")
    assert not rebuilt.exact("atlantis")


def test_value_index_default_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHIX_CACHE_DIR", str(tmp_path / "home"))
    path = create_database(tmp_path / "db.sqlite", SINGER_DB)
    schema = Schema.from_sqlite(path)
    ValueIndex.load_or_build(path, schema)
    assert list((tmp_path / "home" / "value_index").glob("db-*.json"))


# ---------------------------------------------------------------------- Spider dev, by hand

_FORWARD = {
    ("table", "exact"): Relation.QUESTION_TABLE_EXACTMATCH,
    ("table", "partial"): Relation.QUESTION_TABLE_PARTIALMATCH,
    ("column", "exact"): Relation.QUESTION_COLUMN_EXACTMATCH,
    ("column", "partial"): Relation.QUESTION_COLUMN_PARTIALMATCH,
    ("column", "value"): Relation.QUESTION_COLUMN_VALUEMATCH,
}
_REVERSE = {
    Relation.QUESTION_TABLE_EXACTMATCH: Relation.TABLE_QUESTION_EXACTMATCH,
    Relation.QUESTION_TABLE_PARTIALMATCH: Relation.TABLE_QUESTION_PARTIALMATCH,
    Relation.QUESTION_COLUMN_EXACTMATCH: Relation.COLUMN_QUESTION_EXACTMATCH,
    Relation.QUESTION_COLUMN_PARTIALMATCH: Relation.COLUMN_QUESTION_PARTIALMATCH,
    Relation.QUESTION_COLUMN_VALUEMATCH: Relation.COLUMN_QUESTION_VALUEMATCH,
}
_CASES = json.loads((FIXTURES / "spider_dev_links.json").read_text())["examples"]


@pytest.mark.spider
@pytest.mark.parametrize("case", _CASES, ids=[f"dev{c['dev_index']}" for c in _CASES])
def test_spider_dev_links_and_edges(spider, case, tmp_path_factory):
    examples = _dev_examples(spider)
    example = examples[case["dev_index"]]
    assert example.db_id == case["db_id"]
    schema = Schema.load_spider_tables(spider / "tables.json")[example.db_id]
    cache = tmp_path_factory.getbasetemp() / "value_index"
    index = ValueIndex.load_or_build(database_path(spider, example.db_id), schema, cache_dir=cache)
    linking = SchemaLinker(schema, index).link(example.question)
    graph = build_graph(linking, schema)
    edges = graph.edges()
    words = [token.text for token in linking.tokens]

    num_tokens = len(linking.tokens)
    for positions, item, match in case["links"]:
        if "." in item:
            table, column = item.split(".")
            kind, node = "column", num_tokens + len(schema.tables) + schema.column_index(table, column)
        else:
            kind, node = "table", num_tokens + schema.table_index(item)
        relation = _FORWARD[(kind, match)]
        for position in positions:
            assert (position, node, relation) in edges, (words, position, item, match)
            assert (node, position, _REVERSE[relation]) in edges, (words, position, item, match)

    star = num_tokens + len(schema.tables)
    for position in case["star"]:
        assert (position, star, Relation.QUESTION_COLUMN_STAR) in edges, (words, position)
        assert (star, position, Relation.COLUMN_QUESTION_STAR) in edges, (words, position)


_DEV_CACHE: dict[Path, list] = {}


def _dev_examples(spider: Path):
    if spider not in _DEV_CACHE:
        _DEV_CACHE[spider] = load_examples(spider / "dev.json")
    return _DEV_CACHE[spider]
