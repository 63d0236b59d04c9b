"""Nothing is written where it should not be: asking and evaluating leave databases alone.

Every test compares the checksum of every file in the database folder before and after,
and the list of files, so a created ``-journal``, ``-wal`` or ``-shm`` file fails it too.
Databases come in both journal modes, because reading a WAL-mode file can create files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from graphix.api import Text2SQL
from graphix.inference import Beam
from graphix.metrics import evaluate_files
from graphix.schema import Schema
from tiny_model import build_tiny_model

DEMO_DB = Path(__file__).resolve().parent.parent / "data" / "demo" / "bookshop.sqlite"
QUESTIONS = json.loads((DEMO_DB.parent / "questions.json").read_text())

WRITES = [
    "DROP TABLE book",
    "SELECT 1; DROP TABLE book",
    "DELETE FROM book",
    "UPDATE book SET price = 0",
    "INSERT INTO book (title) VALUES ('x')",
    "CREATE TABLE extra (x)",
    "ATTACH DATABASE 'attached.sqlite' AS other",
    "PRAGMA journal_mode = WAL",
    "PRAGMA user_version = 7",
    "VACUUM",
    "VACUUM INTO 'copy.sqlite'",
    "REINDEX",
    "ANALYZE",
    "BEGIN IMMEDIATE",
    "WITH gone AS (DELETE FROM book RETURNING *) SELECT * FROM gone",
    "SELECT * FROM book; DELETE FROM book",
]


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), max_target_tokens=8)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return Text2SQL.from_pretrained(tiny_model_dir)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(params=["delete", "wal"])
def db_folder(request, tmp_path):
    """A folder holding one copy of the demo database in the given journal mode."""
    folder = tmp_path / "dbs" / "bookshop"
    folder.mkdir(parents=True)
    path = folder / "bookshop.sqlite"
    shutil.copy(DEMO_DB, path)
    if request.param == "wal":
        connection = sqlite3.connect(path)
        connection.execute("PRAGMA journal_mode = WAL")
        connection.close()
    assert sorted(p.name for p in folder.iterdir()) == ["bookshop.sqlite"]
    return folder


@pytest.mark.parametrize("question", ["How many books are there; drop table book",
                                      "delete every book and attach database 'x.sqlite'"])
def test_hostile_question_changes_nothing(tiny, db_folder, question):
    before = _snapshot(db_folder)
    answer = tiny.ask(question, db_folder / "bookshop.sqlite", num_beams=3)
    assert isinstance(answer.sql, str)
    assert _snapshot(db_folder) == before


def test_generated_writes_change_nothing(tiny, db_folder, monkeypatch):
    def generate_writes(model, tokenizer, records, **kwargs):
        return [[Beam(sql, "", -float(rank)) for rank, sql in enumerate(WRITES)]
                for _ in records]

    monkeypatch.setattr("graphix.inference.generate_sql", generate_writes)
    before = _snapshot(db_folder)
    database = db_folder / "bookshop.sqlite"
    answer = tiny.ask("How many books?", database, num_beams=len(WRITES))
    assert answer.error is not None
    assert not answer.rows
    # Execution-guided choice runs no write. It finishes the read-only start of a beam.
    answer = tiny.ask("How many books?", database, num_beams=len(WRITES),
                      execution_guided=True)
    assert answer.completed and answer.sql == "SELECT 1"
    assert answer.error is None
    for sql in WRITES:
        monkeypatch.setattr("graphix.inference.generate_sql",
                            lambda *args, sql=sql, **kwargs: [[Beam(sql, "", 0.0)]])
        answer = tiny.ask("How many books?", database)
        assert "rejected" in answer.error or "failed" in answer.error, sql
    assert _snapshot(db_folder) == before
    assert not Path("attached.sqlite").exists()
    assert not Path("copy.sqlite").exists()


def test_evaluator_writes_nothing(db_folder, tmp_path):
    gold = tmp_path / "gold.sql"
    pred = tmp_path / "pred.sql"
    gold.write_text("".join("SELECT count(*) FROM book\tbookshop\n" for _ in WRITES))
    pred.write_text("".join(sql + "\n" for sql in WRITES))
    before = _snapshot(db_folder)

    for keep_distinct in (False, True):
        report = evaluate_files(gold, pred, db_folder.parent, timeout_s=1,
                                keep_distinct=keep_distinct)
        # "SELECT 1; DROP TABLE book" counts as its first statement, as officially.
        assert all(example.ex == 0 for example in report.examples)

    assert _snapshot(db_folder) == before


def test_schema_and_values_read_without_writes(db_folder, tmp_path):
    from graphix.value_index import ValueIndex

    before = _snapshot(db_folder)
    path = db_folder / "bookshop.sqlite"
    schema = Schema.from_sqlite(path)
    ValueIndex.load_or_build(path, schema, cache_dir=tmp_path / "cache")
    assert _snapshot(db_folder) == before


def test_wal_database_with_wal_file_is_read(tmp_path):
    from graphix.execution import execute

    path = tmp_path / "live.sqlite"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode = WAL")
    writer.execute("CREATE TABLE t (x)")
    writer.execute("INSERT INTO t VALUES (1), (2)")
    writer.commit()
    # While the writer is open its rows live in the -wal file, which reads must see.
    assert (tmp_path / "live.sqlite-wal").exists()
    try:
        assert execute(path, "SELECT count(*) FROM t").rows == [(2,)]
    finally:
        writer.close()
