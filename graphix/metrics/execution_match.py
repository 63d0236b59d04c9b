"""Execution accuracy: do the predicted and the gold query return the same result?

The decision follows the test-suite evaluator (``taoyds/test-suite-sql-eval``,
``exec_eval.py``), the current official Spider execution metric:

- both queries get ``> =``, ``< =``, ``! =`` joined; unless `keep_distinct` is set, both
  are cut to their first statement and every ``DISTINCT`` is removed, including the one
  in ``count(DISTINCT x)``;
- results are compared as bags of rows, in row order only when the gold text contains
  ``order by``, and any permutation of the prediction's columns may make them equal;
- two empty results are equal whatever their columns;
- when the database folder holds several ``.sqlite`` files (a test suite), the
  prediction must match on every one of them.

Unlike the official script, which never interrupts a query, every query here runs
under a time limit, and a prediction that runs past it is wrong. Results are fetched
with row caps that cannot change a decision: the gold result up to `max_gold_rows`
(when the gold exceeds it the example is not scored), the prediction up to one row more
than the gold, because a longer result can never be equal.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from graphix.errors import DatabaseError, QueryTimeoutError, SQLExecutionError
from graphix.execution import ReadOnlyDatabase
from graphix.metrics.text_rules import normalize_operators

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MAX_GOLD_ROWS = 1_000_000

_CURRENT_YEAR = re.compile(r"YEAR\s*\(\s*CURDATE\s*\(\s*\)\s*\)\s*", re.IGNORECASE)
_DISTINCT = re.compile(r"(?<![\w$.])distinct(?![\w$])", re.IGNORECASE)


# ---------------------------------------------------------------------------- query text


def _split_code(sql: str) -> list[tuple[bool, str]]:
    """Split `sql` into (is_code, text) pieces; quoted text and comments are not code.

    The first ``;`` in code ends the first statement; everything after it is dropped.
    """
    pieces: list[tuple[bool, str]] = []
    code_start = 0
    i = 0
    length = len(sql)
    closers = {"'": "'", '"': '"', "`": "`", "[": "]"}
    while i < length:
        char = sql[i]
        if char in closers:
            end = sql.find(closers[char], i + 1)
            end = length if end < 0 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = length if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = length if end < 0 else end + 2
        elif char == ";":
            pieces.append((True, sql[code_start:i + 1]))
            return pieces
        else:
            i += 1
            continue
        pieces.append((True, sql[code_start:i]))
        pieces.append((False, sql[i:end]))
        i = code_start = end
    pieces.append((True, sql[code_start:]))
    return pieces


def prepare_for_execution(sql: str, *, keep_distinct: bool = False) -> str:
    """Return the text that is run: operators joined, and unless `keep_distinct`, the
    first statement only with every DISTINCT keyword removed.

    >>> prepare_for_execution("SELECT count(DISTINCT name) FROM t; DROP TABLE t")
    'SELECT count( name) FROM t;'
    """
    sql = normalize_operators(sql)
    if not keep_distinct:
        sql = "".join(_DISTINCT.sub("", text) if is_code else text
                      for is_code, text in _split_code(sql))
    return _CURRENT_YEAR.sub("2020", sql)


def order_matters(gold_sql: str) -> bool:
    """Row order counts when the (prepared) gold text contains ``order by``."""
    return "order by" in gold_sql.lower()


# ---------------------------------------------------------------------------- results


def results_match(gold: list[tuple], pred: list[tuple], *, ordered: bool) -> bool:
    """Return True when some column permutation of `pred` equals `gold` as a bag of rows
    (as a list when `ordered`).

    >>> results_match([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], ordered=False)
    True
    >>> results_match([(1, "a"), (2, "b")], [("b", 2), ("a", 1)], ordered=True)
    False
    """
    if not gold and not pred:
        return True
    if len(gold) != len(pred):
        return False
    width = len(gold[0])
    if len(pred[0]) != width:
        return False

    # A permutation can only map a gold column to a prediction column with the same
    # multiset of values, which prunes almost every candidate at once.
    gold_columns = [Counter(row[i] for row in gold) for i in range(width)]
    pred_columns = [Counter(row[j] for row in pred) for j in range(width)]
    candidates = [[j for j in range(width) if pred_columns[j] == gold_columns[i]]
                  for i in range(width)]
    if any(not options for options in candidates):
        return False

    gold_bag = None if ordered else Counter(gold)
    # NOTE: many columns with equal value multisets (say ten copies of one column) still
    # leave up to n! permutations to try, as in the official evaluator.
    for permutation in _permutations(candidates):
        permuted = [tuple(row[j] for j in permutation) for row in pred]
        if ordered and permuted == gold:
            return True
        if not ordered and Counter(permuted) == gold_bag:
            return True
    return False


def _permutations(candidates: list[list[int]]):
    """Yield every assignment of distinct prediction columns, one per gold column."""
    chosen: list[int] = []
    used: set[int] = set()

    def extend(position: int):
        if position == len(candidates):
            yield tuple(chosen)
            return
        for column in candidates[position]:
            if column in used:
                continue
            chosen.append(column)
            used.add(column)
            yield from extend(position + 1)
            chosen.pop()
            used.discard(column)

    yield from extend(0)


# ---------------------------------------------------------------------------- running


@dataclass(frozen=True)
class ExecutionOutcome:
    """`match` is None when the example could not be scored; `error` says why it failed."""

    match: bool | None
    error: str | None = None


class DatabasePool:
    """Read-only connections kept open per SQLite file, and the files of each database."""

    def __init__(self, db_dir: str | Path):
        self.db_dir = Path(db_dir)
        self._connections: dict[Path, ReadOnlyDatabase] = {}
        self._files: dict[str, list[Path]] = {}

    def files(self, db_id: str) -> list[Path]:
        """Return the ``.sqlite`` files of `db_id`: DIR/<db_id>/*.sqlite, sorted by name."""
        if db_id not in self._files:
            folder = self.db_dir / db_id
            paths = sorted(folder.glob("*.sqlite")) if folder.is_dir() else []
            self._files[db_id] = [path for path in paths if path.is_file()]
        return self._files[db_id]

    def connection(self, path: Path) -> ReadOnlyDatabase:
        if path not in self._connections:
            self._connections[path] = ReadOnlyDatabase(path)
        return self._connections[path]

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


def execution_match(pool: DatabasePool, db_id: str, gold_sql: str, pred_sql: str, *,
                    keep_distinct: bool = False, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                    max_gold_rows: int = DEFAULT_MAX_GOLD_ROWS) -> ExecutionOutcome:
    """Run both queries on every file of `db_id` and compare their results."""
    paths = pool.files(db_id)
    if not paths:
        return ExecutionOutcome(None, f"database not found: no .sqlite file in "
                                      f"{pool.db_dir / db_id}")
    gold_sql = prepare_for_execution(gold_sql, keep_distinct=keep_distinct)
    pred_sql = prepare_for_execution(pred_sql, keep_distinct=keep_distinct)
    ordered = order_matters(gold_sql)
    for path in paths:
        try:
            database = pool.connection(path)
        except DatabaseError as error:
            return ExecutionOutcome(None, str(error))
        try:
            gold = database.execute(gold_sql, timeout_s=timeout_s, max_rows=max_gold_rows)
        except SQLExecutionError as error:
            return ExecutionOutcome(None, f"gold query failed: {error}")
        if gold.truncated:
            return ExecutionOutcome(None, f"gold result on {path.name} has more than "
                                          f"{max_gold_rows} rows; raise max_gold_rows")
        try:
            pred = database.execute(pred_sql, timeout_s=timeout_s, max_rows=len(gold.rows) + 1)
        except QueryTimeoutError as error:
            return ExecutionOutcome(False, f"prediction timed out: {error}")
        except SQLExecutionError as error:
            return ExecutionOutcome(False, f"prediction failed: {error}")
        if not results_match(gold.rows, pred.rows, ordered=ordered):
            return ExecutionOutcome(False, None)
    return ExecutionOutcome(True, None)
