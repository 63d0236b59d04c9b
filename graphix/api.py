"""Python API: load a model once, then ask questions of SQLite databases.

>>> from graphix.api import Text2SQL                       # doctest: +SKIP
>>> model = Text2SQL.from_pretrained()                      # the bundled model
>>> answer = model.ask("How many books are there?", db="data/demo/bookshop.sqlite")
>>> answer.sql, answer.rows
('select count(*) from book', [(12,)])
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from graphix.errors import CheckpointError, GraphixError, InputError, SQLParseError
from graphix.execution import (
    DEFAULT_MAX_ROWS,
    DEFAULT_TIMEOUT_S,
    ReadOnlyDatabase,
    check_database_file,
)
from graphix.schema import Schema

logger = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent / "resources" / "default_model"
MAX_QUESTION_CHARS = 2000
MAX_UNKNOWN_SHARE = 0.5
"""Largest share of a question's visible characters that may be missing from the
vocabulary; past it the question is rejected as not English."""

# Control and format characters (NUL, escape sequences, zero-width spaces, direction
# marks, byte-order marks) carry no words; questions get them as spaces.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf"})
INCOMPLETE_MESSAGE = ("constrained decoding found no complete query for this schema: every "
                      "beam stopped at a dead end or at the length limit, and no short "
                      "completion of one is valid. Try a wider beam (--beams) or rephrase "
                      "the question with the schema's names")


@dataclass
class Answer:
    """The SQL for one question, its beams and, when executed, the result rows."""

    question: str
    sql: str
    beams: list[tuple[str, float]]
    """(sql, log-probability) of every finished beam, best first."""
    columns: list[str] = field(default_factory=list)
    rows: list[tuple] = field(default_factory=list)
    truncated: bool = False
    """True when the row cap cut the result."""
    error: str | None = None
    """The execution error message, or None when the SQL ran. The SQL is returned either way."""
    dialect: str = "sqlite"
    timings_ms: dict[str, float] = field(default_factory=dict)
    cut_items: int = 0
    """Count of tables and columns left out of the model input, which were past the
    model's maximum input length. The model did not see them."""
    incomplete: bool = False
    """True when constrained decoding found no complete query: no beam, no prefix of a beam
    and no grammar completion of one is. `sql` is then the unfinished top beam, and
    `error` explains why."""
    completed: bool = False
    """True when no beam was a complete query (or, with execution-guided choice, none ran),
    and `sql` is a cut of a beam with words added by grammar completion, so the model did
    not write its last words (`graphix.decoding.completion`)."""

    def to_dict(self) -> dict:
        return {"question": self.question, "sql": self.sql, "dialect": self.dialect,
                "beams": [{"sql": sql, "score": score} for sql, score in self.beams],
                "columns": self.columns, "rows": [list(row) for row in self.rows],
                "truncated": self.truncated, "error": self.error, "timings_ms": self.timings_ms,
                "cut_items": self.cut_items, "incomplete": self.incomplete,
                "completed": self.completed}


def transpile(sql: str, dialect: str) -> str:
    """Rewrite SQLite SQL for another dialect with sqlglot (postgres, mysql, duckdb, ...)."""
    if dialect == "sqlite":
        return sql
    import sqlglot
    from sqlglot.errors import SqlglotError

    check_dialect(dialect)
    from graphix.metrics.sql_structure import check_join_count

    check_join_count(sql)
    try:
        return sqlglot.transpile(sql, read="sqlite", write=dialect)[0]
    except SqlglotError as error:
        # sqlglot marks the failing token with terminal color codes; keep plain text.
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
        raise SQLParseError(f"cannot transpile the generated SQL to {dialect}: {message}") from None


def check_dialect(dialect: str) -> None:
    """Raise InputError unless `dialect` is a sqlglot dialect (``sqlite``, ``postgres``, ...)."""
    import sqlglot

    if dialect not in sqlglot.dialects.DIALECTS and dialect not in _dialect_names():
        raise InputError(f"unknown SQL dialect {dialect!r}; choose one of "
                         + ", ".join(sorted(_dialect_names())))


def _dialect_names() -> set[str]:
    from sqlglot.dialects.dialect import Dialect

    return {name for name in Dialect.classes if name}


