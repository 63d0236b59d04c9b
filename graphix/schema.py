"""Database schemas: tables, columns, primary keys and foreign keys.

A `Schema` comes from one entry of Spider's ``tables.json`` or from any SQLite file
(through ``sqlite_master``, ``PRAGMA table_info`` and ``PRAGMA foreign_key_list``),
so a user's own database needs no ``tables.json``.

Columns are also numbered the way Spider numbers them: index 0 is the special
column ``*``, followed by every table's columns in table order. The evaluator and the
graph builder use these indices.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from graphix.errors import DatabaseError, SchemaError

logger = logging.getLogger(__name__)

COLUMN_TYPES = ("text", "number", "time", "boolean", "others")


@dataclass(frozen=True)
class Column:
    """One column: its name in the database, a natural-language name and a Spider type."""

    name: str
    text: str
    type: str
    table: str | None
    """Name of the owning table, or None for the special column ``*``."""


STAR = Column(name="*", text="*", type="text", table=None)


@dataclass(frozen=True)
class Table:
    """One table with its columns in declaration order."""

    name: str
    text: str
    columns: tuple[Column, ...]
    primary_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class ForeignKey:
    """``table.column`` references ``ref_table.ref_column``."""

    table: str
    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class Schema:
    """The tables and keys of one database. Name lookups ignore case, as SQLite does."""

    db_id: str
    tables: tuple[Table, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    path: Path | None = field(default=None, compare=False)
    """The SQLite file this schema describes, when known."""

    # ------------------------------------------------------------------ lookups

    @cached_property
    def columns(self) -> tuple[Column, ...]:
        """All columns in Spider order: ``*`` first, then each table's columns."""
        return (STAR,) + tuple(column for table in self.tables for column in table.columns)

    @cached_property
    def _table_index(self) -> dict[str, int]:
        return {table.name.lower(): i for i, table in enumerate(self.tables)}

    @cached_property
    def _column_index(self) -> dict[tuple[str, str], int]:
        index = {}
        for i, column in enumerate(self.columns[1:], start=1):
            index.setdefault((column.table.lower(), column.name.lower()), i)
        return index

    def table_index(self, name: str) -> int | None:
        """Return the position of table `name` in `tables`, or None if it does not exist."""
        return self._table_index.get(name.lower())

    def table(self, name: str) -> Table | None:
        index = self.table_index(name)
        return None if index is None else self.tables[index]

    def column_index(self, table: str, column: str) -> int | None:
        """Return the Spider index of `table.column` (0 is ``*``), or None if absent."""
        if column == "*":
            return 0
        return self._column_index.get((table.lower(), column.lower()))

    def column_table_index(self, column_index: int) -> int:
        """Return the table position of a column index; -1 for ``*``."""
        column = self.columns[column_index]
        return -1 if column.table is None else self._table_index[column.table.lower()]

    @cached_property
    def foreign_key_pairs(self) -> tuple[tuple[int, int], ...]:
        """Foreign keys as Spider column-index pairs ``(column, referenced column)``."""
        pairs = []
        for fk in self.foreign_keys:
            source = self.column_index(fk.table, fk.column)
            target = self.column_index(fk.ref_table, fk.ref_column)
            if source is not None and target is not None:
                pairs.append((source, target))
        return tuple(pairs)

    @cached_property
    def primary_key_indices(self) -> tuple[int, ...]:
        indices = []
        for table in self.tables:
            for name in table.primary_keys:
                index = self.column_index(table.name, name)
                if index is not None:
                    indices.append(index)
        return tuple(indices)

    # ------------------------------------------------------------------ Spider format

    @classmethod
    def from_spider_entry(cls, entry: dict, path: Path | None = None) -> Schema:
        """Build a schema from one object of Spider's ``tables.json``.

        Raises SchemaError when a field is missing, has the wrong type, or points at a
        table or column that does not exist.
        """
        try:
            return cls._from_spider_entry(entry, path)
        except (TypeError, ValueError, IndexError, AttributeError) as error:
            name = entry.get("db_id", "?") if isinstance(entry, dict) else "?"
            raise SchemaError(
                f"tables.json entry {name!r} is malformed ({error}); each entry needs lists "
                "table_names(_original), column_names(_original) of [table index, name] pairs, "
                "column_types, primary_keys of column indices and foreign_keys of index pairs"
            ) from None

    @classmethod
    def _from_spider_entry(cls, entry: dict, path: Path | None) -> Schema:
        try:
            db_id = entry["db_id"]
            table_names = entry["table_names_original"]
            table_texts = entry["table_names"]
            column_names = entry["column_names_original"]
            column_texts = entry["column_names"]
            column_types = entry["column_types"]
            primary_keys = entry["primary_keys"]
            foreign_keys = entry["foreign_keys"]
        except (KeyError, TypeError) as error:
            raise SchemaError(
                f"tables.json entry {entry.get('db_id', '?') if isinstance(entry, dict) else entry!r} "
                f"is missing the field {error}; each entry needs db_id, table_names(_original), "
                "column_names(_original), column_types, primary_keys and foreign_keys"
            ) from None
        lists = {"table_names_original": table_names, "table_names": table_texts,
                 "column_names_original": column_names, "column_names": column_texts,
                 "column_types": column_types, "primary_keys": primary_keys,
                 "foreign_keys": foreign_keys}
        not_lists = [name for name, value in lists.items() if not isinstance(value, list)]
        if not isinstance(db_id, str) or not_lists:
            raise SchemaError(f"tables.json entry {db_id!r}: db_id must be a string and "
                              f"{', '.join(not_lists) or 'every other field'} must be lists")
        if not (len(column_names) == len(column_texts) == len(column_types)):
            raise SchemaError(
                f"tables.json entry {db_id!r}: column_names_original, column_names and "
                "column_types have different lengths"
            )
        if len(table_names) != len(table_texts):
            raise SchemaError(f"tables.json entry {db_id!r}: table_names_original and "
                              "table_names have different lengths")
        names = [*table_names, *table_texts, *(pair[1] for pair in column_names),
                 *(pair[1] for pair in column_texts), *column_types]
        if not all(isinstance(name, str) for name in names):
            raise SchemaError(f"tables.json entry {db_id!r}: every table name, column name and "
                              "column type must be a string")

        per_table: list[list[Column]] = [[] for _ in table_names]
        flat: list[Column] = [STAR]
        for (table_id, name), (_, text), type_ in zip(
            column_names[1:], column_texts[1:], column_types[1:]
        ):
            if not 0 <= table_id < len(table_names):
                raise SchemaError(
                    f"tables.json entry {db_id!r}: column {name!r} names table index {table_id}, "
                    f"but there are {len(table_names)} tables"
                )
            column = Column(name=name, text=text, type=type_, table=table_names[table_id])
            per_table[table_id].append(column)
            flat.append(column)

        def column_at(index, field_name: str) -> Column:
            if isinstance(index, bool) or not isinstance(index, int) or not 0 < index < len(flat):
                raise SchemaError(f"tables.json entry {db_id!r}: {field_name} names column "
                                  f"{index!r}, but columns are numbered 1 to {len(flat) - 1}")
            return flat[index]

        # Spider lists a composite primary key either as one index or as a nested list.
        pk_by_table: list[list[str]] = [[] for _ in table_names]
        for item in primary_keys:
            for index in item if isinstance(item, list) else [item]:
                column = column_at(index, "primary_keys")
                pk_by_table[table_names.index(column.table)].append(column.name)

        tables = tuple(
            Table(name=name, text=text, columns=tuple(cols), primary_keys=tuple(pks))
            for name, text, cols, pks in zip(table_names, table_texts, per_table, pk_by_table)
        )
        fks = []
        for pair in foreign_keys:
            if not isinstance(pair, list) or len(pair) != 2:
                raise SchemaError(f"tables.json entry {db_id!r}: foreign key {pair!r} is not a "
                                  "[column index, referenced column index] pair")
            source, target = (column_at(index, "foreign_keys") for index in pair)
            fks.append(ForeignKey(source.table, source.name, target.table, target.name))
        return cls(db_id=db_id, tables=tables, foreign_keys=tuple(fks), path=path)

    @classmethod
    def load_spider_tables(cls, tables_json: str | Path) -> dict[str, Schema]:
        """Load every schema of a Spider ``tables.json`` file, keyed by db_id."""
        path = Path(tables_json)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SchemaError(f"tables file not found: {path}; pass Spider's tables.json") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise SchemaError(f"tables file {path} is not valid JSON: {error}") from None
        except OSError as error:
            raise SchemaError(f"cannot read tables file {path}: {error.strerror}") from None
        if not isinstance(entries, list):
            raise SchemaError(f"tables file {path} must contain a JSON list of schemas")
        for number, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("db_id"), str):
                raise SchemaError(f"tables file {path}: entry {number} is not an object with a "
                                  "db_id string; each entry describes one database")
        return {entry["db_id"]: cls.from_spider_entry(entry) for entry in entries}

    def to_spider_entry(self) -> dict:
        """Return this schema as one ``tables.json`` object."""
        columns = self.columns
        return {
            "db_id": self.db_id,
            "table_names_original": [t.name for t in self.tables],
            "table_names": [t.text for t in self.tables],
            "column_names_original": [[-1, "*"]]
            + [[self.column_table_index(i), c.name] for i, c in enumerate(columns) if i],
            "column_names": [[-1, "*"]]
            + [[self.column_table_index(i), c.text] for i, c in enumerate(columns) if i],
            "column_types": [c.type for c in columns],
            "primary_keys": list(self.primary_key_indices),
            "foreign_keys": [list(pair) for pair in self.foreign_key_pairs],
        }

    # ------------------------------------------------------------------ SQLite

    @classmethod
    def from_sqlite(cls, db_path: str | Path, db_id: str | None = None) -> Schema:
        """Introspect a SQLite file. `db_id` defaults to the file name without suffix."""
        from graphix.execution import open_readonly

        path = Path(db_path)
        db_id = db_id or path.stem
        connection = open_readonly(path, restrict=False)
        try:
            return cls._introspect(connection, db_id, path)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            raise DatabaseError(
                f"cannot read the schema of {path}: {error}; check that it is an intact SQLite file"
            ) from None
        finally:
            connection.close()

    @classmethod
    def _introspect(cls, connection: sqlite3.Connection, db_id: str, path: Path) -> Schema:
        table_names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY rowid"
            )
        ]
        tables = []
        for name in table_names:
            info = connection.execute(f"PRAGMA table_info({quote_identifier(name)})").fetchall()
            # table_info rows: (cid, name, type, notnull, default, pk position)
            columns = tuple(
                Column(name=row[1], text=natural_name(row[1]), type=spider_type(row[2]), table=name)
                for row in info
            )
            primary_keys = tuple(row[1] for row in sorted(info, key=lambda r: r[5]) if row[5] > 0)
            tables.append(Table(name, natural_name(name), columns, primary_keys))

        by_name = {t.name.lower(): t for t in tables}
        foreign_keys = []
        for table in tables:
            rows = connection.execute(
                f"PRAGMA foreign_key_list({quote_identifier(table.name)})"
            ).fetchall()
            # foreign_key_list rows: (id, seq, ref table, from, to, on_update, on_delete, match)
            for row in rows:
                fk = _resolve_foreign_key(table, row[2], row[3], row[4], by_name)
                if fk is None:
                    logger.warning(
                        "%s: foreign key %s.%s -> %s.%s names a missing table or column; ignored",
                        db_id, table.name, row[3], row[2], row[4],
                    )
                else:
                    foreign_keys.append(fk)
        return cls(db_id=db_id, tables=tuple(tables), foreign_keys=tuple(foreign_keys), path=path)


