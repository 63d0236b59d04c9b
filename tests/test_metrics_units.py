"""Unit tests of the evaluator parts: hardness, structure, text rules, result comparison."""

from __future__ import annotations

import pytest

from graphix.metrics import SchemaView, UnsupportedSQL, build_query, hardness, results_match
from graphix.metrics.exact_match import build_foreign_key_map
from graphix.metrics.execution_match import order_matters, prepare_for_execution
from graphix.metrics.text_rules import check_text

SCHEMA = SchemaView({
    "singer": ("singer_id", "name", "country", "age"),
    "concert": ("concert_id", "concert_name", "year", "stadium_id"),
    "singer_in_concert": ("concert_id", "singer_id"),
})

# Levels worked out by hand from the three counts (clauses, nested, others).
HARDNESS_CASES = [
    ("one column", "SELECT name FROM singer", "easy"),
    ("one condition", "SELECT name FROM singer WHERE age > 30", "easy"),
    ("two select items", "SELECT name, age FROM singer WHERE age > 30", "medium"),
    ("join and where",
     "SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 "
     "ON T1.singer_id = T2.singer_id WHERE T1.age > 30", "medium"),
    ("where order limit", "SELECT name FROM singer WHERE age > 30 ORDER BY age LIMIT 1", "hard"),
    ("union only", "SELECT name FROM singer UNION SELECT name FROM singer", "hard"),
    ("nested value", "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)", "hard"),
    ("nested value and second condition",
     "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer) AND country = 'x'",
     "extra"),
    ("four clauses two aggregates",
     "SELECT country, count(*) FROM singer WHERE age > 30 GROUP BY country "
     "ORDER BY count(*) DESC LIMIT 1", "extra"),
    # NOT counts as an aggregate in the official code: count(*) plus NOT makes two.
    ("negated condition counts as aggregate",
     "SELECT count(*) FROM singer WHERE age NOT BETWEEN 30 AND 40", "medium"),
    # Each AND between HAVING conditions counts as an aggregate too.
    ("having connector counts as aggregate",
     "SELECT count(*) FROM singer GROUP BY country HAVING avg(age) > 30 AND max(age) > 40",
     "medium"),
]


@pytest.mark.parametrize("title, sql, expected", HARDNESS_CASES,
                         ids=[case[0] for case in HARDNESS_CASES])
def test_hardness_level(title, sql, expected):
    assert hardness(build_query(sql, SCHEMA)) == expected


REJECTED = [
    ("column alias", "SELECT name AS n FROM singer"),
    ("inner join", "SELECT T1.name FROM singer AS T1 INNER JOIN concert AS T2 ON T1.age = T2.year"),
    ("left join", "SELECT T1.name FROM singer AS T1 LEFT JOIN concert AS T2 ON T1.age = T2.year"),
    ("comma join", "SELECT name FROM singer, concert"),
    ("alias without AS", "SELECT s.name FROM singer s"),
    ("alias equal to a table name", "SELECT singer.name FROM singer AS singer"),
    ("is null", "SELECT name FROM singer WHERE age IS NULL"),
    ("is not null", "SELECT name FROM singer WHERE age IS NOT NULL"),
    ("prefix not", "SELECT name FROM singer WHERE NOT age > 3"),
    ("parenthesized condition", "SELECT name FROM singer WHERE (age > 3 OR age < 1)"),
    ("in list", "SELECT name FROM singer WHERE age IN (1, 2)"),
    ("union all", "SELECT name FROM singer UNION ALL SELECT name FROM singer"),
    ("scalar function", "SELECT lower(name) FROM singer"),
    ("aggregate then arithmetic", "SELECT max(age) - min(age) FROM singer"),
    ("glued equals sign", "SELECT name FROM singer WHERE age=30"),
    ("not-equal as <>", "SELECT name FROM singer WHERE age <> 30"),
    ("quote inside a string", "SELECT name FROM singer WHERE name = \"O'Hara\""),
    ("backtick identifier", "SELECT `name` FROM singer"),
    ("double-quoted name is a string", "SELECT \"name\" FROM singer"),
    ("unknown column", "SELECT height FROM singer"),
    ("unknown table", "SELECT name FROM artist"),
    ("where after group by", "SELECT country FROM singer GROUP BY country WHERE age > 3"),
    ("with clause", "WITH s AS (SELECT name FROM singer) SELECT name FROM s"),
    ("subquery alias", "SELECT name FROM (SELECT name FROM singer) AS s"),
]


@pytest.mark.parametrize("title, sql", REJECTED, ids=[case[0] for case in REJECTED])
def test_outside_official_subset(title, sql):
    with pytest.raises(UnsupportedSQL):
        build_query(sql, SCHEMA)


ACCEPTED = [
    ("glued greater-than", "SELECT name FROM singer WHERE age>30"),
    ("parenthesized aggregate arithmetic", "SELECT (max(age) - min(age)) FROM singer"),
    ("column minus aggregate", "SELECT age - max(age) FROM singer"),
    ("not in subquery",
     "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM singer_in_concert)"),
    ("subquery in from", "SELECT count(*) FROM (SELECT name FROM singer)"),
    ("spaced comparison", "SELECT name FROM singer WHERE age > = 30"),
    ("trailing offset", "SELECT name FROM singer ORDER BY age LIMIT 1 OFFSET 1"),
]


@pytest.mark.parametrize("title, sql", ACCEPTED, ids=[case[0] for case in ACCEPTED])
def test_inside_official_subset(title, sql):
    assert build_query(sql, SCHEMA).select


def test_set_operations_chain_to_the_right():
    query = build_query("SELECT name FROM singer INTERSECT SELECT name FROM singer "
                        "UNION SELECT country FROM singer", SCHEMA)
    assert query.intersect is not None
    assert query.union is None
    assert query.intersect.union is not None
    assert query.intersect.union.select[0][1].left.column == "singer.country"


