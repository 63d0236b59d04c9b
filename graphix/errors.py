"""Exceptions raised to users of the library.

Every message names the database, example or file involved and what to do next.
The command line turns these into one-line errors; anything else is a bug.
"""


class GraphixError(Exception):
    """Base class of every error that Graphix raises on purpose."""


class InputError(GraphixError, ValueError):
    """An argument or question that cannot be used as given."""


class SchemaError(GraphixError):
    """A schema that cannot be loaded, or one that disagrees with its database."""


class DatabaseError(GraphixError):
    """A database file that is missing, empty, not SQLite, corrupt or locked."""


class SQLParseError(GraphixError):
    """SQL text that cannot be parsed."""


class SQLExecutionError(GraphixError):
    """A query that SQLite rejected or that failed while running."""


class QueryTimeoutError(SQLExecutionError):
    """A query that ran past its time limit and was interrupted."""


class CheckpointError(GraphixError):
    """A model folder that is missing, corrupt or from an incompatible version."""


class ConfigError(GraphixError):
    """A configuration file or override that is invalid."""