def _resolve_foreign_key(table: Table, ref_table: str, column: str, ref_column: str | None,
                         tables: dict[str, Table]) -> ForeignKey | None:
    """Match a declared foreign key to real names; a missing target column means the key."""
    target = tables.get(ref_table.lower())
    source = next((c for c in table.columns if c.name.lower() == column.lower()), None)
    if target is None or source is None:
        return None
    if ref_column is None:
        if len(target.primary_keys) != 1:
            return None
        ref_column = target.primary_keys[0]
    ref = next((c for c in target.columns if c.name.lower() == ref_column.lower()), None)
    if ref is None:
        return None
    return ForeignKey(table.name, source.name, target.name, ref.name)


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def natural_name(identifier: str) -> str:
    """Turn an identifier into lowercase words: ``HomeTown_ID`` -> ``home town id``."""
    spaced = _CAMEL_BOUNDARY.sub(" ", identifier)
    words = re.split(r"[\s_\-.]+", spaced)
    return " ".join(word.lower() for word in words if word)


def spider_type(declared: str | None) -> str:
    """Map a declared SQLite column type onto Spider's five column types."""
    declared = (declared or "").lower()
    if any(key in declared for key in ("char", "text", "clob", "string", "varchar")):
        return "text"
    if declared == "boolean":
        return "boolean"
    if declared in ("bool", "bit"):
        # Spider's tables.json labels declared BOOL and BIT columns "others", and only
        # BOOLEAN ones "boolean". Matching it keeps introspected schemas like the ones
        # that models are trained on.
        return "others"
    if any(key in declared for key in ("date", "time", "year")):
        return "time"
    if any(key in declared for key in ("int", "real", "float", "double", "numeric", "decimal",
                                       "number", "num", "money")):
        return "number"
    return "others"
