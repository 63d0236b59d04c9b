"""An index of a database's text cell values, built once and cached on disk.

Value linking looks question n-grams up in this index instead of scanning tables per
question. The index stores, for every column, the distinct text values (SQLite
``typeof = 'text'``) up to a cap, and supports two lookups:

- `exact(words)`: values whose lowercase words, or whose lemmas, equal the n-gram's;
- `near(key)`: values within a rapidfuzz ``fuzz.ratio`` threshold of the n-gram, searched
  only among values that share its first three characters and whose length allows the
  threshold, so each lookup compares a bounded candidate set.

The cache file is JSON, named by the SHA-256 of the database file's bytes, so a changed
database gets a new index and an unchanged one is never read twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from rapidfuzz import fuzz, process

from graphix.errors import DatabaseError
from graphix.execution import open_readonly
from graphix.schema import Schema, quote_identifier
from graphix.text import lemmatize, value_key

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
"""Version of the cache file layout; a cache of another version is rebuilt."""

_PREFIX = 3


@dataclass(frozen=True)
class ValueIndexConfig:
    """Limits on the values an index stores. A change of any field makes a new cache file."""

    max_values_per_column: int = 5000
    """Distinct values read from each column; SQLite returns them in scan order."""
    max_value_words: int = 8
    """Values with more words are skipped: questions rarely quote long text whole."""
    max_value_chars: int = 80
    """Values with more characters are skipped for the same reason."""


@dataclass(frozen=True)
class ValueHit:
    """One cell value that matches a question n-gram."""

    column: int
    """Spider column index (``*`` is 0)."""
    value: str
    """The value as stored in the database."""
    score: float
    """100 for an exact or lemma match, else the rapidfuzz ratio."""


def default_cache_dir() -> Path:
    """Return ``$GRAPHIX_CACHE_DIR/value_index``, or ``~/.cache/graphix/value_index``."""
    root = os.environ.get("GRAPHIX_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "graphix"
    return base / "value_index"


def file_digest(path: str | Path) -> str:
    """Return the SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ValueIndex:
    """Text cell values of one database, keyed for exact and near-miss lookup."""

    def __init__(self, values: dict[tuple[str, str], list[str]], schema: Schema):
        """Index `values`, a map from (table, column) names to distinct cell values.

        Columns that `schema` does not know are ignored.
        """
        self.values = values
        self._exact: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self._by_prefix: dict[tuple[str, int], list[str]] = defaultdict(list)
        self._key_hits: dict[str, list[tuple[int, str]]] = defaultdict(list)
        self.max_words = 0
        """Word count of the longest value key; longer n-grams cannot match."""
        for (table, column), cells in values.items():
            index = schema.column_index(table, column)
            if index is None:
                continue
            for cell in cells:
                self._add(index, cell)
        self._exact = dict(self._exact)
        self._by_prefix = dict(self._by_prefix)
        self._key_hits = dict(self._key_hits)

    def _add(self, column: int, cell: str) -> None:
        key = value_key(cell)
        if not key:
            return
        hit = (column, cell)
        self.max_words = max(self.max_words, key.count(" ") + 1)
        self._key_hits[key].append(hit)
        self._exact[key].append(hit)
        lemma_key = " ".join(lemmatize(word) for word in key.split())
        if lemma_key != key:
            self._exact[lemma_key].append(hit)
        if len(self._key_hits[key]) == 1:
            self._by_prefix[(key[:_PREFIX], len(key))].append(key)

    def __len__(self) -> int:
        return len(self._key_hits)

    # ------------------------------------------------------------------ lookups

    def exact(self, key: str, lemma_key: str | None = None) -> list[ValueHit]:
        """Return values whose key equals `key` or whose lemma key equals `lemma_key`."""
        hits = dict.fromkeys(self._exact.get(key, ()))
        if lemma_key and lemma_key != key:
            hits.update(dict.fromkeys(self._exact.get(lemma_key, ())))
        return [ValueHit(column, value, 100.0) for column, value in hits]

    def near(self, key: str, threshold: float, max_candidates: int = 512) -> list[ValueHit]:
        """Return values whose key scores at least `threshold` (0..100) against `key`.

        Candidates share the first three characters of `key` and have a length for which
        ``fuzz.ratio`` can reach the threshold. At most `max_candidates` keys are scored.
        """
        if len(key) < _PREFIX + 1:
            return []
        slack = 1.0 - threshold / 100.0
        shortest = int(len(key) * (1 - slack) / (1 + slack))
        longest = int(len(key) * (1 + slack) / (1 - slack)) if slack < 1 else len(key) * 4
        prefix = key[:_PREFIX]
        candidates: list[str] = []
        for length in range(max(shortest, _PREFIX), longest + 1):
            candidates.extend(self._by_prefix.get((prefix, length), ()))
            if len(candidates) >= max_candidates:
                candidates = candidates[:max_candidates]
                break
        scored = process.extract(key, candidates, scorer=fuzz.ratio, score_cutoff=threshold,
                                 limit=None)
        hits = []
        for candidate, score, _ in scored:
            if candidate == key:
                continue
            hits.extend(ValueHit(column, value, score) for column, value in self._key_hits[candidate])
        return hits

    # ------------------------------------------------------------------ building and caching

    @classmethod
    def read_values(cls, db_path: str | Path, schema: Schema,
                    config: ValueIndexConfig = ValueIndexConfig()) -> dict[tuple[str, str], list[str]]:
        """Read the distinct text values of every column of `schema` from `db_path`."""
        connection = open_readonly(db_path)
        values: dict[tuple[str, str], list[str]] = {}
        try:
            for table in schema.tables:
                for column in table.columns:
                    cells = _read_column(connection, table.name, column.name, config)
                    if cells:
                        values[(table.name, column.name)] = cells
        finally:
            connection.close()
        return values

    @classmethod
    def load_or_build(cls, db_path: str | Path, schema: Schema, *,
                      cache_dir: str | Path | None = None,
                      config: ValueIndexConfig = ValueIndexConfig()) -> ValueIndex:
        """Load the cached index of `db_path`, building and caching it when absent or stale."""
        path = Path(db_path)
        cache_file = cache_path(path, cache_dir, config)
        values = _read_cache(cache_file)
        if values is None:
            logger.debug("building the value index of %s", path)
            values = cls.read_values(path, schema, config)
            _write_cache(cache_file, values, config)
        return cls(values, schema)


