"""Score a file of predicted SQL against a file of gold SQL, example by example.

Both files hold one example per line, ``sql<TAB>db_id``, the format of Spider's
``dev_gold.sql``. A prediction line may hold only the SQL, and its database is always the
gold one. Each example gets a hardness level (from the gold SQL), an exact-set-match
decision (`graphix.metrics.exact_match`) and an execution decision
(`graphix.metrics.execution_match`).

A decision that cannot be made is None, with the reason in `ExampleResult.error`: EM
when the gold SQL is outside the Spider subset or no schema is found, EX when the
database or the gold query fails. Totals count each metric over the examples where it
was decided.

Predictions are read as the test-suite evaluator reads them, with one deliberate
difference. That evaluator replaces every ``value`` substring of a prediction by ``1``
(a placeholder some models emit for literals), which breaks gold-as-prediction runs on
columns such as ``market_value``; here only the whole lowercase word ``value`` is
replaced.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from graphix.errors import DatabaseError, InputError, SchemaError, SQLParseError
from graphix.metrics.exact_match import build_foreign_key_map, mismatched_components, normalize
from graphix.metrics.execution_match import (
    DEFAULT_MAX_GOLD_ROWS,
    DEFAULT_TIMEOUT_S,
    DatabasePool,
    execution_match,
)
from graphix.metrics.hardness import HARDNESS_LEVELS, hardness
from graphix.metrics.sql_structure import EMPTY_QUERY, Query, SchemaView, build_query
from graphix.schema import Schema

logger = logging.getLogger(__name__)

_VALUE_PLACEHOLDER = re.compile(r"\bvalue\b")


@dataclass(frozen=True)
class ExampleResult:
    """The decisions on one example; `em` and `ex` are 1, 0, or None when not decided.

    `em_differences` names the exact-match components where a parsed prediction differs.
    """

    index: int
    db_id: str
    hardness: str | None
    em: int | None
    ex: int | None
    error: str | None = None
    em_differences: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvaluationReport:
    """Per-example results and the options they were computed with."""

    examples: list[ExampleResult]
    strict: bool = False
    keep_distinct: bool = False

    def summary(self) -> dict:
        """Totals as fractions: ``count``, ``exact_match``, ``execution_accuracy``,
        ``by_hardness``, and how many examples each metric was decided on."""
        summary = _totals(self.examples)
        summary["by_hardness"] = {
            level: _totals([e for e in self.examples if e.hardness == level])
            for level in HARDNESS_LEVELS
        }
        summary["strict"] = self.strict
        summary["keep_distinct"] = self.keep_distinct
        return summary

    def format_table(self) -> str:
        """Return the totals as a text table: rows count / EM / EX, columns by hardness."""
        summary = self.summary()
        columns = [(level, summary["by_hardness"][level]) for level in HARDNESS_LEVELS]
        columns.append(("all", summary))
        lines = ["".join([f"{'':<22}"] + [f"{name:>10}" for name, _ in columns])]
        lines.append("".join([f"{'count':<22}"] + [f"{t['count']:>10}" for _, t in columns]))
        for label, key in (("exact match (EM)", "exact_match"),
                           ("execution (EX)", "execution_accuracy")):
            cells = ["-" if t[key] is None else f"{t[key]:.3f}" for _, t in columns]
            lines.append("".join([f"{label:<22}"] + [f"{cell:>10}" for cell in cells]))
        undecided_em = summary["count"] - summary["exact_match_decided"]
        undecided_ex = summary["count"] - summary["execution_decided"]
        if undecided_em or undecided_ex:
            lines.append(f"not decided: EM on {undecided_em} examples, EX on {undecided_ex} "
                         "(see the per-example errors)")
        if self.strict:
            lines.append("strict mode: not comparable with published Spider numbers")
        return "\n".join(lines)

    def write_jsonl(self, path: str | Path) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            for example in self.examples:
                handle.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")


def _totals(examples: list[ExampleResult]) -> dict:
    em = [e.em for e in examples if e.em is not None]
    ex = [e.ex for e in examples if e.ex is not None]
    return {
        "count": len(examples),
        "exact_match": sum(em) / len(em) if em else None,
        "execution_accuracy": sum(ex) / len(ex) if ex else None,
        "exact_match_decided": len(em),
        "execution_decided": len(ex),
    }


# ---------------------------------------------------------------------------- one example


@dataclass
class Evaluator:
    """Scorer of examples against the databases in `db_dir`, reusing schemas and connections.

    `tables` (Spider's ``tables.json``) supplies the foreign keys. Without it, or for a
    database it does not list, the keys declared in the SQLite file are used. Column
    names come from the SQLite file when there is one, as in the official evaluator.
    """

    db_dir: str | Path
    tables: str | Path | None = None
    strict: bool = False
    keep_distinct: bool = False
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    max_gold_rows: int = DEFAULT_MAX_GOLD_ROWS
    _spider_schemas: dict[str, Schema] = field(default_factory=dict, init=False, repr=False)
    _views: dict[str, SchemaView | str] = field(default_factory=dict, init=False, repr=False)
    _queries: dict[tuple[str, str], Query | SQLParseError] = field(
        default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        self.pool = DatabasePool(self.db_dir)
        if self.tables is not None:
            self._spider_schemas = Schema.load_spider_tables(self.tables)

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.pool.close()

    def schema_view(self, db_id: str) -> SchemaView:
        """Return the names and foreign-key map of `db_id`; raise SchemaError if unknown."""
        if db_id not in self._views:
            try:
                self._views[db_id] = self._load_view(db_id)
            except (SchemaError, DatabaseError) as error:
                self._views[db_id] = str(error)
        view = self._views[db_id]
        if isinstance(view, str):
            raise SchemaError(view)
        return view

    def _load_view(self, db_id: str) -> SchemaView:
        spider_schema = self._spider_schemas.get(db_id)
        paths = self.pool.files(db_id)
        preferred = [p for p in paths if p.stem == db_id] or paths
        if preferred:
            names_from = Schema.from_sqlite(preferred[0], db_id)
            if spider_schema is not None:
                _warn_on_disagreement(spider_schema, names_from)
        elif spider_schema is not None:
            names_from = spider_schema
        else:
            raise SchemaError(f"no schema for database {db_id!r}: neither "
                              f"{Path(self.db_dir) / db_id} nor the tables file has it")
        columns = {table.name.lower(): tuple(c.name.lower() for c in table.columns)
                   for table in names_from.tables}
        keys_from = spider_schema or names_from
        names = ["*"] + [f"{c.table.lower()}.{c.name.lower()}" for c in keys_from.columns[1:]]
        foreign_keys = build_foreign_key_map(names, list(keys_from.foreign_key_pairs))
        return SchemaView(columns, foreign_keys)

    def evaluate(self, gold_sql: str, pred_sql: str, db_id: str, index: int = 0) -> ExampleResult:
        """Score one prediction against its gold query."""
        pred_sql = _VALUE_PLACEHOLDER.sub("1", pred_sql)
        errors = []
        level = em = None
        try:
            view = self.schema_view(db_id)
        except SchemaError as error:
            view = None
            errors.append(f"exact match not decided: {error}")
        differences: tuple[str, ...] = ()
        if view is not None:
            level, em, differences, error = self._exact_match(gold_sql, pred_sql, db_id, view)
            if error:
                errors.append(error)

        outcome = execution_match(self.pool, db_id, gold_sql, pred_sql,
                                  keep_distinct=self.keep_distinct, timeout_s=self.timeout_s,
                                  max_gold_rows=self.max_gold_rows)
        if outcome.error:
            errors.append(outcome.error)
        ex = None if outcome.match is None else int(outcome.match)
        return ExampleResult(index, db_id, level, em, ex, "; ".join(errors) or None, differences)

    def _build(self, sql: str, db_id: str, view: SchemaView) -> Query:
        """Return `build_query` of `sql`, cached: Spider repeats many gold queries."""
        key = (db_id, sql)
        if key not in self._queries:
            try:
                self._queries[key] = build_query(sql, view, strict=self.strict)
            except SQLParseError as error:
                self._queries[key] = error
        built = self._queries[key]
        if isinstance(built, SQLParseError):
            raise type(built)(str(built))
        return built

    def _exact_match(self, gold_sql: str, pred_sql: str, db_id: str, view: SchemaView
                     ) -> tuple[str | None, int | None, tuple[str, ...], str | None]:
        try:
            gold = self._build(gold_sql, db_id, view)
        except SQLParseError as error:
            return None, None, (), f"gold SQL outside the Spider subset: {error}"
        level = hardness(gold)
        error = None
        try:
            pred = self._build(pred_sql, db_id, view)
        except SQLParseError as parse_error:
            pred = EMPTY_QUERY
            error = f"prediction not parsed: {parse_error}"
        failures = mismatched_components(
            normalize(pred, view.foreign_key_map, strict=self.strict),
            normalize(gold, view.foreign_key_map, strict=self.strict),
            strict=self.strict,
        )
        differences = () if error else tuple(failures)
        return level, int(not failures), differences, error


def _warn_on_disagreement(listed: Schema, actual: Schema) -> None:
    """Log the tables and columns that the tables file and the SQLite file do not share."""
    def names(schema: Schema) -> set[str]:
        # SQLite's internal tables (sqlite_sequence, ...) are left out of introspected
        # schemas, while Spider's tables.json lists sqlite_sequence for two databases.
        found = ({table.name.lower() for table in schema.tables}
                 | {f"{c.table.lower()}.{c.name.lower()}" for c in schema.columns[1:]})
        return {name for name in found if not name.startswith("sqlite_")}

    only_listed = sorted(names(listed) - names(actual))
    only_actual = sorted(names(actual) - names(listed))
    if only_listed or only_actual:
        logger.warning(
            "the tables file disagrees with %s: %d names only in the tables file (%s), %d only "
            "in the database (%s); foreign keys come from the tables file, so EM may be wrong",
            actual.path, len(only_listed), ", ".join(only_listed[:5]), len(only_actual),
            ", ".join(only_actual[:5]))


# ---------------------------------------------------------------------------- files


def read_sql_file(path: str | Path) -> list[tuple[str, str | None]]:
    """Read ``sql<TAB>db_id`` lines; return (sql, db_id or None) per line.

    Undecodable bytes become U+FFFD, so such a prediction fails instead of the run.
    Blank lines inside the file are kept as empty SQL, which keeps the alignment with the
    other file. Blank lines at the end are dropped.
    """
    try:
        text = Path(path).read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise InputError(f"cannot read SQL file {path}: {error.strerror}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    entries = []
    for line in lines:
        sql, _, rest = line.partition("\t")
        db_id = rest.split("\t", 1)[0].strip() or None
        entries.append((sql.strip(), db_id))
    return entries


def evaluate_files(gold: str | Path, pred: str | Path, db_dir: str | Path,
                   tables: str | Path | None = None, *, strict: bool = False,
                   keep_distinct: bool = False, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                   max_gold_rows: int = DEFAULT_MAX_GOLD_ROWS) -> EvaluationReport:
    """Score every line of `pred` against the same line of `gold`.

    Raises InputError when the files cannot be read, differ in length, or a gold line
    has no db_id.
    """
    gold_entries = read_sql_file(gold)
    pred_entries = read_sql_file(pred)
    if len(gold_entries) != len(pred_entries):
        raise InputError(
            f"{gold} has {len(gold_entries)} examples but {pred} has {len(pred_entries)}; "
            "give one prediction line per gold line"
        )
    for number, (_, db_id) in enumerate(gold_entries, start=1):
        if db_id is None:
            raise InputError(f"{gold} line {number} has no db_id; write 'sql<TAB>db_id'")

    results = []
    with Evaluator(db_dir, tables, strict=strict, keep_distinct=keep_distinct,
                   timeout_s=timeout_s, max_gold_rows=max_gold_rows) as evaluator:
        for index, ((gold_sql, db_id), (pred_sql, _)) in enumerate(zip(gold_entries,
                                                                        pred_entries)):
            results.append(evaluator.evaluate(gold_sql, pred_sql, db_id, index))
    logger.info("evaluated %d examples", len(results))
    return EvaluationReport(results, strict=strict, keep_distinct=keep_distinct)