class Text2SQL:
    """A loaded Graphix model with per-database caches of schemas and value indexes."""

    def __init__(self, model, tokenizer, *, max_input_tokens: int = 512,
                 max_new_tokens: int = 256, model_dir: Path | None = None):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_input_tokens = max_input_tokens
        self.max_new_tokens = max_new_tokens
        self.model_dir = model_dir
        self._preprocessors: dict[tuple, object] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, *, device: str = "cpu") -> Text2SQL:
        """Load a model folder written by ``graphix train`` (default: the bundled model)."""
        import torch

        from graphix.checkpoints import load_model
        from graphix.tokenizer import load_tokenizer

        folder = Path(path) if path is not None else DEFAULT_MODEL_DIR
        if not (folder / "config.json").is_file():
            if path is None:
                raise CheckpointError(
                    f"no bundled model found at {folder}: this version ships none yet. Pass "
                    "--model with a folder written by `graphix train`"
                )
            raise CheckpointError(f"model folder {folder} has no config.json; pass a folder "
                                  "written by `graphix train` or save_pretrained")
        model = load_model(folder, dtype=torch.float32)
        tokenizer = load_tokenizer(folder)
        if len(tokenizer) > model.config.vocab_size:
            raise CheckpointError(
                f"the tokenizer in {folder} has {len(tokenizer)} tokens but the model's "
                f"vocabulary has {model.config.vocab_size}; the two come from different runs. "
                "Pass a folder written by one `graphix train` run"
            )
        settings = _training_settings(folder)
        return cls(model.to(device), tokenizer,
                   max_input_tokens=settings.get("max_input_tokens", 512),
                   max_new_tokens=settings.get("max_target_tokens", 256), model_dir=folder)

    # ------------------------------------------------------------------ preprocessing

    def _schema_and_preprocessor(self, db):
        from graphix.preprocess import PreprocessConfig, Preprocessor
        from graphix.serialization import SerializationConfig

        if isinstance(db, Schema):
            schema = db
            key = ("schema", id(db))
        else:
            path = check_database_file(db).resolve()
            stat = path.stat()
            key = ("file", str(path), stat.st_mtime_ns, stat.st_size)
            schema = None
        with self._lock:
            cached = self._preprocessors.get(key)
        if cached is not None:
            return cached
        if schema is None:
            schema = Schema.from_sqlite(db)
        if not schema.tables:
            raise InputError(f"database {schema.path or schema.db_id} has no tables to ask about")
        config = PreprocessConfig(serialization=SerializationConfig(
            max_input_tokens=self.max_input_tokens, max_target_tokens=self.max_new_tokens))
        preprocessor = Preprocessor(self.tokenizer, config)
        with self._lock:
            self._preprocessors[key] = (schema, preprocessor)
        return schema, preprocessor

    @staticmethod
    def check_question(question: str) -> str:
        """Return the question with control characters removed and spaces folded.

        Raises InputError for a question that is not text, is empty once invisible
        characters are removed, is too long, or is not valid Unicode.
        """
        if not isinstance(question, str) or not question.strip():
            raise InputError("the question is empty; ask a question about the database in English")
        if len(question) > MAX_QUESTION_CHARS:
            raise InputError(f"the question has {len(question)} characters; the limit is "
                             f"{MAX_QUESTION_CHARS}. Shorten it")
        try:
            question.encode("utf-8")
        except UnicodeEncodeError as error:
            # Lone surrogates: undecodable bytes on the command line, or JSON escapes.
            raise InputError(f"the question is not valid Unicode text (character {error.start} "
                             "is a lone surrogate); pass the question as UTF-8") from None
        visible = "".join(" " if unicodedata.category(char) in _INVISIBLE_CATEGORIES else char
                          for char in question)
        if not visible.strip():
            raise InputError("the question has only control or formatting characters; ask a "
                             "question about the database in English")
        return " ".join(visible.split())

    def check_usable_question(self, question: str) -> str:
        """Return `check_question(question)`, also rejecting questions the model cannot read."""
        question = self.check_question(question)
        self._check_vocabulary(question)
        return question

    def _check_vocabulary(self, question: str) -> None:
        """Raise InputError when most of `question` is characters the tokenizer lacks."""
        visible = [char for char in question if not char.isspace()]
        unknown = self._unknown_characters(set(visible))
        if not unknown:
            return
        share = sum(char in unknown for char in visible) / len(visible)
        sample = "".join(sorted(unknown)[:10])
        if share > MAX_UNKNOWN_SHARE:
            raise InputError(
                f"{share:.0%} of the question's characters ({sample!r}) are not in the model's "
                "vocabulary; the model reads English questions, so ask in English"
            )
        logger.warning("the model reads these characters of the question as unknown: %r", sample)

    def _unknown_characters(self, characters: set[str]) -> set[str]:
        unknown_id = self.tokenizer.unk_token_id
        if unknown_id is None or not characters:
            return set()
        ordered = sorted(characters)
        encoded = self.tokenizer(ordered, add_special_tokens=False)["input_ids"]
        return {char for char, ids in zip(ordered, encoded) if unknown_id in ids}

    # ------------------------------------------------------------------ asking

    def ask(self, question: str, db, *, num_beams: int = 1, execute: bool = True,
            dialect: str = "sqlite", max_rows: int = DEFAULT_MAX_ROWS,
            timeout_s: float = DEFAULT_TIMEOUT_S, constrained: bool = False,
            execution_guided: bool = False) -> Answer:
        """Translate one question into SQL for `db` (a SQLite path or a Schema) and run it."""
        return self.ask_many([question], db, num_beams=num_beams, execute=execute,
                             dialect=dialect, max_rows=max_rows, timeout_s=timeout_s,
                             constrained=constrained, execution_guided=execution_guided)[0]

    def ask_many(self, questions: list[str], db, *, num_beams: int = 1, execute: bool = True,
                 dialect: str = "sqlite", max_rows: int = DEFAULT_MAX_ROWS,
                 timeout_s: float = DEFAULT_TIMEOUT_S, batch_size: int = 16,
                 constrained: bool = False, execution_guided: bool = False) -> list[Answer]:
        """Answer several questions; `db` is one database for all or a list, one per question.

        `constrained` masks, during beam search, continuations that can no longer become
        valid SQL for the schema. `execution_guided` returns the best beam that names only
        schema items and runs without error on the database (the top beam when none does).
        """
        from graphix.data import Example
        from graphix.inference import generate_sql

        dbs = db if isinstance(db, (list, tuple)) else [db] * len(questions)
        if len(dbs) != len(questions):
            raise InputError(f"got {len(questions)} questions but {len(dbs)} databases; pass one "
                             "database or one per question")
        if num_beams < 1:
            raise InputError(f"num_beams must be at least 1, got {num_beams}")
        if max_rows < 1:
            raise InputError(f"max_rows must be at least 1, got {max_rows}")
        if not (timeout_s > 0 and math.isfinite(timeout_s)):
            raise InputError(f"timeout_s must be a positive number of seconds, got {timeout_s}")

        start = time.perf_counter()
        records, schemas = [], []
        for question, database in zip(questions, dbs):
            question = self.check_usable_question(question)
            schema, preprocessor = self._schema_and_preprocessor(database)
            record = preprocessor.process(Example(question, schema.db_id), schema)
            if record["cut_items"]:
                logger.warning("%s: %d tables and columns did not fit in %d input tokens and "
                               "were left out, so the model did not see them", schema.db_id,
                               record["cut_items"], self.max_input_tokens)
            records.append(record)
            schemas.append(schema)
        prepared = time.perf_counter()
        factory = None
        if constrained:
            factory = self._constraint_factory(schemas)
        beams = generate_sql(self.model, self.tokenizer, records, num_beams=num_beams,
                             max_new_tokens=self.max_new_tokens, batch_size=batch_size,
                             logits_processor_factory=factory)
        generated = time.perf_counter()

        answers = []
        for question, schema, record, candidates in zip(questions, schemas, records, beams):
            answer = Answer(question=question, sql=candidates[0].sql,
                            beams=[(b.sql, b.score) for b in candidates], dialect=dialect,
                            cut_items=record["cut_items"])
            complete = True
            if execution_guided:
                answer.sql, ran, answer.completed = self._choose_executable(answer, schema,
                                                                            timeout_s)
                complete = ran or not constrained or self._is_complete(answer.sql, schema)
            elif constrained:
                answer.sql, complete, answer.completed = self._choose_complete(answer, schema)
            if not complete:
                answer.incomplete = True
                answer.error = INCOMPLETE_MESSAGE
            if execute and not answer.incomplete:
                self._execute(answer, schema, max_rows, timeout_s)
            if dialect != "sqlite" and not answer.incomplete:
                answer.sql = transpile(answer.sql, dialect)
                answer.beams = [(transpile(sql, dialect), score) for sql, score in answer.beams]
            answers.append(answer)
        finished = time.perf_counter()
        share = 1000 / len(questions)
        for answer in answers:
            answer.timings_ms = {"preprocess": round((prepared - start) * share, 2),
                                 "generate": round((generated - prepared) * share, 2),
                                 "execute": round((finished - generated) * share, 2)}
        return answers

    def _checker(self, schema: Schema, *, bare_sql: bool = False):
        """Return the cached prefix checker of `schema`: for decoding targets (``db_id |
        sql``), or with `bare_sql` for finished SQL, where aliases may omit ``as``."""
        from graphix.decoding import PrefixChecker

        key = ("checker", bare_sql, id(schema))
        with self._lock:
            checker = self._preprocessors.get(key)
            if checker is None:
                if bare_sql:
                    # Finished SQL is checked as SQLite reads it, without the limits that
                    # keep a decoding model on the training targets' form.
                    checker = PrefixChecker(schema, with_db_id=False, implicit_aliases=True,
                                            strict=False)
                else:
                    checker = PrefixChecker(schema)
                self._preprocessors[key] = (checker, schema)
            else:
                checker = checker[0]
        return checker

    def _constraint_factory(self, schemas: list[Schema]):
        from graphix.decoding.logits import SchemaConstrainedLogitsProcessor

        checkers = [self._checker(schema) for schema in schemas]

        def factory(positions: slice):
            return [SchemaConstrainedLogitsProcessor(self.tokenizer, checkers[positions])]

        return factory

    def _is_complete(self, sql: str, schema: Schema) -> bool:
        checker = self._checker(schema, bare_sql=True)
        return checker.is_complete(checker.check(sql))

    def _choose_complete(self, answer: Answer, schema: Schema) -> tuple[str, bool, bool]:
        """Return the best beam that is a complete query, True and False.

        Without one, return the cheapest cut or grammar completion of a beam (see
        `completions_of_beams`), True, and whether words were added; or else the top beam,
        False and False.
        """
        from graphix.decoding.completion import completions_of_beams

        for sql, _ in answer.beams:
            if self._is_complete(sql, schema):
                return sql, True, False
        checker = self._checker(schema, bare_sql=True)
        found = completions_of_beams(checker, [sql for sql, _ in answer.beams], per_beam=1)
        if found:
            completion = found[0][1]
            return completion.sql, True, completion.steps > 0
        return answer.sql, False, False

    def _choose_executable(self, answer: Answer, schema: Schema,
                           timeout_s: float) -> tuple[str, bool, bool]:
        """Return the SQL that execution-guided choice picks, whether it ran, and whether
        grammar completion finished it."""
        from graphix.decoding import choose_executable

        if schema.path is None:
            return answer.sql, False, False
        with ReadOnlyDatabase(schema.path) as database:
            choice = choose_executable([sql for sql, _ in answer.beams], schema, database,
                                       timeout_s=timeout_s)
        return choice.sql, not choice.fallback, choice.completed

    @staticmethod
    def _execute(answer: Answer, schema: Schema, max_rows: int, timeout_s: float) -> None:
        if schema.path is None:
            answer.error = "not executed: the schema has no database file"
            return
        try:
            with ReadOnlyDatabase(schema.path) as database:
                result = database.execute(answer.sql, timeout_s=timeout_s, max_rows=max_rows)
        except GraphixError as error:
            answer.error = str(error)
            logger.info("generated SQL failed on %s: %s", schema.path, error)
            return
        answer.columns = list(result.columns)
        answer.rows = result.rows
        answer.truncated = result.truncated


def _training_settings(folder: Path) -> dict:
    path = folder / "training.json"
    if not path.exists():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        logger.warning("ignoring unreadable %s", path)
        return {}
    usable = {}
    for key in ("max_input_tokens", "max_target_tokens"):
        value = settings.get(key) if isinstance(settings, dict) else None
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            usable[key] = value
        else:
            logger.warning("ignoring %s=%r in %s: expected a positive integer", key, value, path)
    return usable
