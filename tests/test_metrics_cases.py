"""Titled evaluator cases run on a small SQLite database made per test session.

Each case gives a gold and a predicted query and the EM / EX decisions worked out by
hand from the official rules (values and DISTINCT ignored by EM, foreign-key columns
unified, JOIN ON conditions not compared, EX on result bags).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest

from graphix.cli import main
from graphix.metrics import Evaluator, evaluate_files

DB_ID = "music"

SCHEMA_SQL = """
CREATE TABLE singer (singer_id INTEGER PRIMARY KEY, name TEXT, country TEXT, age INTEGER);
CREATE TABLE concert (concert_id INTEGER PRIMARY KEY, concert_name TEXT, year INTEGER);
CREATE TABLE singer_in_concert (
    concert_id INTEGER REFERENCES concert (concert_id),
    singer_id INTEGER REFERENCES singer (singer_id)
);
CREATE TABLE big (n INTEGER);
"""


def make_database(path: Path, ages=(30, 40, 50)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.executescript(SCHEMA_SQL)
        connection.executemany("INSERT INTO singer VALUES (?, ?, ?, ?)", [
            (1, "Ann", "France", ages[0]), (2, "Bob", "USA", ages[1]),
            (3, "Cid", "France", ages[2]),
        ])
        connection.executemany("INSERT INTO concert VALUES (?, ?, ?)",
                               [(1, "Rock", 2014), (2, "Jazz", 2015)])
        connection.executemany("INSERT INTO singer_in_concert VALUES (?, ?)",
                               [(1, 1), (1, 2), (2, 2)])
        connection.executemany("INSERT INTO big VALUES (?)", [(n,) for n in range(3000)])
    connection.close()
    return path


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def db_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("databases")
    make_database(root / DB_ID / f"{DB_ID}.sqlite")
    return root


JOIN = "FROM singer AS T1 JOIN singer_in_concert AS T2 ON T1.singer_id = T2.singer_id"

# (title, gold, prediction, EM, EX)
CASES = [
    ("identical", "SELECT name FROM singer", "SELECT name FROM singer", 1, 1),
    ("values ignored by EM", "SELECT name FROM singer WHERE age > 30",
     "SELECT name FROM singer WHERE age > 45", 1, 0),
    ("distinct ignored", "SELECT DISTINCT country FROM singer",
     "SELECT country FROM singer", 1, 1),
    ("column alias rejected", "SELECT name FROM singer", "SELECT name AS n FROM singer", 0, 1),
    ("inner join rejected", f"SELECT T1.name {JOIN}",
     f"SELECT T1.name {JOIN.replace('JOIN', 'INNER JOIN')}", 0, 1),
    ("alias without AS rejected", "SELECT name FROM singer", "SELECT T1.name FROM singer T1", 0, 1),
    ("alias names free", f"SELECT T1.name {JOIN}",
     "SELECT A.name FROM singer AS A JOIN singer_in_concert AS B ON A.singer_id = B.singer_id",
     1, 1),
    ("foreign key unified", f"SELECT T2.singer_id {JOIN}", f"SELECT T1.singer_id {JOIN}", 1, 1),
    ("condition order free", "SELECT name FROM singer WHERE age > 30 AND country = 'France'",
     "SELECT name FROM singer WHERE country = 'France' AND age > 30", 1, 1),
    ("and versus or", "SELECT name FROM singer WHERE age > 30 AND country = 'France'",
     "SELECT name FROM singer WHERE age > 30 OR country = 'France'", 0, 0),
    ("order direction", "SELECT name FROM singer ORDER BY age DESC",
     "SELECT name FROM singer ORDER BY age ASC", 0, 0),
    ("limit value ignored", "SELECT name FROM singer ORDER BY age DESC LIMIT 1",
     "SELECT name FROM singer ORDER BY age DESC LIMIT 2", 1, 0),
    ("union versus intersect",
     "SELECT name FROM singer WHERE age > 35 UNION SELECT name FROM singer WHERE country = 'France'",
     "SELECT name FROM singer WHERE age > 35 INTERSECT "
     "SELECT name FROM singer WHERE country = 'France'", 0, 0),
    ("union values ignored",
     "SELECT name FROM singer WHERE age > 35 UNION SELECT name FROM singer WHERE country = 'France'",
     "SELECT name FROM singer WHERE age > 45 UNION SELECT name FROM singer WHERE country = 'USA'",
     1, 0),
    ("union all rejected", "SELECT name FROM singer UNION SELECT name FROM singer",
     "SELECT name FROM singer UNION ALL SELECT name FROM singer", 0, 0),
    ("nested aggregate differs", "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer)",
     "SELECT name FROM singer WHERE age > (SELECT min(age) FROM singer)", 0, 0),
    ("nested value ignored", "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer "
     "WHERE country = 'France')",
     "SELECT name FROM singer WHERE age > (SELECT avg(age) FROM singer WHERE country = 'Peru')",
     1, 0),
    ("not in versus in",
     "SELECT name FROM singer WHERE singer_id NOT IN (SELECT singer_id FROM singer_in_concert)",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)", 0, 0),
    ("syntax error", "SELECT name FROM singer", "SELEC name FROM singer", 0, 0),
    ("empty prediction", "SELECT name FROM singer", "", 0, 0),
    # The official EX keeps the first statement only, so the DROP never runs.
    ("second statement dropped", "SELECT name FROM singer",
     "SELECT name FROM singer; DROP TABLE singer", 1, 1),
    ("attach", "SELECT name FROM singer", "ATTACH DATABASE ':memory:' AS other", 0, 0),
    ("pragma", "SELECT name FROM singer", "PRAGMA table_info(singer)", 0, 0),
    ("write", "SELECT name FROM singer", "INSERT INTO singer VALUES (9, 'Eve', 'UK', 20)", 0, 0),
]


@pytest.mark.parametrize("title, gold, pred, em, ex", CASES, ids=[case[0] for case in CASES])
def test_default_decisions(db_dir, title, gold, pred, em, ex):
    before = checksum(db_dir / DB_ID / f"{DB_ID}.sqlite")
    with Evaluator(db_dir) as evaluator:
        result = evaluator.evaluate(gold, pred, DB_ID)
    assert (result.em, result.ex) == (em, ex), result.error
    assert checksum(db_dir / DB_ID / f"{DB_ID}.sqlite") == before


# (title, gold, prediction, default EM, strict EM)
STRICT_CASES = [
    ("on condition compared", f"SELECT T2.singer_id {JOIN}",
     "SELECT T1.singer_id FROM singer AS T1 JOIN singer_in_concert AS T2 "
     "ON T1.age = T2.concert_id", 1, 0),
    ("no merge through foreign key",
     "SELECT T1.singer_id FROM singer AS T1 JOIN singer_in_concert AS T2 "
     "ON T1.singer_id = T2.concert_id",
     "SELECT T2.singer_id FROM singer AS T1 JOIN singer_in_concert AS T2 "
     "ON T1.singer_id = T2.concert_id", 1, 0),
    ("columns equated by on", f"SELECT T2.singer_id {JOIN}", f"SELECT T1.singer_id {JOIN}", 1, 1),
    ("aliases scoped per block",
     "SELECT T1.singer_id FROM singer AS T1 WHERE T1.singer_id IN "
     "(SELECT T1.singer_id FROM singer_in_concert AS T1)",
     "SELECT singer_id FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)",
     0, 1),
    ("distinct in nested query",
     "SELECT name FROM singer WHERE singer_id IN (SELECT singer_id FROM singer_in_concert)",
     "SELECT name FROM singer WHERE singer_id IN (SELECT DISTINCT singer_id FROM singer_in_concert)",
     0, 1),
    ("or after column value", f"SELECT T1.name {JOIN}",
     f"SELECT T1.name {JOIN} OR T1.age = T2.concert_id", 1, 0),
]


@pytest.mark.parametrize("title, gold, pred, default_em, strict_em", STRICT_CASES,
                         ids=[case[0] for case in STRICT_CASES])
def test_strict_differences(db_dir, title, gold, pred, default_em, strict_em):
    with Evaluator(db_dir) as evaluator:
        assert evaluator.evaluate(gold, pred, DB_ID).em == default_em
    with Evaluator(db_dir, strict=True) as evaluator:
        assert evaluator.evaluate(gold, pred, DB_ID).em == strict_em


def test_keep_distinct_changes_execution(db_dir):
    gold, pred = "SELECT DISTINCT country FROM singer", "SELECT country FROM singer"
    with Evaluator(db_dir, keep_distinct=True) as evaluator:
        assert evaluator.evaluate(gold, pred, DB_ID).ex == 0
        second = evaluator.evaluate(gold, "SELECT DISTINCT country FROM singer; SELECT 1", DB_ID)
    assert second.ex == 0


def test_cartesian_join_hits_time_limit(db_dir):
    slow = "SELECT count(*) FROM big AS a JOIN big AS b JOIN big AS c"
    with Evaluator(db_dir, timeout_s=0.3) as evaluator:
        timed_out = evaluator.evaluate("SELECT count(*) FROM big", slow, DB_ID)
        after = evaluator.evaluate("SELECT name FROM singer", "SELECT name FROM singer", DB_ID)
    assert timed_out.ex == 0
    assert "timed out" in timed_out.error
    assert after.ex == 1


def test_missing_database_is_reported(db_dir):
    with Evaluator(db_dir) as evaluator:
        result = evaluator.evaluate("SELECT a FROM t", "SELECT a FROM t", "nowhere")
    assert result.ex is None
    assert result.em is None
    assert "nowhere" in result.error


def test_test_suite_needs_every_database(tmp_path):
    make_database(tmp_path / DB_ID / "a.sqlite")
    gold = "SELECT name FROM singer WHERE age > 35"
    pred = "SELECT name FROM singer WHERE singer_id >= 2"
    with Evaluator(tmp_path) as evaluator:
        assert evaluator.evaluate(gold, pred, DB_ID).ex == 1
    # In the second database Bob is 20, so only Cid is older than 35.
    make_database(tmp_path / DB_ID / "b.sqlite", ages=(30, 20, 50))
    with Evaluator(tmp_path) as evaluator:
        assert evaluator.evaluate(gold, pred, DB_ID).ex == 0


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_files_with_broken_predictions(db_dir, tmp_path):
    gold = write_lines(tmp_path / "gold.sql", [
        b"SELECT name FROM singer\tmusic",
        b"SELECT name FROM singer WHERE name = 'Ann'\tmusic",
        b"SELECT count(*) FROM singer\tmusic",
        b"SELECT name FROM singer\tnowhere",
    ])
    pred = write_lines(tmp_path / "pred.sql", [
        b"\xff\xfe garbage",
        b"SELECT name FROM singer WHERE name = '\xff'",
        b"SELECT count(*) FROM singer\tmusic",
        b"SELECT name FROM singer",
    ])
    report = evaluate_files(gold, pred, db_dir)
    decisions = [(e.em, e.ex) for e in report.examples]
    # The undecodable byte becomes U+FFFD: the value differs, which EM ignores.
    assert decisions == [(0, 0), (1, 0), (1, 1), (None, None)]
    summary = report.summary()
    assert summary["count"] == 4
    assert summary["exact_match"] == pytest.approx(2 / 3)
    assert summary["execution_accuracy"] == pytest.approx(1 / 3)
    assert summary["by_hardness"]["easy"]["count"] == 3


def test_cli_writes_summary_and_examples(db_dir, tmp_path, capsys):
    gold = write_lines(tmp_path / "gold.sql", [b"SELECT name FROM singer\tmusic",
                                               b"SELECT age FROM singer\tmusic"])
    pred = write_lines(tmp_path / "pred.sql", [b"SELECT name FROM singer",
                                               b"SELECT name FROM singer"])
    out = tmp_path / "examples.jsonl"
    code = main(["evaluate", "--gold", str(gold), "--pred", str(pred), "--db-dir", str(db_dir),
                 "--json", "--per-example", str(out)])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["count"] == 2
    assert summary["exact_match"] == 0.5
    assert summary["execution_accuracy"] == 0.5
    assert set(summary["by_hardness"]) == {"easy", "medium", "hard", "extra"}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["index"], r["em"], r["ex"], r["hardness"]) for r in rows] == [
        (0, 1, 1, "easy"), (1, 0, 0, "easy")]
    assert {"db_id", "error"} <= set(rows[0])


def test_cli_rejects_misaligned_files(db_dir, tmp_path, capsys):
    gold = write_lines(tmp_path / "gold.sql", [b"SELECT name FROM singer\tmusic"] * 2)
    pred = write_lines(tmp_path / "pred.sql", [b"SELECT name FROM singer"])
    code = main(["evaluate", "--gold", str(gold), "--pred", str(pred), "--db-dir", str(db_dir)])
    assert code == 1
    assert "has 2 examples but" in capsys.readouterr().err


def test_table_output_has_hardness_columns(db_dir, tmp_path, capsys):
    gold = write_lines(tmp_path / "gold.sql", [b"SELECT name FROM singer\tmusic"])
    pred = write_lines(tmp_path / "pred.sql", [b"SELECT name FROM singer"])
    assert main(["evaluate", "--gold", str(gold), "--pred", str(pred),
                 "--db-dir", str(db_dir), "--strict"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["easy", "medium", "hard", "extra", "all"]
    assert lines[2].split()[-1] == "1.000"
    assert "not comparable" in lines[-1]
