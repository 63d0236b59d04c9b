"""Execution-guided choice: the best finished beam that runs on the database wins.

Beam search returns several finished hypotheses ordered by score. Many top hypotheses
of a small model fail in ways a database reveals at once: they do not parse, name a
column that does not exist, or run into an error or the time limit. `choose_executable`
walks the beams best-first and returns the first one that passes every check, with the
reason each earlier beam was rejected.

When no whole beam passes, the search goes on over the beams' prefixes: a beam cut off by
the length limit, or one that runs into an error late, often starts with a complete query
(``select name from singer where age > 30`` before a broken ``and ...``). For each beam,
best first, the longest prefixes that end between words and form a complete, valid
query are run, longest first (at most `max_prefixes` per beam); the first that runs wins.
When no prefix runs either, each beam, best first, is finished by grammar completion
(`graphix.decoding.completion`): cut at a word boundary and completed with the fewest
words that make a valid query; up to `MAX_COMPLETIONS_RUN` completions per beam are
run, cheapest first. Only when that fails too does the choice fall back to the top beam.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from itertools import islice
from dataclasses import dataclass, field

from graphix.decoding.completion import completions
from graphix.decoding.prefix_checker import PrefixChecker
from graphix.errors import InputError, QueryTimeoutError, SQLExecutionError
from graphix.execution import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, ReadOnlyDatabase
from graphix.schema import Schema

logger = logging.getLogger(__name__)

MAX_COMPLETIONS_RUN = 4
"""Grammar completions of one beam run at most, cheapest first."""


@dataclass(frozen=True)
class BeamVerdict:
    """The outcome for one beam: its SQL, whether it passed, and the reason if not."""

    index: int
    sql: str
    accepted: bool
    reason: str
    """``ok``, or what failed: ``invalid: <checker message>``, ``failed: <SQLite error>``,
    ``timed out``, ``no rows``, or ``not checked`` for beams after the chosen one."""


@dataclass(frozen=True)
class ExecutionChoice:
    """The chosen beam and a verdict for every beam."""

    index: int
    sql: str
    fallback: bool
    """True when neither a beam nor a prefix of one passed, and the top beam was returned."""
    verdicts: list[BeamVerdict] = field(default_factory=list)
    cut: bool = False
    """True when `sql` is a prefix of beam `index`, because no whole beam passed."""
    completed: bool = False
    """True when `sql` is beam `index` finished by grammar completion, because neither a
    whole beam nor a prefix of one passed."""


def strip_db_id(text: str, db_id: str) -> str:
    """Return the SQL of a ``db_id | sql`` target; other text is returned stripped."""
    head, bar, rest = text.partition("|")
    if bar and head.strip().lower() == db_id.lower():
        return rest.strip()
    return text.strip()


def choose_executable(beams: Sequence[str], schema: Schema | PrefixChecker,
                      database: ReadOnlyDatabase, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                      max_rows: int = DEFAULT_MAX_ROWS, require_rows: bool = False,
                      max_prefixes: int = 2, complete: bool = True) -> ExecutionChoice:
    """Return the first of `beams` (best first) that is valid for the schema and runs.

    Each beam is ``db_id | sql`` or bare SQL. A beam passes when the checker accepts it
    as a complete query, it runs on `database` without error within `timeout_s` seconds,
    and, with `require_rows`, returns at least one row. Fetching stops after `max_rows`
    rows, so the rest of a long result is neither computed nor timed. Beams after the
    chosen one are not run. When no beam passes, up to `max_prefixes` complete prefixes of
    each beam are tried (0 turns this off), and then, with `complete`, each beam finished
    by grammar completion.
    """
    if not beams:
        raise InputError("no beams to choose from; generate at least one sequence")
    if isinstance(schema, PrefixChecker):
        schema = schema.index.schema
    # Unlike decoding, this check need not steer a model, so any valid alias passes.
    checker = PrefixChecker(schema, with_db_id=False, implicit_aliases=True, strict=False)
    db_id = checker.index.db_id

    verdicts: list[BeamVerdict] = []
    chosen = None
    for index, text in enumerate(beams):
        sql = strip_db_id(text, db_id)
        if chosen is not None:
            verdicts.append(BeamVerdict(index, sql, False, "not checked"))
            continue
        reason = _rejection(checker, database, sql, timeout_s, max_rows, require_rows)
        verdicts.append(BeamVerdict(index, sql, reason is None, reason or "ok"))
        if reason is None:
            chosen = index

    if chosen is not None:
        return ExecutionChoice(chosen, verdicts[chosen].sql, False, verdicts)
    for verdict in verdicts if max_prefixes else ():
        for prefix in complete_prefixes(checker, verdict.sql)[:max_prefixes]:
            if _rejection(checker, database, prefix, timeout_s, max_rows, require_rows) is None:
                logger.debug("no whole beam runs on %s; cut beam %d to a prefix", db_id,
                             verdict.index)
                return ExecutionChoice(verdict.index, prefix, False, verdicts, cut=True)
    for verdict in verdicts if complete else ():
        for completed in islice(completions(checker, verdict.sql), MAX_COMPLETIONS_RUN):
            if _rejection(checker, database, completed, timeout_s, max_rows,
                          require_rows) is None:
                logger.debug("no beam or prefix runs on %s; completed beam %d", db_id,
                             verdict.index)
                return ExecutionChoice(verdict.index, completed, False, verdicts,
                                       completed=True)
    logger.debug("no beam of %d runs on %s; returning the top beam", len(beams), db_id)
    return ExecutionChoice(0, verdicts[0].sql, True, verdicts)


def complete_prefixes(checker: PrefixChecker, sql: str) -> list[str]:
    """Return the proper prefixes of `sql` that end between words and form a complete
    query for `checker`'s schema, longest first.

    >>> from graphix.schema import Column, Schema, Table
    >>> singer = Table("singer", "singer", (Column("age", "age", "number", "singer"),))
    >>> checker = PrefixChecker(Schema("music", (singer,)), with_db_id=False)
    >>> complete_prefixes(checker, "select age from singer order by age desc limit")
    ['select age from singer order by age desc', 'select age from singer order by age', 'select age from singer']
    """
    words = sql.split(" ")
    found = []
    state = checker.initial()
    for count, word in enumerate(words[:-1], start=1):
        state = checker.feed(state, word if count == 1 else " " + word)
        if not state.ok:
            break
        if checker.is_complete(state):
            found.append(" ".join(words[:count]))
    return found[::-1]


def _rejection(checker: PrefixChecker, database: ReadOnlyDatabase, sql: str,
               timeout_s: float, max_rows: int, require_rows: bool) -> str | None:
    state = checker.check(sql)
    if not state.ok:
        return f"invalid: {state.rejection.message}"
    if not checker.is_complete(state):
        return "invalid: incomplete query"
    try:
        result = database.execute(sql, timeout_s=timeout_s, max_rows=max_rows)
    except QueryTimeoutError:
        return "timed out"
    except SQLExecutionError as error:
        return f"failed: {error}"
    if require_rows and not result.rows:
        return "no rows"
    return None
