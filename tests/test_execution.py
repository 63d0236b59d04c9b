"""Read-only execution: writes are impossible, time limits and row caps hold."""

from __future__ import annotations

import hashlib
import sqlite3
import time

import pytest

from graphix.errors import DatabaseError, QueryTimeoutError, SQLExecutionError
from graphix.execution import ReadOnlyDatabase, execute, open_readonly


def _checksum(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def numbers_db(tmp_path):
    path = tmp_path / "numbers.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE n (x INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO n VALUES (?, ?)",
                               [(i, f"item {i}") for i in range(200)])
    connection.close()
    return path


WRITE_ATTEMPTS = [
    "INSERT INTO n VALUES (1000, 'new')",
    "UPDATE n SET name = 'changed'",
    "DELETE FROM n",
    "DROP TABLE n",
    "CREATE TABLE other (y)",
    "CREATE INDEX n_name ON n (name)",
    "ALTER TABLE n ADD COLUMN z",
    "ATTACH DATABASE ':memory:' AS extra",
    "PRAGMA journal_mode = WAL",
    "PRAGMA user_version = 7",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "SELECT 1; DROP TABLE n",
    "WITH t AS (SELECT 1) DELETE FROM n",
    "REPLACE INTO n VALUES (1, 'x')",
]


@pytest.mark.parametrize("sql", WRITE_ATTEMPTS)
def test_write_attempt_rejected_and_file_unchanged(numbers_db, sql):
    before = _checksum(numbers_db)
    with pytest.raises(SQLExecutionError):
        execute(numbers_db, sql)
    assert _checksum(numbers_db) == before


def test_vacuum_into_writes_no_file(numbers_db, tmp_path):
    target = tmp_path / "copy.sqlite"
    before = _checksum(numbers_db)
    with pytest.raises(SQLExecutionError):
        execute(numbers_db, f"VACUUM INTO '{target}'")
    assert not target.exists()
    assert _checksum(numbers_db) == before


def test_connection_usable_after_rejected_write(numbers_db):
    with ReadOnlyDatabase(numbers_db) as database:
        with pytest.raises(SQLExecutionError, match="only reading statements"):
            database.execute("DELETE FROM n")
        assert database.execute("SELECT count(*) FROM n").rows == [(200,)]


def test_result_has_column_names_and_rows(numbers_db):
    result = execute(numbers_db, "SELECT x AS id, name FROM n WHERE x < 3 ORDER BY x")
    assert result.columns == ("id", "name")
    assert result.rows == [(0, "item 0"), (1, "item 1"), (2, "item 2")]
    assert result.truncated is False


def test_row_cap_truncates(numbers_db):
    result = execute(numbers_db, "SELECT x FROM n ORDER BY x", max_rows=5)
    assert result.rows == [(i,) for i in range(5)]
    assert result.truncated is True
    exact = execute(numbers_db, "SELECT x FROM n", max_rows=200)
    assert exact.truncated is False
    assert len(execute(numbers_db, "SELECT x FROM n", max_rows=None).rows) == 200


@pytest.mark.parametrize("sql", [
    "  -- a comment\nSELECT 1", "/* block */ select 1", "VALUES (1)", "with t as (select 1) select * from t",
])
def test_reading_statement_forms_allowed(numbers_db, sql):
    assert execute(numbers_db, sql).rows == [(1,)]


def test_recursive_cte_allowed(numbers_db):
    sql = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 4) SELECT i FROM c"
    assert execute(numbers_db, sql).rows == [(1,), (2,), (3,), (4,)]


def test_cartesian_join_stops_at_time_limit(numbers_db):
    # 200^4 = 1.6e9 rows: minutes of work without the limit.
    sql = "SELECT count(*) FROM n AS a, n AS b, n AS c, n AS d"
    start = time.monotonic()
    with pytest.raises(QueryTimeoutError, match="time limit"):
        execute(numbers_db, sql, timeout_s=0.3)
    assert time.monotonic() - start < 5


def test_endless_recursive_cte_stops_at_time_limit(numbers_db):
    sql = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c) SELECT max(i) FROM c"
    with pytest.raises(QueryTimeoutError):
        execute(numbers_db, sql, timeout_s=0.3)


def test_syntax_error_is_execution_error(numbers_db):
    with pytest.raises(SQLExecutionError, match="syntax error"):
        execute(numbers_db, "SELECT x FROM n WHERE WHERE")
    with pytest.raises(SQLExecutionError, match="only reading statements"):
        execute(numbers_db, "SELEC x FROM n")


def test_long_leading_whitespace_is_fast(numbers_db):
    start = time.monotonic()
    with pytest.raises(SQLExecutionError):
        execute(numbers_db, " " * 100_000 + "DROP TABLE n")
    assert time.monotonic() - start < 2


def test_nul_character_in_query(numbers_db):
    with pytest.raises(SQLExecutionError):
        execute(numbers_db, "SELECT 'a\x00b'")


def test_empty_file_rejected(tmp_path):
    path = tmp_path / "empty.sqlite"
    path.touch()
    with pytest.raises(DatabaseError, match="empty"):
        execute(path, "SELECT 1")


def test_corrupt_file_rejected(numbers_db):
    data = bytearray(numbers_db.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)
    numbers_db.write_bytes(bytes(data))
    with pytest.raises((DatabaseError, SQLExecutionError)):
        execute(numbers_db, "SELECT count(*) FROM n")


def test_locked_database_reports_lock(numbers_db):
    writer = sqlite3.connect(numbers_db)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        with pytest.raises(DatabaseError, match="locked"):
            open_readonly(numbers_db, busy_timeout_s=0.2)
        assert time.monotonic() - start < 5
    finally:
        writer.rollback()
        writer.close()
