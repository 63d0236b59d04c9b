"""Tests of grammar completion, which finishes unfinished queries with the fewest words."""

from __future__ import annotations

import sqlite3
from itertools import islice

import pytest

from graphix.decoding import PrefixChecker
from graphix.decoding.completion import complete_query, completions

from test_decoding_checker import MUSIC, VALID


@pytest.fixture(scope="module")
def checker() -> PrefixChecker:
    return PrefixChecker(MUSIC, with_db_id=False, implicit_aliases=True, strict=False)


@pytest.fixture(scope="module")
def connection():
    database = sqlite3.connect(":memory:")
    for table in MUSIC.tables:
        columns = ", ".join(f'"{column.name}"' for column in table.columns)
        database.execute(f'CREATE TABLE "{table.name}" ({columns})')
    yield database
    database.close()


@pytest.mark.parametrize("sql, completed", [
    ("select name from singer where ( age > 3", "select name from singer where ( age > 3 )"),
    ("select name from singer where name = 'abc", "select name from singer where name = 'abc'"),
    ("select t1.name from", "select t1.name from singer as t1"),
    ("select avg ( t1.age ) , count ( * ) from concert as t2 join",
     "select avg ( t1.age ) , count ( * ) from concert as t2 join singer as t1"),
    # Dropping `=` and adding `1` cost the same, so the cut wins because it adds no word.
    ("select t1.name , t2.year from singer as t1 join concert as t2 on t1.singer_id =",
     "select t1.name , t2.year from singer as t1 join concert as t2 on t1.singer_id"),
    ("select t1.name from singer as t1 where t1.age > ( select",
     "select t1.name from singer as t1 where t1.age > ( select 1 )"),
    # Dropping `from con` loses the table: completing `con` to `concert` is cheaper.
    ("select count ( * ) from con", "select count ( * ) from concert"),
    ("select name from singer where age > ( select max ( year ) from",
     "select name from singer where age > ( select max ( year ) from concert )"),
    # `price` is in no table: the search cuts it off.
    ("select count ( * ) , avg ( price", "select count ( * ) , avg ( 1 )"),
])
def test_completes_with_fewest_words(checker, sql, completed):
    assert complete_query(checker, sql) == completed


def test_complete_query_needs_no_completion(checker):
    assert complete_query(checker, "select name from singer") is None


def test_completion_within_budget(checker):
    sql = "select avg ( t1.age ) , count ( * ) from concert as t2 join"
    assert complete_query(checker, sql, max_feeds=1) is None
    # One word cannot bind t1, so everything after `select` is cut.
    assert complete_query(checker, sql, max_words=1) == "select 1"


def test_completions_come_cheapest_first(checker):
    found = list(islice(completions(checker, "select name from singer where age >"), 3))
    assert found[0] == "select name from singer where age"
    assert found[1] == "select name from singer where age > 1"
    assert len(set(found)) == 3
    assert all(checker.accepts_query(sql) for sql in found)


def test_unbindable_alias_is_cut_away(checker):
    # No table has both `year` and `age`, so `t1` can never be bound to both: the result
    # column `t1.age` and all after it are dropped.
    sql = "select count ( * ) , t1.year , t1.age from concert as t2 join concert as t3 on"
    assert complete_query(checker, sql) == "select count ( * ) , t1.year from concert as t1"


def runs(connection, sql: str) -> bool:
    try:
        connection.execute(sql).fetchall()
    except sqlite3.Error:
        return False
    return True


@pytest.mark.parametrize("sql", VALID)
def test_valid_query_cuts_complete_and_run(checker, connection, sql):
    words = sql.split()
    for end in range(1, len(words)):
        prefix = " ".join(words[:end])
        if checker.accepts_query(prefix):
            assert complete_query(checker, prefix) is None
            continue
        found = list(islice(completions(checker, prefix), 4))
        assert found, f"no completion of {prefix!r}"
        assert all(checker.accepts_query(completed) for completed in found), found
        assert any(runs(connection, completed) for completed in found), found