def cache_path(db_path: Path, cache_dir: str | Path | None,
               config: ValueIndexConfig = ValueIndexConfig()) -> Path:
    """Return the cache file of a database: its name, content hash and the config's hash."""
    if not db_path.is_file():
        raise DatabaseError(f"database file not found: {db_path}; pass the path of a SQLite file")
    settings = json.dumps([INDEX_FORMAT, asdict(config)], sort_keys=True).encode()
    config_tag = hashlib.sha256(settings).hexdigest()[:8]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return folder / f"{db_path.stem}-{file_digest(db_path)[:24]}-{config_tag}.json"


def _read_column(connection: sqlite3.Connection, table: str, column: str,
                 config: ValueIndexConfig) -> list[str]:
    sql = (
        f"SELECT DISTINCT {quote_identifier(column)} FROM {quote_identifier(table)} "
        f"WHERE typeof({quote_identifier(column)}) = 'text' LIMIT {int(config.max_values_per_column)}"
    )
    try:
        rows = connection.execute(sql).fetchall()
    except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
        # Spider's tables.json names a few columns that differ from the file's.
        logger.debug("cannot read values of %s.%s: %s", table, column, error)
        return []
    cells = []
    for (cell,) in rows:
        cell = cell.strip()
        if cell and len(cell) <= config.max_value_chars and \
                len(cell.split()) <= config.max_value_words:
            cells.append(cell)
    return cells


def _read_cache(cache_file: Path) -> dict[tuple[str, str], list[str]] | None:
    try:
        payload = json.loads(cache_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable value index cache %s: %s", cache_file, error)
        return None
    if not isinstance(payload, dict) or payload.get("format") != INDEX_FORMAT:
        return None
    try:
        return {(table, column): list(cells) for table, column, cells in payload["columns"]}
    except (KeyError, TypeError, ValueError) as error:
        logger.warning("ignoring malformed value index cache %s: %s", cache_file, error)
        return None


def _write_cache(cache_file: Path, values: dict[tuple[str, str], list[str]],
                 config: ValueIndexConfig) -> None:
    payload = {
        "format": INDEX_FORMAT,
        "config": asdict(config),
        "columns": [[table, column, cells] for (table, column), cells in values.items()],
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        # Write to a temporary file first so that a concurrent reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=cache_file.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(payload, stream, ensure_ascii=False)
        os.replace(temporary, cache_file)
    except OSError as error:
        logger.warning("cannot write value index cache %s: %s; the index is rebuilt next time",
                       cache_file, error)
