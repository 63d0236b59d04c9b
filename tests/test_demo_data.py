"""The bundled demo database and its questions stay consistent."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from graphix.execution import execute

DEMO = Path(__file__).resolve().parent.parent / "data" / "demo"
QUESTIONS = json.loads((DEMO / "questions.json").read_text(encoding="utf-8"))


def test_database_matches_its_script(tmp_path):
    rebuilt = tmp_path / "bookshop.sqlite"
    connection = sqlite3.connect(rebuilt)
    connection.executescript((DEMO / "bookshop.sql").read_text(encoding="utf-8"))
    connection.close()
    shipped = sqlite3.connect(DEMO / "bookshop.sqlite")
    fresh = sqlite3.connect(rebuilt)
    for (table,) in fresh.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        query = f"SELECT * FROM {table} ORDER BY 1"
        assert shipped.execute(query).fetchall() == fresh.execute(query).fetchall(), table
    shipped.close()
    fresh.close()


@pytest.mark.parametrize("item", QUESTIONS, ids=lambda item: item["question"][:40])
def test_gold_query_returns_rows(item):
    result = execute(DEMO / "bookshop.sqlite", item["query"])
    assert result.rows, item["query"]
