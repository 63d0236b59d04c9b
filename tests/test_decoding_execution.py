"""Tests of execution-guided choice among finished beams, on a SQLite file per test."""

from __future__ import annotations

import sqlite3

import pytest

from graphix.decoding.execution_guided import choose_executable, strip_db_id
from graphix.errors import InputError
from graphix.execution import ReadOnlyDatabase
from graphix.schema import Schema


@pytest.fixture()
def database(tmp_path):
    path = tmp_path / "music.sqlite"
    connection = sqlite3.connect(path)
    with connection:
        connection.execute("CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, "
                           "age INTEGER)")
        connection.executemany("INSERT INTO singer VALUES (?, ?, ?)",
                               [(i, f"singer {i}", 20 + i % 40) for i in range(300)])
    connection.close()
    with ReadOnlyDatabase(path) as opened:
        yield opened


@pytest.fixture()
def schema(database) -> Schema:
    return Schema.from_sqlite(database.path, db_id="music")


SLOW_QUERY = ("select count ( * ) from singer as a , singer as b , singer as c , singer as d "
              "where a.age + b.age + c.age + d.age = 1")


def test_first_executable_beam_wins(database, schema):
    beams = [
        "music | select name from singer where",
        "music | select title from singer",
        "music | select name from singer where age > ( select age , name from singer )",
        "music | select name from singer where age > 30 order by age",
        "music | select name from singer",
    ]
    choice = choose_executable(beams, schema, database)
    assert choice.index == 3
    assert not choice.fallback
    assert choice.sql == "select name from singer where age > 30 order by age"
    reasons = [verdict.reason for verdict in choice.verdicts]
    assert reasons[0] == "invalid: incomplete query"
    assert reasons[1].startswith("invalid: ")
    assert "title" in reasons[1]
    assert reasons[2].startswith("failed: ")
    assert reasons[3] == "ok"
    assert reasons[4] == "not checked"


def test_time_limit_rejects_slow_beam(database, schema):
    choice = choose_executable([f"music | {SLOW_QUERY}", "music | select count ( * ) from singer"],
                               schema, database, timeout_s=0.05)
    assert choice.index == 1
    assert choice.verdicts[0].reason == "timed out"


@pytest.mark.parametrize("require_rows, expected", [(False, 0), (True, 1)])
def test_require_rows(database, schema, require_rows, expected):
    beams = ["music | select name from singer where age > 1000",
             "music | select name from singer where age = 25"]
    choice = choose_executable(beams, schema, database, require_rows=require_rows)
    assert choice.index == expected
    if require_rows:
        assert choice.verdicts[0].reason == "no rows"


def test_falls_back_to_top_beam(database, schema):
    beams = ["music | select nme from singer", "music | select name from nowhere"]
    choice = choose_executable(beams, schema, database, max_completions=0)
    assert choice.fallback
    assert choice.index == 0
    assert choice.sql == "select nme from singer"
    assert all(not verdict.accepted for verdict in choice.verdicts)


def test_cuts_beam_to_runnable_prefix(database, schema):
    # Cutting `5 6` costs two words; no added word makes `limit 1 5` valid.
    choice = choose_executable(["music | select name from singer limit 1 5 6"], schema,
                               database)
    assert choice.cut
    assert not choice.completed
    assert not choice.fallback
    assert choice.sql == "select name from singer limit 1"

    # The cheap completions keep `order by 3`, which fails in SQLite with one result
    # column; the longest complete prefix runs.
    choice = choose_executable(["music | select name from singer order by 3 ,"], schema,
                               database)
    assert choice.cut and choice.sql == "select name from singer"


def test_choice_ranks_cuts_across_beams(database, schema):
    beams = ["music | select nme from singer",
             "music | select name from singer where age > 30 order by age , age , ag",
             "music | select count ( * ) from singer where"]
    choice = choose_executable(beams, schema, database)
    # Beam 1 is cut by two words: cost 2, plus 1 for its place. Beam 0 drops three words
    # and adds one. Beam 2 drops one word, plus 2 for its place.
    assert choice.index == 1
    assert choice.cut and not choice.completed
    assert choice.sql == "select name from singer where age > 30 order by age , age"
    assert [verdict.accepted for verdict in choice.verdicts] == [False, False, False]


def test_completion_search_can_be_turned_off(database, schema):
    beams = ["music | select name from singer where age > 30 and"]
    choice = choose_executable(beams, schema, database, max_completions=0)
    assert choice.fallback
    assert not choice.cut
    assert not choice.completed
    assert choice.sql == "select name from singer where age > 30 and"


def test_completes_beam_when_no_prefix_runs(database, schema):
    # No prefix is complete: t1 is named but never bound.
    beams = ["music | select avg ( t1.age ) , count ( * ) from singer as t2 join",
             "music | select nme from singer"]
    choice = choose_executable(beams, schema, database)
    assert choice.completed
    assert not choice.cut
    assert not choice.fallback
    assert choice.index == 0
    assert choice.sql == ("select avg ( t1.age ) , count ( * ) from singer as t2 join singer "
                          "as t1")


def test_accepts_bare_sql_and_implicit_aliases(database, schema):
    choice = choose_executable(["select s.name from singer s where s.age = 21"], schema, database)
    assert choice.index == 0
    assert not choice.fallback


def test_rejects_empty_beam_list(database, schema):
    with pytest.raises(InputError):
        choose_executable([], schema, database)


@pytest.mark.parametrize("text, sql", [
    ("music | select 1", "select 1"),
    ("  MUSIC|select 1 ", "select 1"),
    ("select a || b from t", "select a || b from t"),
    ("other | select 1", "other | select 1"),
])
def test_strip_db_id(text, sql):
    assert strip_db_id(text, "music") == sql
