"""Read-only SQLite execution with a time limit and a row cap.

Three layers keep a query from changing a database:

1. the file is opened through a URI with ``mode=ro``, so SQLite itself refuses writes;
2. an authorizer allows only reading actions (SELECT, reading columns, calling
   functions, recursive CTEs) and denies everything else, including ATTACH, PRAGMA,
   VACUUM, transactions and every kind of write;
3. ``sqlite3`` runs one statement per call, so ``SELECT 1; DROP TABLE t`` is rejected;
4. a statement must begin with SELECT, WITH or VALUES (after spaces and comments),
   which also rejects statements such as REINDEX that the authorizer may never see.

A progress handler interrupts a query once its time limit has passed, and results are
fetched up to a row cap. SQLite checks that handler only between virtual-machine
instructions, so work done inside one function call is bounded in other ways: no string
or BLOB may exceed `MAX_VALUE_BYTES`, the authorizer denies ``printf``/``format`` (a
width of two billion makes one call loop for seconds), and fetching stops with an error
once a result holds more than `MAX_RESULT_BYTES` of text and BLOBs.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from graphix.errors import DatabaseError, InputError, QueryTimeoutError, SQLExecutionError

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_ROWS = 1000

# SQLite's own default is 1e9 bytes, enough for one ``zeroblob`` call to take gigabytes.
MAX_VALUE_BYTES = 16 * 1024 * 1024
MAX_RESULT_BYTES = 256 * 1024 * 1024
_FETCH_CHUNK_ROWS = 32

_SLOW_FUNCTIONS = frozenset({"printf", "format"})

# SQLite checks the progress handler every this many virtual-machine instructions.
_PROGRESS_STEPS = 2000

_ALLOWED_ACTIONS = frozenset({
    sqlite3.SQLITE_SELECT,
    sqlite3.SQLITE_READ,
    sqlite3.SQLITE_FUNCTION,
    sqlite3.SQLITE_RECURSIVE,
})

_SQLITE_HEADER = b"SQLite format 3\x00"

_READING_STATEMENT = re.compile(
    r"^(?:\s|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))*(?:select|with|values)\b",
    re.IGNORECASE | re.DOTALL,
)


@dataclass(frozen=True)
class QueryResult:
    """Column names and rows of one query; `truncated` is True when the row cap cut it."""

    columns: tuple[str, ...]
    rows: list[tuple]
    truncated: bool
    elapsed_s: float


def _authorize(action: int, _arg1, arg2, *_rest) -> int:
    if action not in _ALLOWED_ACTIONS:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _SLOW_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def check_database_file(path: str | Path) -> Path:
    """Return `path` as a Path if it looks like a SQLite file, else raise DatabaseError."""
    path = Path(path)
    try:
        if not path.exists():
            raise DatabaseError(f"database file not found: {path}; pass the path of a SQLite file")
        if not path.is_file():
            raise DatabaseError(f"database path is not a file: {path}; pass the path of a SQLite file")
        size = path.stat().st_size
        if size == 0:
            raise DatabaseError(f"database file is empty: {path}; pass a SQLite file that contains tables")
        with path.open("rb") as handle:
            header = handle.read(len(_SQLITE_HEADER))
    except OSError as error:
        # Too long a name, no permission to read, an I/O error.
        raise DatabaseError(f"cannot read database file {path}: {error.strerror}; pass the path "
                            "of a readable SQLite file") from None
    if header != _SQLITE_HEADER:
        raise DatabaseError(
            f"not a SQLite database: {path} (its first bytes are not the SQLite header); "
            "pass a SQLite 3 file"
        )
    return path


def open_readonly(path: str | Path, *, busy_timeout_s: float = 2.0,
                  restrict: bool = True) -> sqlite3.Connection:
    """Open a SQLite file read-only (``mode=ro``).

    With `restrict` (the default) the reading-only authorizer is installed too. Schema
    introspection turns it off because PRAGMA table_info counts as a PRAGMA action; the
    connection stays read-only through ``mode=ro``.
    """
    path = check_database_file(path)
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro"
    if _needs_immutable(path):
        uri += "&immutable=1"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout_s,
                                     check_same_thread=False)
        connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        # Reading the schema here surfaces corruption and locks at open time.
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
        # A damaged schema page can give an error message that is not valid UTF-8.
        raise _database_error(path, error) from None
    connection.text_factory = _decode_text
    if restrict:
        connection.set_authorizer(_authorize)
    return connection


def _needs_immutable(path: Path) -> bool:
    """True for a WAL-mode file with no ``-wal`` file beside it.

    Opening such a file, even with ``mode=ro``, makes SQLite create ``-wal`` and ``-shm``
    files next to it. ``immutable=1`` reads the main file alone, which contains every
    committed change while no ``-wal`` file exists.
    """
    # NOTE: immutable connections take no locks, so a writer that starts while one is
    # open can leave its later reads inconsistent.
    with path.open("rb") as handle:
        header = handle.read(20)
    in_wal_mode = header[18:20] == b"\x02\x02"
    return in_wal_mode and not path.with_name(path.name + "-wal").exists()


def _decode_text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _database_error(path: Path, error: Exception) -> DatabaseError:
    message = str(error)
    if "locked" in message or "busy" in message:
        return DatabaseError(f"database is locked: {path}; close the program that is writing to it")
    return DatabaseError(f"cannot open database {path}: {message}; the file may be corrupt")


class ReadOnlyDatabase:
    """A read-only connection to one SQLite file, reused across queries.

    >>> import tempfile, sqlite3, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.sqlite")
    >>> with sqlite3.connect(path) as c: _ = c.execute("CREATE TABLE t (x INTEGER)")
    >>> with ReadOnlyDatabase(path) as db: db.execute("SELECT count(*) AS n FROM t").rows
    [(0,)]
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._connection = open_readonly(self.path)

    def __enter__(self) -> ReadOnlyDatabase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._connection.close()

    def execute(self, sql: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S,
                max_rows: int | None = DEFAULT_MAX_ROWS) -> QueryResult:
        """Run one statement. `timeout_s=None` or `max_rows=None` remove that limit.

        Raises QueryTimeoutError past the time limit and SQLExecutionError for any
        other failure, including statements the authorizer denies. Raises InputError
        for a `timeout_s` that is not positive and finite, or a `max_rows` below 1.
        """
        if timeout_s is not None and not (timeout_s > 0 and math.isfinite(timeout_s)):
            # A NaN deadline compares false with every time, which would disable the limit.
            raise InputError(f"timeout_s must be a positive number of seconds or None, "
                             f"got {timeout_s}")
        if max_rows is not None and max_rows < 1:
            raise InputError(f"max_rows must be at least 1 or None, got {max_rows}")
        if not _READING_STATEMENT.match(sql):
            raise SQLExecutionError(
                f"query on {self.path.name} rejected: only reading statements (SELECT, WITH) "
                "are allowed"
            )
        start = time.monotonic()
        deadline = None if timeout_s is None else start + timeout_s
        self._connection.set_progress_handler(
            None if deadline is None else (lambda: time.monotonic() > deadline), _PROGRESS_STEPS
        )
        cursor = self._connection.cursor()
        try:
            cursor.execute(sql)
            columns = tuple(d[0] for d in cursor.description or ())
            rows = self._fetch(cursor, None if max_rows is None else max_rows + 1)
            truncated = max_rows is not None and len(rows) > max_rows
            rows = rows if max_rows is None else rows[:max_rows]
        except sqlite3.OperationalError as error:
            if deadline is not None and "interrupted" in str(error):
                raise QueryTimeoutError(
                    f"query on {self.path.name} stopped after the {timeout_s:g} s time limit"
                ) from None
            raise SQLExecutionError(f"query on {self.path.name} failed: {error}") from None
        except sqlite3.DatabaseError as error:
            if "not authorized" in str(error) or "authorization denied" in str(error):
                raise SQLExecutionError(
                    f"query on {self.path.name} rejected: only reading statements (SELECT, WITH) "
                    "are allowed, without the printf and format functions"
                ) from None
            raise SQLExecutionError(f"query on {self.path.name} failed: {error}") from None
        except (sqlite3.Error, ValueError, OverflowError) as error:
            # ValueError: NUL characters in the text; OverflowError: huge integer parameters.
            raise SQLExecutionError(f"query on {self.path.name} failed: {error}") from None
        finally:
            cursor.close()
            self._connection.set_progress_handler(None, 0)
            if self._connection.in_transaction:
                self._connection.rollback()
        return QueryResult(columns, rows, truncated, time.monotonic() - start)

    def _fetch(self, cursor: sqlite3.Cursor, limit: int | None) -> list[tuple]:
        """Fetch up to `limit` rows, raising SQLExecutionError past `MAX_RESULT_BYTES`."""
        rows: list[tuple] = []
        size = 0
        while limit is None or len(rows) < limit:
            count = _FETCH_CHUNK_ROWS if limit is None else min(_FETCH_CHUNK_ROWS, limit - len(rows))
            chunk = cursor.fetchmany(count)
            if not chunk:
                break
            size += sum(len(value) for row in chunk for value in row
                        if isinstance(value, (str, bytes)))
            if size > MAX_RESULT_BYTES:
                raise SQLExecutionError(
                    f"query on {self.path.name} returned more than {MAX_RESULT_BYTES >> 20} MiB "
                    "of text and BLOBs; select fewer rows or columns"
                )
            rows.extend(chunk)
        return rows


def execute(db_path: str | Path, sql: str, *, timeout_s: float | None = DEFAULT_TIMEOUT_S,
            max_rows: int | None = DEFAULT_MAX_ROWS) -> QueryResult:
    """Run one read-only query on a SQLite file (opens and closes a connection)."""
    with ReadOnlyDatabase(db_path) as database:
        return database.execute(sql, timeout_s=timeout_s, max_rows=max_rows)
