"""Broken and hostile inputs at every entry point: one clear error, never a traceback.

Each case runs the real command line (`graphix.cli.main`) or the Python API on files
made in tmp_path: damaged SQLite files, odd questions, malformed tables.json files and
damaged model folders. An exception that is not a GraphixError fails the test, because
the command line shows a traceback for those.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from graphix.api import Text2SQL
from graphix.cli import main
from graphix.errors import CheckpointError, DatabaseError, InputError, SchemaError
from graphix.schema import Schema
from tiny_model import build_tiny_model

DEMO_DB = Path(__file__).resolve().parent.parent / "data" / "demo" / "bookshop.sqlite"
QUESTIONS = json.loads((DEMO_DB.parent / "questions.json").read_text())


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny_model"), max_target_tokens=8)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return Text2SQL.from_pretrained(tiny_model_dir)


def _run(argv, capsys) -> tuple[int, str]:
    """Run the command line; return (exit code, stderr). Any escaping exception fails."""
    code = main([str(arg) for arg in argv])
    return code, capsys.readouterr().err


def _last_line(stderr: str) -> str:
    return stderr.strip().splitlines()[-1]


# ---------------------------------------------------------------------------- databases


def _broken_databases(folder: Path) -> dict[str, tuple[Path, str]]:
    """Damaged copies of the demo database, each with a word its error must contain."""
    data = DEMO_DB.read_bytes()
    cases = {}

    cases["missing"] = (folder / "absent.sqlite", "not found")
    (folder / "empty.sqlite").touch()
    cases["empty"] = (folder / "empty.sqlite", "empty")
    (folder / "text.sqlite").write_text("id,name\n1,Ann\n")
    cases["not sqlite"] = (folder / "text.sqlite", "not a SQLite database")
    (folder / "folder.sqlite").mkdir()
    cases["directory"] = (folder / "folder.sqlite", "not a file")
    (folder / "truncated.sqlite").write_bytes(data[: len(data) // 3])
    cases["truncated"] = (folder / "truncated.sqlite", "corrupt")
    scribbled = bytearray(data)
    scribbled[100:4096] = os.urandom(4096 - 100)
    (folder / "scribbled.sqlite").write_bytes(bytes(scribbled))
    cases["scribbled first page"] = (folder / "scribbled.sqlite", "corrupt")
    cases["name too long"] = (folder / ("x" * 300 + ".sqlite"), "File name too long")
    return cases


@pytest.fixture
def broken_databases(tmp_path):
    return _broken_databases(tmp_path)


CASES = ["missing", "empty", "not sqlite", "directory", "truncated", "scribbled first page",
         "name too long"]


@pytest.mark.parametrize("case", CASES)
def test_ask_broken_database_one_line(case, broken_databases, tiny_model_dir, capsys):
    path, words = broken_databases[case]
    code, stderr = _run(["ask", "--db", path, "--model", tiny_model_dir, "How many books?"],
                        capsys)
    assert code == 1
    assert _last_line(stderr).startswith("graphix ask: error: ")
    assert words in _last_line(stderr)
    assert "Traceback" not in stderr


@pytest.mark.parametrize("case", CASES)
def test_api_broken_database_is_database_error(case, broken_databases, tiny):
    path, words = broken_databases[case]
    with pytest.raises(DatabaseError, match=words):
        tiny.ask("How many books?", path)


@pytest.mark.parametrize("case", CASES)
def test_graph_broken_database_one_line(case, broken_databases, tmp_path, capsys):
    path, words = broken_databases[case]
    code, stderr = _run(["graph", "How many books?", "--db", path, "--out",
                         tmp_path / "graph.svg"], capsys)
    assert code == 1
    assert words in _last_line(stderr)
    assert not (tmp_path / "graph.svg").exists()


def test_locked_database_one_line(tmp_path, tiny_model_dir, capsys):
    path = tmp_path / "locked.sqlite"
    shutil.copy(DEMO_DB, path)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    writer.execute("CREATE TABLE pending (x)")
    try:
        code, stderr = _run(["ask", "--db", path, "--model", tiny_model_dir,
                             "How many books?"], capsys)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert code == 1
    assert "database is locked" in _last_line(stderr)


def test_verbose_adds_traceback(broken_databases, tiny_model_dir, capsys):
    path, _ = broken_databases["empty"]
    code, stderr = _run(["--verbose", "ask", "--db", path, "--model", tiny_model_dir,
                         "How many books?"], capsys)
    assert code == 1
    assert "Traceback" in stderr
    assert _last_line(stderr).startswith("graphix ask: error: database file is empty")


# ---------------------------------------------------------------------------- questions


@pytest.mark.parametrize("question, message", [
    ("", "empty"),
    ("   \t\n", "empty"),
    ("x" * 2001, "limit is 2000"),
    ("how many \udcff books", "lone surrogate"),
    ("\u200b\u200e\ufeff\x00", "only control or formatting"),
])
def test_unusable_question_rejected_before_model(question, message, tmp_path, capsys):
    # The model folder does not exist: the question check must come first.
    code, stderr = _run(["ask", "--db", DEMO_DB, "--model", tmp_path / "no-model", question],
                        capsys)
    assert code == 1
    assert message in _last_line(stderr)


@pytest.mark.parametrize("question", ["有多少本书？", "كم عدد الكتب؟", "📚📚📚📚"])
def test_non_english_question_rejected(tiny, question):
    with pytest.raises(InputError, match="ask in English"):
        tiny.ask(question, DEMO_DB)


def test_mostly_english_question_warns(tiny, caplog):
    answer = tiny.ask("How many books cost more than 10 €€ 📚?", DEMO_DB, execute=False)
    assert isinstance(answer.sql, str)
    assert "unknown" in caplog.text


@pytest.mark.parametrize("question", [
    "how\x00 many\x07 books\x1b[31m?",
    "\u202eHow many books?\u202c",
    "\ufeffHow many books?",
    "How many books; drop table book",
])
def test_control_characters_removed(question):
    cleaned = Text2SQL.check_question(question)
    assert all(char.isprintable() for char in cleaned)
    assert "many books" in cleaned or "many" in cleaned


def test_control_characters_answered(tiny):
    answer = tiny.ask("How\x00 many\x1b books\u200b?", DEMO_DB, execute=False)
    assert isinstance(answer.sql, str)


@pytest.fixture
def server(tmp_path, tiny_model_dir, monkeypatch):
    pytest.importorskip("fastapi", reason="the serve extra (FastAPI) is not installed")
    from fastapi.testclient import TestClient

    from graphix.server import create_app

    monkeypatch.setenv("GRAPHIX_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "dbs"
    folder.mkdir()
    shutil.copy(DEMO_DB, folder / "bookshop.sqlite")
    data = DEMO_DB.read_bytes()
    (folder / "broken.sqlite").write_bytes(data[:100] + os.urandom(len(data) - 100))
    with TestClient(create_app(folder, tiny_model_dir)) as client:
        yield client


@pytest.mark.parametrize("body, status, words", [
    ('{"db_id": "bookshop", "question": "how \\ud800 many"}', 422, "unicode"),
    ('{"db_id": "bookshop", "question": "\\u200b\\u0000"}', 422, "control"),
    ('{"db_id": "bookshop", "question": "有多少本书"}', 400, "English"),
    ('{"db_id": "broken", "question": "How many books?"}', 500, "corrupt"),
    ('{"db_id": "bookshop", "question": "How many books?", "beams": 1e9}', 422, "beams"),
])
def test_server_hostile_questions(server, body, status, words):
    response = server.post("/ask", content=body.encode("utf-8"),
                           headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["error"]


def test_server_answers_after_hostile_questions(server):
    server.post("/ask", json={"db_id": "bookshop", "question": "有多少本书"})
    response = server.post("/ask", json={"db_id": "bookshop", "question": "How many books?",
                                         "execute": False})
    assert response.status_code == 200
    assert isinstance(response.json()["sql"], str)


# ---------------------------------------------------------------------------- wide schemas


@pytest.fixture(scope="module")
def wide_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("wide") / "wide.sqlite"
    with sqlite3.connect(path) as connection:
        columns = ", ".join(f"measurement_{i} INTEGER" for i in range(1500))
        connection.execute(f"CREATE TABLE readings ({columns})")
        for table in range(40):
            columns = ", ".join(f"field_{table}_{i} TEXT" for i in range(50))
            connection.execute(f"CREATE TABLE sheet_{table} ({columns})")
    connection.close()
    return path


def test_wide_schema_reports_cut_items(tiny, wide_db, caplog):
    answer = tiny.ask("What is the largest measurement 7?", wide_db, execute=False)
    schema = Schema.from_sqlite(wide_db)
    items = len(schema.tables) + len(schema.columns) - 1
    assert 0 < answer.cut_items < items
    assert answer.to_dict()["cut_items"] == answer.cut_items
    assert "did not fit" in caplog.text


def test_small_schema_cuts_nothing(tiny):
    answer = tiny.ask("How many books?", DEMO_DB, execute=False)
    assert answer.cut_items == 0


def test_ask_json_reports_cut_items(tiny_model_dir, wide_db, capsys):
    code = main(["ask", "--db", str(wide_db), "--model", str(tiny_model_dir), "--json",
                 "--no-execute", "What is the largest measurement 7?"])
    payload = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert payload["cut_items"] > 0
    # The untrained model may find no complete query, and then the exit status is 1.
    assert code == (1 if payload["incomplete"] else 0)


# ---------------------------------------------------------------------------- tables.json

GOOD_ENTRY = {
    "db_id": "shop", "table_names_original": ["item"], "table_names": ["item"],
    "column_names_original": [[-1, "*"], [0, "id"], [0, "name"]],
    "column_names": [[-1, "*"], [0, "id"], [0, "name"]],
    "column_types": ["text", "number", "text"], "primary_keys": [1], "foreign_keys": [],
}

MALFORMED_TABLES = {
    "entry not an object": [1, 2],
    "entry a list": [[GOOD_ENTRY]],
    "db_id not a string": [{**GOOD_ENTRY, "db_id": 7}],
    "primary key out of range": [{**GOOD_ENTRY, "primary_keys": [9]}],
    "primary key is star": [{**GOOD_ENTRY, "primary_keys": [0]}],
    "negative primary key": [{**GOOD_ENTRY, "primary_keys": [-1]}],
    "primary key a name": [{**GOOD_ENTRY, "primary_keys": ["id"]}],
    "foreign key out of range": [{**GOOD_ENTRY, "foreign_keys": [[1, 9]]}],
    "foreign key triple": [{**GOOD_ENTRY, "foreign_keys": [[1, 2, 1]]}],
    "foreign key names": [{**GOOD_ENTRY, "foreign_keys": [["id", "name"]]}],
    "column pair too short": [{**GOOD_ENTRY, "column_names_original": [[-1, "*"], [0], [0, "name"]]}],
    "table index a string": [{**GOOD_ENTRY, "column_names_original": [[-1, "*"], ["0", "id"],
                                                                     [0, "name"]]}],
    "column name a number": [{**GOOD_ENTRY, "column_names_original": [[-1, "*"], [0, 5],
                                                                     [0, "name"]]}],
    "table names null": [{**GOOD_ENTRY, "table_names_original": None}],
    "table lists differ": [{**GOOD_ENTRY, "table_names": ["item", "extra"]}],
}


@pytest.mark.parametrize("case", sorted(MALFORMED_TABLES))
def test_malformed_tables_json_is_schema_error(case, tmp_path):
    path = tmp_path / "tables.json"
    path.write_text(json.dumps(MALFORMED_TABLES[case]))
    with pytest.raises(SchemaError, match="tables"):
        Schema.load_spider_tables(path)


@pytest.fixture
def shop_dir(tmp_path):
    folder = tmp_path / "db" / "shop"
    folder.mkdir(parents=True)
    with sqlite3.connect(folder / "shop.sqlite") as connection:
        connection.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO item VALUES (?, ?)", [(1, "a"), (2, "b")])
    connection.close()
    gold = tmp_path / "gold.sql"
    gold.write_text("SELECT count(*) FROM item\tshop\n")
    return tmp_path


@pytest.mark.parametrize("case", ["primary key out of range", "foreign key triple",
                                  "entry not an object"])
def test_evaluate_malformed_tables_one_line(case, shop_dir, capsys):
    tables = shop_dir / "tables.json"
    tables.write_text(json.dumps(MALFORMED_TABLES[case]))
    gold = shop_dir / "gold.sql"
    code, stderr = _run(["evaluate", "--gold", gold, "--pred", gold, "--db-dir",
                         shop_dir / "db", "--tables", tables], capsys)
    assert code == 1
    assert _last_line(stderr).startswith("graphix evaluate: error: ")
    assert "tables" in _last_line(stderr)


def test_tables_json_disagreeing_with_database_warns(shop_dir, caplog):
    from graphix.metrics import evaluate_files

    entry = {**GOOD_ENTRY, "table_names_original": ["goods"],
             "column_names_original": [[-1, "*"], [0, "sku"], [0, "title"]]}
    tables = shop_dir / "tables.json"
    tables.write_text(json.dumps([entry]))
    gold = shop_dir / "gold.sql"
    report = evaluate_files(gold, gold, shop_dir / "db", tables, timeout_s=2)
    assert report.examples[0].ex == 1
    assert "disagrees" in caplog.text
    assert "goods" in caplog.text


def test_evaluate_missing_db_dir_one_line(shop_dir, capsys):
    gold = shop_dir / "gold.sql"
    code, stderr = _run(["evaluate", "--gold", gold, "--pred", gold, "--db-dir",
                         shop_dir / "absent"], capsys)
    assert code == 1
    assert "not a folder" in _last_line(stderr)


@pytest.mark.parametrize("command", ["evaluate", "ask"])
@pytest.mark.parametrize("timeout", ["nan", "0", "-1", "inf"])
def test_non_positive_timeout_rejected(command, timeout, shop_dir, capsys):
    gold = shop_dir / "gold.sql"
    if command == "evaluate":
        argv = ["evaluate", "--gold", gold, "--pred", gold, "--db-dir", shop_dir / "db"]
    else:
        argv = ["ask", "--db", DEMO_DB, "--model", shop_dir / "no-model", "How many?"]
    code, stderr = _run(argv + ["--timeout", timeout], capsys)
    assert code == 1
    assert "--timeout must be a positive number" in _last_line(stderr)


def test_examples_file_with_wrong_types(tmp_path):
    from graphix.data import load_examples

    for payload in ({"question": "q", "db_id": "d"}, [{"question": 5, "db_id": "d"}], 7):
        path = tmp_path / "dev.json"
        path.write_text(json.dumps(payload))
        with pytest.raises(InputError, match="dev.json"):
            load_examples(path)


def test_malformed_value_index_cache_ignored(tmp_path):
    from graphix.value_index import INDEX_FORMAT, ValueIndex, cache_path

    schema = Schema.from_sqlite(DEMO_DB)
    cache = cache_path(DEMO_DB, tmp_path)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"format": INDEX_FORMAT, "columns": [["book", 1]]}))
    index = ValueIndex.load_or_build(DEMO_DB, schema, cache_dir=tmp_path)
    assert index.values


# ---------------------------------------------------------------------------- model folders


def _damaged_copy(source: Path, folder: Path, damage) -> Path:
    shutil.copytree(source, folder)
    damage(folder)
    return folder


def _edit_config(**changes):
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **changes}))
    return damage


def _truncate_weights(keep: int):
    def damage(folder: Path) -> None:
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:keep])
    return damage


def _scribble_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:8] + os.urandom(len(data) - 8))


DAMAGED_MODELS = {
    "config not JSON": (lambda f: (f / "config.json").write_text("{oops"), "not valid JSON"),
    "config a list": (lambda f: (f / "config.json").write_text("[1, 2]"), "not a JSON object"),
    "config binary": (lambda f: (f / "config.json").write_bytes(b"\xff\xfe\x00"), "not valid JSON"),
    "weights truncated": (_truncate_weights(5000), "truncated or corrupt"),
    "weights header only": (_truncate_weights(4), "truncated or corrupt"),
    "weights scribbled": (_scribble_weights, "truncated or corrupt"),
    "weights missing": (lambda f: (f / "model.safetensors").unlink(), "model.safetensors"),
    "other architecture": (_edit_config(model_type="bert"), "'bert', not 'graphix_t5'"),
    "plain t5": (_edit_config(model_type="t5"), "'t5', not 'graphix_t5'"),
    "vocabulary size changed": (_edit_config(vocab_size=400), "other shapes"),
    "fewer layers": (_edit_config(num_layers=1), "do not fit its config.json"),
    "tokenizer missing": (lambda f: [(f / n).unlink() for n in
                                     ("spiece.model", "tokenizer.json", "tokenizer_config.json")],
                          "no tokenizer found"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED_MODELS))
def test_damaged_model_folder_is_checkpoint_error(case, tiny_model_dir, tmp_path, capsys):
    damage, words = DAMAGED_MODELS[case]
    folder = _damaged_copy(tiny_model_dir, tmp_path / "model", damage)
    with pytest.raises(CheckpointError, match=words):
        Text2SQL.from_pretrained(folder)
    code, stderr = _run(["ask", "--db", DEMO_DB, "--model", folder, "How many books?"], capsys)
    assert code == 1
    assert words in _last_line(stderr)
    assert stderr.strip().splitlines()[-1].startswith("graphix ask: error: ")


def test_tokenizer_larger_than_vocabulary(tiny_model_dir, tmp_path):
    from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration

    folder = _damaged_copy(tiny_model_dir, tmp_path / "model", lambda f: None)
    config = GraphixT5Config.from_pretrained(folder)
    config.vocab_size = 150
    GraphixT5ForConditionalGeneration(config).save_pretrained(folder)
    with pytest.raises(CheckpointError, match="200 tokens but the model's vocabulary has 150"):
        Text2SQL.from_pretrained(folder)


@pytest.mark.parametrize("content", ['[1]', '{"config": {"max_input_tokens": "lots"}}',
                                     '{"config": {"max_target_tokens": -5}}', "\xff"])
def test_bad_training_settings_ignored(content, tiny_model_dir, tmp_path, caplog):
    folder = _damaged_copy(tiny_model_dir, tmp_path / "model",
                           lambda f: (f / "training.json").write_text(content))
    model = Text2SQL.from_pretrained(folder)
    assert model.max_input_tokens == 512
    assert model.max_new_tokens == 256
    assert "ignoring" in caplog.text


def test_resume_from_damaged_checkpoint(tiny_model_dir, tmp_path):
    from graphix.config import to_dict
    from graphix.training import Trainer, load_run_config
    from graphix.training_config import TrainConfig

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(TrainConfig(output_dir=str(run)))))
    trainer = Trainer(load_run_config(run, []))
    latest = trainer.checkpoints.save(
        5, lambda folder: [shutil.copy(path, folder) for path in tiny_model_dir.iterdir()])
    _truncate_weights(100)(latest)
    (latest / "trainer_state.pt").write_bytes(b"not a pickle")

    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        trainer._load_latest()
    shutil.copy(tiny_model_dir / "model.safetensors", latest / "model.safetensors")
    with pytest.raises(CheckpointError, match="cannot be read"):
        trainer._load_latest()


@pytest.mark.parametrize("content", ["{oops", "[1, 2]"])
def test_resume_with_damaged_run_config(content, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(content)
    code, stderr = _run(["train", "--resume", "--output-dir", run], capsys)
    assert code == 1
    assert "cannot resume" in _last_line(stderr)


# ---------------------------------------------------------------------------- graph command


@pytest.mark.parametrize("name", ["graph.xyz", "graph", "folder.svg"])
def test_graph_bad_output_name(name, tmp_path, capsys):
    (tmp_path / "folder.svg").mkdir()
    code, stderr = _run(["graph", "How many books?", "--db", DEMO_DB, "--out", tmp_path / name,
                         "--no-values"], capsys)
    assert code == 1
    assert "must be an image file name" in _last_line(stderr)


def test_graph_lone_surrogate_question(tmp_path, capsys):
    code, stderr = _run(["graph", "how \udcff many", "--db", DEMO_DB, "--out",
                         tmp_path / "g.svg", "--no-values"], capsys)
    assert code == 1
    assert "lone surrogate" in _last_line(stderr)


# ---------------------------------------------------------------------------- Spider folders


@pytest.fixture
def spider_folder(tmp_path):
    """A Spider-layout folder with the demo database; dev.json is written by each test."""
    folder = tmp_path / "spider"
    (folder / "database" / "bookshop").mkdir(parents=True)
    shutil.copy(DEMO_DB, folder / "database" / "bookshop" / "bookshop.sqlite")
    entry = Schema.from_sqlite(DEMO_DB).to_spider_entry()
    (folder / "tables.json").write_text(json.dumps([entry]))
    return folder


def _write_split(folder: Path, examples) -> None:
    (folder / "dev.json").write_text(json.dumps(examples))


@pytest.mark.parametrize("examples, words", [
    ([{"question": "How many books?", "db_id": "nowhere"}], "'nowhere' is not in"),
    ([{"question": "How many?", "db_id": "bookshop"}, {"question": " ", "db_id": "bookshop"}],
     "dev example 1 (bookshop): the question is empty"),
    ([{"question": "有多少本书", "db_id": "bookshop"}], "dev example 0 (bookshop)"),
    ([{"question": "how \ud800 many", "db_id": "bookshop"}], "lone surrogate"),
])
def test_predict_bad_split_one_line(examples, words, spider_folder, tiny_model_dir, capsys):
    _write_split(spider_folder, examples)
    out = spider_folder / "pred.sql"
    code, stderr = _run(["predict", "--spider-dir", spider_folder, "--out", out,
                         "--model", tiny_model_dir], capsys)
    assert code == 1
    assert words in _last_line(stderr)
    assert not out.exists()


def test_preprocess_lone_surrogate_one_line(spider_folder, tmp_path, capsys):
    _write_split(spider_folder, [{"question": "how \ud800 many", "db_id": "bookshop"}])
    code, stderr = _run(["preprocess", "--spider-dir", spider_folder, "--split", "dev",
                         "--out", tmp_path / "dataset", "--cache-dir", tmp_path / "cache"],
                        capsys)
    assert code == 1
    assert "lone surrogate" in _last_line(stderr)


@pytest.mark.parametrize("options, words", [
    ({"timeout_s": float("nan")}, "timeout_s"),
    ({"timeout_s": 0}, "timeout_s"),
    ({"max_rows": 0}, "max_rows"),
    ({"num_beams": 0}, "num_beams"),
])
def test_api_unusable_options_rejected(tiny, options, words):
    with pytest.raises(InputError, match=words):
        tiny.ask("How many books?", DEMO_DB, **options)


def test_schema_text_with_invalid_utf8_is_database_error(tmp_path, capsys):
    path = tmp_path / "damaged.sqlite"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE maker (maker_id INTEGER PRIMARY KEY, name TEXT)")
    connection.close()
    data = bytearray(path.read_bytes())
    # SQLite's "malformed database schema" message then quotes bytes that are not UTF-8.
    data[data.rindex(b"REATE") + 1] = 0x80
    path.write_bytes(bytes(data))
    with pytest.raises(DatabaseError, match="corrupt"):
        Schema.from_sqlite(path)
    code, stderr = _run(["graph", "How many makers?", "--db", path, "--out",
                         tmp_path / "graph.svg"], capsys)
    assert code == 1
    assert "corrupt" in _last_line(stderr)


@pytest.mark.parametrize("field", ["column_names_original", "column_names", "table_names",
                                   "primary_keys", "foreign_keys"])
def test_tables_field_not_a_list(field):
    entry = {**GOOD_ENTRY, field: {"0": [0, "id"], "1": [0, "name"]}}
    with pytest.raises(SchemaError, match=f"{field} must be lists"):
        Schema.from_spider_entry(entry)


@pytest.mark.parametrize("option", [["--timeout", "nan"], ["--max-wait-ms", "nan"]])
def test_serve_rejects_nan_options(option, tmp_path, capsys):
    pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
    code, stderr = _run(["serve", "--db-dir", DEMO_DB.parent, "--model", tmp_path / "none",
                         *option], capsys)
    assert code == 1
    assert "nan" in _last_line(stderr)
