"""Execution-guided choice: the best finished beam that runs on the database wins.

Beam search returns several finished hypotheses ordered by score. Many top hypotheses
of a small model fail in ways a database reveals at once: they do not parse, name a
column that does not exist, or run into an error or the time limit. `choose_executable`
walks the beams best-first and returns the first one that passes every check, with the
reason each earlier beam was rejected.

When no whole beam passes, the search goes on over cuts of the beams: a beam cut off by
the length limit, or one that runs into an error late, often starts with a complete query
(``select name from singer where age > 30`` before a broken ``and ...``), or needs only a
few words to become one (``from singer as t1``). Grammar completion
(`graphix.decoding.completion`) proposes such queries for every beam, cheapest first: each
word dropped from the beam and each word added costs one, and so does each place down the
beam ranking. Up to `MAX_COMPLETIONS_RUN` per beam are run in that order, and the first
that runs wins. Only when none runs does the choice fall back to the top beam.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from graphix.decoding.completion import completions_of_beams
from graphix.decoding.prefix_checker import PrefixChecker
from graphix.errors import InputError, QueryTimeoutError, SQLExecutionError
from graphix.execution import DEFAULT_MAX_ROWS, DEFAULT_TIMEOUT_S, ReadOnlyDatabase
from graphix.schema import Schema

logger = logging.getLogger(__name__)

MAX_COMPLETIONS_RUN = 4
"""Cuts and grammar completions of one beam run at most, cheapest first."""


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
    """True when `sql` is a prefix of beam `index` with words added by grammar completion,
    because no whole beam passed."""


def strip_db_id(text: str, db_id: str) -> str:
    """Return the SQL of a ``db_id | sql`` target; other text is returned stripped."""
    head, bar, rest = text.partition("|")
    if bar and head.strip().lower() == db_id.lower():
        return rest.strip()
    return text.strip()


def choose_executable(beams: Sequence[str], schema: Schema | PrefixChecker,
                      database: ReadOnlyDatabase, *, timeout_s: float = DEFAULT_TIMEOUT_S,
                      max_rows: int = DEFAULT_MAX_ROWS, require_rows: bool = False,
                      max_completions: int = MAX_COMPLETIONS_RUN) -> ExecutionChoice:
    """Return the first of `beams` (best first) that is valid for the schema and runs.

    Each beam is ``db_id | sql`` or bare SQL. A beam passes when the checker accepts it
    as a complete query, it runs on `database` without error within `timeout_s` seconds,
    and, with `require_rows`, returns at least one row. Fetching stops after `max_rows`
    rows, so the rest of a long result is neither computed nor timed. Beams after the
    chosen one are not run. When no beam passes, up to `max_completions` cuts and grammar
    completions of each beam are run, cheapest first (0 turns this off).
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
    found = completions_of_beams(checker, [verdict.sql for verdict in verdicts],
                                 per_beam=max_completions) if max_completions else []
    for index, completion in found:
        if _rejection(checker, database, completion.sql, timeout_s, max_rows,
                      require_rows) is None:
            logger.debug("no whole beam runs on %s; cut or completed beam %d", db_id, index)
            return ExecutionChoice(index, completion.sql, False, verdicts,
                                   cut=completion.steps == 0, completed=completion.steps > 0)
    logger.debug("no beam of %d runs on %s; returning the top beam", len(beams), db_id)
    return ExecutionChoice(0, verdicts[0].sql, True, verdicts)


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
