"""The databases a server may open: SQLite files found in one folder, addressed by name.

A request names a database by its id, never by a path. The catalog lists the folder,
keeps only files whose real path (after following symlinks) lies inside it, and looks
ids up in that list, so no request can reach a file outside the folder.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from graphix.errors import DatabaseError, InputError
from graphix.execution import check_database_file

logger = logging.getLogger(__name__)

SUFFIXES = (".sqlite", ".db")
MAX_DB_ID_CHARS = 128

# Letters, digits, '_', '-' and inner dots; no slashes, so an id cannot name a path.
_VALID_DB_ID = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")


class UnknownDatabaseError(InputError):
    """A well-formed database id that the folder does not contain."""


@dataclass(frozen=True)
class DatabaseEntry:
    """One database of the folder: its id and the file's real path."""

    db_id: str
    path: Path
    relative_path: str
    """Path of the file relative to the folder, as listed (before following symlinks)."""


class DatabaseCatalog:
    """The SQLite files directly in `root` (``*.sqlite``, ``*.db``) or in Spider's layout.

    Spider's layout is ``root/<db_id>/<db_id>.sqlite``. When two files give the same id,
    the first in sorted order wins and the other is logged and skipped.
    """

    def __init__(self, root: str | Path):
        root = Path(root)
        if not root.is_dir():
            raise InputError(f"database folder not found: {root}; pass a folder that contains "
                             "SQLite files (*.sqlite, *.db) or Spider's <db_id>/<db_id>.sqlite")
        self.root = root.resolve()
        self._entries: dict[str, DatabaseEntry] = {}
        self._lock = threading.Lock()
        self.refresh()

    def refresh(self) -> list[DatabaseEntry]:
        """List the folder again and return the databases, sorted by id."""
        entries: dict[str, DatabaseEntry] = {}
        for candidate in self._candidates():
            entry = self._entry(candidate)
            if entry is None:
                continue
            if entry.db_id in entries:
                logger.warning("skipping %s: database id %r is already taken by %s",
                               entry.relative_path, entry.db_id, entries[entry.db_id].relative_path)
                continue
            entries[entry.db_id] = entry
        with self._lock:
            self._entries = dict(sorted(entries.items()))
            return list(self._entries.values())

    def entries(self) -> list[DatabaseEntry]:
        """Return the databases of the last listing, sorted by id."""
        with self._lock:
            return list(self._entries.values())

    def resolve(self, db_id: str) -> DatabaseEntry:
        """Return the entry of `db_id`, listing the folder again once if it is not known.

        Raises InputError for an id that could be a path and UnknownDatabaseError for an
        id that the folder does not contain.
        """
        check_db_id(db_id)
        with self._lock:
            entry = self._entries.get(db_id)
        if entry is None or not entry.path.is_file():
            entry = {e.db_id: e for e in self.refresh()}.get(db_id)
        if entry is None:
            raise UnknownDatabaseError(f"unknown database {db_id!r}; GET /databases lists the "
                                       "databases this server can open")
        return entry

    def _candidates(self) -> list[Path]:
        try:
            children = sorted(self.root.iterdir())
        except OSError as error:
            raise DatabaseError(f"cannot list the database folder {self.root}: {error}") from None
        found = []
        for child in children:
            if child.suffix.lower() in SUFFIXES:
                found.append(child)
            elif child.is_dir():
                found.extend(child / f"{child.name}{suffix}" for suffix in SUFFIXES)
        return found

    def _entry(self, path: Path) -> DatabaseEntry | None:
        """Return the entry for `path`, or None if it is missing, outside root or not SQLite."""
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        if not real.is_file():
            return None
        if not real.is_relative_to(self.root):
            logger.warning("skipping %s: it points outside the database folder, to %s",
                           path, real)
            return None
        db_id = path.stem
        if not _VALID_DB_ID.match(db_id) or len(db_id) > MAX_DB_ID_CHARS:
            logger.warning("skipping %s: its name is not a valid database id", path)
            return None
        try:
            check_database_file(real)
        except (DatabaseError, OSError) as error:
            logger.warning("skipping %s: %s", path, error)
            return None
        return DatabaseEntry(db_id, real, path.relative_to(self.root).as_posix())


def check_db_id(db_id: str) -> str:
    """Return `db_id` if it is a plain name; raise InputError if it could name a path."""
    if not isinstance(db_id, str) or not db_id:
        raise InputError("the database id is empty; GET /databases lists the valid ids")
    if len(db_id) > MAX_DB_ID_CHARS:
        raise InputError(f"the database id has {len(db_id)} characters; the limit is "
                         f"{MAX_DB_ID_CHARS}")
    if not _VALID_DB_ID.match(db_id):
        raise InputError(f"invalid database id {db_id!r}: an id is a name made of letters, "
                         "digits, '_', '-' and inner dots, never a path")
    return db_id
