"""The Python API and the ask / predict commands, on a tiny untrained model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from graphix.api import Text2SQL, transpile
from graphix.cli import main
from graphix.errors import CheckpointError, DatabaseError, InputError
from tiny_model import build_tiny_model

DEMO_DB = Path(__file__).resolve().parent.parent / "data" / "demo" / "bookshop.sqlite"
QUESTIONS = json.loads((DEMO_DB.parent / "questions.json").read_text())


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return Text2SQL.from_pretrained(tiny_model_dir)


def test_from_pretrained_reads_training_settings(tiny):
    assert tiny.max_input_tokens == 256
    assert tiny.max_new_tokens == 24


def test_ask_returns_sql_and_beams(tiny):
    answer = tiny.ask("How many books are there?", DEMO_DB, num_beams=3)
    assert isinstance(answer.sql, str)
    assert len(answer.beams) == 3
    assert answer.beams[0][0] == answer.sql
    scores = [score for _, score in answer.beams]
    assert scores == sorted(scores, reverse=True)
    # Untrained output rarely runs; then the error is reported instead of raised.
    assert answer.error is not None or answer.columns
    assert set(answer.timings_ms) == {"preprocess", "generate", "execute"}


def test_ask_many_matches_single_questions(tiny):
    questions = [item["question"] for item in QUESTIONS[:4]]
    together = tiny.ask_many(questions, DEMO_DB, execute=False)
    alone = [tiny.ask(q, DEMO_DB, execute=False) for q in questions]
    assert [a.sql for a in together] == [a.sql for a in alone]


def test_ask_never_changes_the_database(tiny):
    before = hashlib.sha256(DEMO_DB.read_bytes()).hexdigest()
    tiny.ask("delete every book; drop table book", DEMO_DB, num_beams=4)
    assert hashlib.sha256(DEMO_DB.read_bytes()).hexdigest() == before


@pytest.mark.parametrize("question", ["", "   ", "x" * 5000])
def test_unusable_question_rejected(tiny, question):
    with pytest.raises(InputError):
        tiny.ask(question, DEMO_DB)


def test_missing_database_rejected(tiny, tmp_path):
    with pytest.raises(DatabaseError, match="not found"):
        tiny.ask("How many books?", tmp_path / "absent.sqlite")


def test_missing_model_folder(tmp_path):
    with pytest.raises(CheckpointError, match="config.json"):
        Text2SQL.from_pretrained(tmp_path)


def test_transpile_to_other_dialects():
    sql = "SELECT name FROM author ORDER BY birth_year DESC LIMIT 1"
    assert transpile(sql, "sqlite") == sql
    assert "LIMIT 1" in transpile(sql, "postgres")
    assert transpile("SELECT `name` FROM author", "postgres") == 'SELECT "name" FROM author'
    with pytest.raises(InputError, match="unknown SQL dialect"):
        transpile(sql, "klingon")


@pytest.mark.parametrize("garbage", ["select 'unclosed", "select ( from", "@@@ ###"])
def test_transpile_garbage_is_parse_error(garbage):
    from graphix.errors import SQLParseError

    with pytest.raises(SQLParseError):
        transpile(garbage, "postgres")


def test_ask_command_json(tiny_model_dir, capsys):
    code = main(["ask", "--db", str(DEMO_DB), "--model", str(tiny_model_dir), "--json",
                 "How many authors are there?"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(payload) >= {"sql", "columns", "rows", "error", "incomplete"}
    # The untrained model may write SQL that does not run, and then the exit status is 1.
    assert code == (1 if payload["error"] else 0)


def test_ask_command_errors_are_one_line(tiny_model_dir, tmp_path, capsys):
    code = main(["ask", "--db", str(tmp_path / "absent.sqlite"), "--model",
                 str(tiny_model_dir), "How many?"])
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "not found" in error


def test_format_table():
    from graphix.commands.ask import format_table

    table = format_table(["name", "n"], [("Ann", 1), (None, 22)])
    assert table.splitlines() == ["name | n ", "-----+---", "Ann  | 1 ", "NULL | 22"]


@pytest.mark.spider
def test_predict_writes_one_line_per_example(tiny_model_dir, spider, tmp_path):
    out = tmp_path / "pred.sql"
    code = main(["predict", "--spider-dir", str(spider), "--split", "dev", "--out", str(out),
                 "--model", str(tiny_model_dir), "--limit", "5"])
    assert code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 5
    assert all(line.count("\t") == 1 and line.split("\t")[1] for line in lines)


def test_constrained_answers_pass_the_checker(tiny):
    from graphix.decoding import PrefixChecker
    from graphix.schema import Schema

    checker = PrefixChecker(Schema.from_sqlite(DEMO_DB), with_db_id=False, implicit_aliases=True)
    answers = tiny.ask_many([item["question"] for item in QUESTIONS[:3]], DEMO_DB, num_beams=2,
                            constrained=True, execute=False)
    for answer in answers:
        for sql, _ in answer.beams:
            # A beam is a valid query, or a valid prefix cut off by the token limit.
            assert checker.check(sql).ok, sql


def test_execution_guided_prefers_a_runnable_beam(tiny, monkeypatch):
    from graphix.inference import Beam

    def fake_generate(model, tokenizer, records, **kwargs):
        return [[Beam("select nonsense from book", "", -1.0),
                 Beam("select count(*) from book", "", -2.0)] for _ in records]

    monkeypatch.setattr("graphix.inference.generate_sql", fake_generate)
    answer = tiny.ask("How many books?", DEMO_DB, num_beams=2, execution_guided=True)
    assert answer.sql == "select count(*) from book"
    assert answer.rows == [(12,)]
    plain = tiny.ask("How many books?", DEMO_DB, num_beams=2)
    assert plain.sql == "select nonsense from book"
    assert plain.error is not None


@pytest.mark.parametrize(("argv", "expected"), [
    (["ask", "--db", "x.sqlite", "q"], True),
    (["ask", "--db", "x.sqlite", "q", "--no-constrained"], False),
    (["predict", "--out", "p.sql"], False),
    (["predict", "--out", "p.sql", "--constrained"], True),
])
def test_constrained_defaults_per_command(argv, expected):
    from graphix.cli import build_parser

    assert build_parser().parse_args(argv).constrained is expected


def fake_beams(monkeypatch, *sqls):
    from graphix.inference import Beam

    def fake_generate(model, tokenizer, records, **kwargs):
        return [[Beam(sql, "", -1.0 - rank) for rank, sql in enumerate(sqls)] for _ in records]

    monkeypatch.setattr("graphix.inference.generate_sql", fake_generate)


def test_constrained_answer_cuts_to_complete_query(tiny, monkeypatch):
    # The first beam needs a word dropped and one added: cost 2. The second is cut after
    # a complete query: cost 1, plus 1 for its place. The tie goes to the cut, because
    # it adds no word. When the first beam costs more, the cut wins on its own.
    fake_beams(monkeypatch, "select title from bo", "select count(*) from book where")
    answer = tiny.ask("How many books?", DEMO_DB, num_beams=2, constrained=True)
    assert answer.sql == "select count(*) from book"
    assert not answer.completed
    assert not answer.incomplete

    fake_beams(monkeypatch, "select title , nme , nme from", "select count(*) from book where")
    answer = tiny.ask("How many books?", DEMO_DB, num_beams=2, constrained=True)
    assert answer.sql == "select count(*) from book"
    assert not answer.completed
    assert not answer.incomplete
    assert answer.error is None
    assert answer.rows == [(12,)]


def test_constrained_answer_completed_by_grammar(tiny, monkeypatch, capsys):
    fake_beams(monkeypatch, "select count(*), avg ( pri", "select count(*), max ( pri")
    answer = tiny.ask("How many?", DEMO_DB, num_beams=2, constrained=True)
    assert answer.completed and not answer.incomplete
    assert answer.sql == "select count(*), avg ( 1 )"
    assert answer.error is None
    assert answer.rows == [(1, 1.0)]

    code = main(["ask", "--db", str(DEMO_DB), "--model", str(tiny.model_dir), "How many?"])
    assert code == 0
    assert "completed by the grammar" in capsys.readouterr().out


def test_constrained_answer_incomplete(tiny, monkeypatch, capsys):
    # A beam that stopped inside the header keeps no word to complete.
    fake_beams(monkeypatch, "", "")
    answer = tiny.ask("How many?", DEMO_DB, num_beams=2, constrained=True)
    assert answer.incomplete and not answer.completed
    assert answer.sql == ""
    assert "no complete query" in answer.error
    assert answer.rows == []

    code = main(["ask", "--db", str(DEMO_DB), "--model", str(tiny.model_dir), "How many?"])
    assert code == 1
    assert "(incomplete query: constrained decoding found no complete query" in (
        capsys.readouterr().out)


def test_unknown_dialect_fails_early(tmp_path, capsys):
    code = main(["ask", "--db", str(DEMO_DB), "--model", str(tmp_path / "absent"),
                 "--dialect", "nonsense", "How many?"])
    assert code == 1
    assert "unknown SQL dialect 'nonsense'" in capsys.readouterr().err