def test_order_by_after_set_operation_goes_to_last_block():
    query = build_query("SELECT name FROM singer UNION SELECT country FROM singer "
                        "ORDER BY name LIMIT 1", SCHEMA)
    assert query.order_by == ()
    assert query.union.has_limit


def test_global_alias_resolution_uses_last_definition():
    sql = ("SELECT T1.singer_id FROM singer AS T1 WHERE T1.singer_id IN "
           "(SELECT T1.singer_id FROM singer_in_concert AS T1)")
    default = build_query(sql, SCHEMA)
    strict = build_query(sql, SCHEMA, strict=True)
    assert default.select[0][1].left.column == "singer_in_concert.singer_id"
    assert strict.select[0][1].left.column == "singer.singer_id"


def test_strict_star_names_its_tables():
    sql = ("SELECT count(*) FROM singer AS T1 JOIN singer_in_concert AS T2 "
           "ON T1.singer_id = T2.singer_id")
    assert build_query(sql, SCHEMA).select[0][1].left.column == "*"
    strict = build_query(sql, SCHEMA, strict=True)
    assert strict.select[0][1].left.column == "*:singer,singer_in_concert"


def test_or_after_column_value_is_dropped():
    sql = ("SELECT T1.name FROM singer AS T1 JOIN singer_in_concert AS T2 "
           "ON T1.singer_id = T2.singer_id OR T1.age = T2.concert_id")
    assert len(build_query(sql, SCHEMA).join_conditions.conditions) == 1
    assert len(build_query(sql, SCHEMA, strict=True).join_conditions.conditions) == 2


def test_check_text_accepts_spider_style():
    assert check_text('SELECT T1.name FROM singer AS T1 WHERE T1.country  =  "France"') is None


def test_foreign_key_groups_follow_official_merging():
    columns = ["*", "a.id", "b.a_id", "c.id", "c.b_id"]
    # (2, 1) makes {1, 2}; (4, 3) makes {3, 4}; (3, 2) joins the first group holding
    # 3 or 2, giving {1, 2, 3}. Column 3 is then in both groups, and the later group
    # {3, 4} decides its representative, so the two groups never merge.
    mapping = build_foreign_key_map(columns, [(2, 1), (4, 3), (3, 2)])
    assert mapping["b.a_id"] == "a.id"
    assert mapping["c.b_id"] == "c.id"
    assert mapping["c.id"] == "c.id"


RESULT_CASES = [
    ("column permutation", [(1, "a"), (2, "b")], [("a", 1), ("b", 2)], False, True),
    ("row order ignored", [(1,), (2,)], [(2,), (1,)], False, True),
    ("row order counts", [(1,), (2,)], [(2,), (1,)], True, False),
    ("duplicates count", [(1,), (1,), (2,)], [(1,), (2,), (2,)], False, False),
    ("both empty", [], [], True, True),
    ("extra row", [(1,)], [(1,), (1,)], False, False),
    ("extra column", [(1,)], [(1, 1)], False, False),
    ("int equals float", [(1,)], [(1.0,)], False, True),
    ("same columns different pairing", [(1, 2), (2, 1)], [(1, 1), (2, 2)], False, False),
    ("ordered with permutation", [(1, "x"), (2, "y")], [("x", 1), ("y", 2)], True, True),
]


@pytest.mark.parametrize("title, gold, pred, ordered, expected", RESULT_CASES,
                         ids=[case[0] for case in RESULT_CASES])
def test_results_match(title, gold, pred, ordered, expected):
    assert results_match(gold, pred, ordered=ordered) is expected


def test_prepare_keeps_distinct_in_strings():
    sql = "SELECT DISTINCT name FROM t WHERE x = 'distinct'"
    assert prepare_for_execution(sql) == "SELECT  name FROM t WHERE x = 'distinct'"
    assert prepare_for_execution(sql, keep_distinct=True) == sql


def test_prepare_cuts_after_first_statement():
    assert prepare_for_execution("SELECT 1; SELECT 2") == "SELECT 1;"
    assert prepare_for_execution("SELECT ';' ; SELECT 2") == "SELECT ';' ;"


def test_order_matters_anywhere_in_gold_text():
    assert order_matters("SELECT a FROM t WHERE b IN (SELECT b FROM s ORDER BY c LIMIT 1)")
    assert not order_matters("SELECT a FROM t")


def test_parse_rejects_long_join_chains_quickly():
    from graphix.errors import SQLParseError
    from graphix.metrics.sql_structure import MAX_JOINS, parse_sql

    # Gold-sized chains parse; a degenerate prediction with 40 JOINs (which would take
    # sqlglot hours) is rejected before parsing.
    parse_sql("select * from a " + " ".join(f"join t{i}" for i in range(MAX_JOINS)))
    with pytest.raises(SQLParseError, match="40 JOINs"):
        parse_sql("select t1.name from a as t1 " + " ".join("join b as t2" for _ in range(40)))


def test_evaluator_scores_degenerate_join_prediction_as_wrong(tmp_path):
    import sqlite3

    from graphix.metrics import Evaluator

    folder = tmp_path / "shop"
    folder.mkdir()
    with sqlite3.connect(folder / "shop.sqlite") as connection:
        connection.execute("create table item (id integer primary key, name text)")
        connection.execute("insert into item values (1, 'pen')")
    prediction = "select t1.name from item as t1 " + " ".join("join item as t2" for _ in range(40))
    with Evaluator(tmp_path) as evaluator:
        result = evaluator.evaluate("select name from item", prediction, "shop")
    assert result.em == 0
    assert "JOINs" in result.error
