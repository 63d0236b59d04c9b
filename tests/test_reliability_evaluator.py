"""The evaluator survives any prediction: each hostile one is scored wrong, in bounded time."""

from __future__ import annotations

import sqlite3
import time

import pytest

from graphix.errors import SQLExecutionError
from graphix.execution import ReadOnlyDatabase
from graphix.metrics import Evaluator, evaluate_files

GOLD = "SELECT count(*) FROM item"

HOSTILE_PREDICTIONS = {
    "syntax error": "SELECT name FROM item WHERE",
    "unclosed quote": "SELECT \"name FROM item",
    "unclosed comment": "SELECT 1 /*",
    "cartesian join": "SELECT * FROM item AS a, item AS b, item AS c, item AS d",
    "endless recursive CTE": "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) "
                             "SELECT x FROM r",
    "sorted cartesian join": "SELECT * FROM item AS a, item AS b ORDER BY random()",
    "attach": "ATTACH DATABASE 'other.sqlite' AS other",
    "pragma write": "PRAGMA writable_schema = 1",
    "pragma read": "PRAGMA table_info(item)",
    "drop": "DROP TABLE item",
    "delete": "DELETE FROM item",
    "insert": "INSERT INTO item VALUES (1000, 'x', 1)",
    "write after select": "SELECT 1; DROP TABLE item",
    "write after comment": "SELECT name FROM item -- \n; DROP TABLE item",
    "vacuum into": "VACUUM INTO 'copy.sqlite'",
    "transaction": "BEGIN; SELECT 1",
    "returning CTE": "WITH x AS (DELETE FROM item RETURNING *) SELECT * FROM x",
    "empty": "",
    "NUL": "\x00",
    "NUL in string": "SELECT '\x00' FROM item",
    "replacement characters": "SELECT \ufffd\ufffd FROM item",
    "gigabyte blob": "SELECT zeroblob(1000000000) FROM item",
    "huge printf width": "SELECT printf('%.*c', 2000000000, 'x') FROM item",
    "huge replace": "SELECT replace(hex(zeroblob(100000000)), '0', 'ab') FROM item",
    "deep nesting": "SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM item",
    "long union": "SELECT count(*) FROM item" + " UNION SELECT 1" * 1000,
    "huge IN list": "SELECT count(*) FROM item WHERE id IN ("
                    + ", ".join(map(str, range(1000, 51_000))) + ")",
    "load extension": "SELECT load_extension('x') FROM item",
    "integer overflow": "SELECT abs(-9223372036854775808) FROM item",
}


@pytest.fixture
def db_dir(tmp_path):
    folder = tmp_path / "db" / "shop"
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "shop.sqlite") as connection:
        connection.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        connection.executemany("INSERT INTO item VALUES (?, ?, ?)",
                               [(i, f"n{i}", i * 1.5) for i in range(300)])
    connection.close()
    return tmp_path / "db"


@pytest.mark.parametrize("case", sorted(HOSTILE_PREDICTIONS))
def test_hostile_prediction_scored_wrong(case, db_dir):
    start = time.monotonic()
    with Evaluator(db_dir, timeout_s=0.5) as evaluator:
        result = evaluator.evaluate(GOLD, HOSTILE_PREDICTIONS[case], "shop")
    assert result.em == 0
    assert result.ex == 0
    # Each query may run 0.5 s, and parsing and setup take the rest.
    assert time.monotonic() - start < 5


def test_extra_statement_ignored_as_official(db_dir):
    # The official test-suite evaluator runs only the first statement.
    with Evaluator(db_dir, timeout_s=0.5) as evaluator:
        result = evaluator.evaluate(GOLD, GOLD + "; SELECT 2", "shop")
    assert result.ex == 1


def test_whole_hostile_file_completes(db_dir, tmp_path):
    predictions = [sql.replace("\n", " ") for sql in HOSTILE_PREDICTIONS.values()]
    gold = tmp_path / "gold.sql"
    gold.write_text("".join(f"{GOLD}\tshop\n" for _ in predictions))
    pred = tmp_path / "pred.sql"
    lines = [sql.encode("utf-8") for sql in predictions]
    # Bytes that are not UTF-8 replace the empty prediction.
    lines[predictions.index("")] = b"SELECT \xff\xfe FROM item \xc3\x28"
    pred.write_bytes(b"\n".join(lines) + b"\n")

    start = time.monotonic()
    report = evaluate_files(gold, pred, db_dir, timeout_s=0.5)
    elapsed = time.monotonic() - start

    assert len(report.examples) == len(predictions)
    assert [e.ex for e in report.examples] == [0] * len(predictions)
    assert report.summary()["execution_accuracy"] == 0
    assert elapsed < 0.5 * len(predictions) + 10


def test_value_size_limit_fails_fast(db_dir):
    with ReadOnlyDatabase(db_dir / "shop" / "shop.sqlite") as database:
        for sql in ("SELECT zeroblob(1000000000)", "SELECT printf('%.*c', 2000000000, 'x')",
                    "SELECT format('%d', 1)"):
            start = time.monotonic()
            with pytest.raises(SQLExecutionError):
                database.execute(sql, timeout_s=0.5)
            assert time.monotonic() - start < 1


def test_result_size_limit(db_dir, monkeypatch):
    monkeypatch.setattr("graphix.execution.MAX_RESULT_BYTES", 1000)
    with ReadOnlyDatabase(db_dir / "shop" / "shop.sqlite") as database:
        assert len(database.execute("SELECT name FROM item LIMIT 50", max_rows=None).rows) == 50
        with pytest.raises(SQLExecutionError, match="MiB of text and BLOBs"):
            database.execute("SELECT hex(zeroblob(100)) FROM item", max_rows=None)


def test_row_cap_exact_after_chunked_fetch(db_dir):
    with ReadOnlyDatabase(db_dir / "shop" / "shop.sqlite") as database:
        for cap in (1, 31, 32, 33, 299, 300, 301):
            result = database.execute("SELECT id FROM item ORDER BY id", max_rows=cap)
            assert len(result.rows) == min(cap, 300)
            assert result.truncated == (cap < 300)
            assert result.rows[-1] == (min(cap, 300) - 1,)


@pytest.mark.parametrize("timeout_s", [float("nan"), float("inf"), 0, -1])
def test_unbounded_time_limit_rejected(db_dir, timeout_s):
    from graphix.errors import InputError

    with ReadOnlyDatabase(db_dir / "shop" / "shop.sqlite") as database:
        with pytest.raises(InputError, match="timeout_s"):
            database.execute("SELECT 1", timeout_s=timeout_s)
    with Evaluator(db_dir, timeout_s=timeout_s) as evaluator:
        with pytest.raises(InputError, match="timeout_s"):
            evaluator.evaluate(GOLD, GOLD, "shop")
