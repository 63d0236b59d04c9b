"""Grammar completion: the fewest words that turn an unfinished query into a complete one.

Constrained decoding keeps every beam a valid prefix, but a beam can still stop before its
query is complete: the length limit cuts a loop, or the query names ``t1`` in SELECT and the
model never binds ``t1`` in FROM. `complete_query` finishes such a beam. It keeps the
beam's words up to a cut point and appends the fewest completion words after it. These
are closing ``)`` and quotes, the literal ``1`` as a missing operand, ``from``/``join``
with a table and an alias, and a few keywords. The checker prunes every word that cannot
continue the query, and its name rules decide which table may bind a pending alias
(``t1.year`` needs a table with a ``year`` column).

The completed query is valid for the schema, but the model did not write its last words,
so it rarely answers the question. It is the last resort for a query that should run.

NOTE: the checker misses some rules SQLite applies only when the query runs. A
completion such as ``group by 1`` after ``select count ( * )`` names an aggregate there
and fails, so a caller that runs the SQL should try the next completion.

>>> from graphix.schema import Column, Schema, Table
>>> from graphix.decoding.prefix_checker import PrefixChecker
>>> singer = Table("singer", "singer", (Column("age", "age", "number", "singer"),))
>>> checker = PrefixChecker(Schema("music", (singer,)), with_db_id=False)
>>> complete_query(checker, "select t1.age from singer as t1 where ( t1.age >")
'select t1.age from singer as t1 where ( t1.age > 1 )'
>>> complete_query(checker, "select avg ( t1.age )")
'select avg ( t1.age ) from singer as t1'
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from graphix.decoding import sql_lexer
from graphix.decoding.prefix_checker import CheckerState, PrefixChecker
from graphix.decoding.sql_grammar import ArgsFrame, ListFrame, ParenFrame, SelectFrame

DEFAULT_MAX_WORDS = 8
DEFAULT_MAX_FEEDS = 20_000
_CLOSING_QUOTES = ("'", '"')
_WORDS = (")",) + _CLOSING_QUOTES + ("1", "*", "by", "and", "null", "select")
_ALIAS_NAMES = frozenset(f"t{number}" for number in range(1, 10))
_ALIASES = tuple(f"as {name}" for name in sorted(_ALIAS_NAMES))


def completion_words(checker: PrefixChecker) -> tuple[str, ...]:
    """Return the steps the search appends: closers, literals, keywords, table names
    alone and after ``from`` or ``join``, and ``as`` with an alias ``t1`` to ``t9``."""
    tables = sorted(checker.index.table_columns)
    return (_WORDS + tuple(f"from {table}" for table in tables)
            + tuple(f"join {table}" for table in tables) + tuple(tables) + _ALIASES)


def complete_query(checker: PrefixChecker, sql: str, *, max_words: int = DEFAULT_MAX_WORDS,
                   max_feeds: int = DEFAULT_MAX_FEEDS) -> str | None:
    """Return the cheapest completion of `sql` (see `completions`), or None."""
    return next(completions(checker, sql, max_words=max_words, max_feeds=max_feeds), None)


def completions(checker: PrefixChecker, sql: str, *, max_words: int = DEFAULT_MAX_WORDS,
                max_feeds: int = DEFAULT_MAX_FEEDS) -> Iterator[str]:
    """Yield `sql` cut at a word boundary and completed, cheapest first.

    The search tries every word boundary of `sql` after its first word (its end included)
    side by side. It yields completions by cost, where each word dropped from `sql` and
    each step added costs 1; between equal costs, the one that drops fewer words comes
    first. A step is one of `completion_words`; at most `max_words` steps are added. When
    the search runs out of feeds, one-step completions at every cut, latest first, follow.
    All of it feeds the checker at most `max_feeds` times in all, which bounds the time
    (about 20 ms per 1,000 feeds). Nothing is yielded when `sql` is already complete. The
    checker does not know every rule of SQLite (an aggregate of an outer query's column
    inside a subquery fails only when it runs), so a caller that runs the SQL may try the
    next completion.
    """
    words = sql.split()
    boundaries: list[CheckerState] = []
    state = checker.initial()
    for position, word in enumerate(words):
        boundaries.append(state)
        state = checker.feed(state, word if position == 0 else " " + word)
        if not state.ok:
            break
    else:
        if checker.is_complete(state):
            return
        boundaries.append(state)

    steps_text = [(word, word if word in _CLOSING_QUOTES else " " + word)
                  for word in completion_words(checker)]
    tables = checker.index.table_columns
    last = len(boundaries) - 1
    # A* search: a node's cost is the words dropped from the beam plus the steps added,
    # and `_steps_needed` bounds the steps still to come from below. A complete query
    # goes back on the queue and is yielded when it comes off it, so completions come
    # out cheapest first. A cut before the first word would keep nothing of the beam.
    queue, seen, order = [], set(), 0
    for cut in range(last, 0, -1):
        state = boundaries[cut]
        needed = _steps_needed(state, tables)
        if needed is not None and (state.lexer, state.stack) not in seen:
            seen.add((state.lexer, state.stack))
            order += 1
            queue.append((last - cut + needed, last - cut, order, 0, cut, state, "", False))
    heapq.heapify(queue)
    budget = max_feeds * 3 // 4
    while queue and budget > 0:
        cost, dropped, _, steps, cut, state, added, complete = heapq.heappop(queue)
        if complete:
            yield " ".join(words[:cut]) + added
            continue
        if steps >= max_words:
            continue
        for word, text in steps_text:
            budget -= 1
            extended = checker.feed(state, text)
            if not extended.ok:
                continue
            order += 1
            if checker.is_complete(extended):
                heapq.heappush(queue, (dropped + steps + 1, dropped, order, steps + 1, cut,
                                       extended, added + text, True))
                continue
            key = (extended.lexer, extended.stack)
            if key in seen:
                continue
            seen.add(key)
            needed = _steps_needed(extended, tables)
            if needed is None:
                continue
            heapq.heappush(queue, (dropped + steps + 1 + needed, dropped, order, steps + 1,
                                   cut, extended, added + text, False))
    for entry in sorted(item for item in queue if item[7]):
        yield " ".join(words[:entry[4]]) + entry[6]
    if not queue:
        return
    # The cheapest completions need more feeds than are left: a cut far back that one
    # step completes (``select count ( * ) ,`` with ``1``) still finishes the query.
    budget += max_feeds // 4
    for cut in range(last, 0, -1):
        for word, text in steps_text:
            if budget <= 0:
                return
            budget -= 1
            if checker.is_complete(checker.feed(boundaries[cut], text)):
                yield " ".join(words[:cut]) + text


def _steps_needed(state: CheckerState, tables: dict[str, frozenset[str]]) -> int | None:
    """Return a lower bound on the completion steps after `state`; None when no
    completion exists: a pending alias needs columns no single table has, or a column
    named without a qualifier is already in two tables of FROM.

    Each alias named but not yet bound needs at least ``as`` with the alias, and a table
    named as a qualifier needs ``from``/``join`` with it: one step each. Each open
    parenthesis and an open string need one more. An alias other than ``t1`` to ``t9``
    cannot be bound with the completion words.
    """
    needed = 0
    if state.lexer.mode in (sql_lexer.IN_STRING, sql_lexer.AFTER_QUOTE):
        needed += 1
    for frame in state.stack:
        if not isinstance(frame, SelectFrame):
            if isinstance(frame, (ArgsFrame, ParenFrame, ListFrame)):
                needed += 1
            continue
        if frame.nested:
            needed += 1
        scope = frame.scope
        unbound: dict[str, set[str]] = {}
        unresolved = False
        for qualifier, column in scope.pending:
            if qualifier is not None and not scope.has_qualifier(qualifier):
                unbound.setdefault(qualifier, set()).add(column)
            elif qualifier is None and column != "*":
                hits = sum(1 for source in scope.sources
                           if source.columns is None or column in source.columns)
                if hits > 1 and column not in scope.aliases:
                    return None  # ambiguous, and more tables cannot change that
                unresolved = unresolved or hits == 0
        if unresolved and not frame.nested:
            needed += 1  # ``from``/``join`` with a table that has the column
        for qualifier, columns in unbound.items():
            columns.discard("*")
            if qualifier in tables:
                needed += 1  # ``from``/``join`` with the table itself
                continue
            if qualifier not in _ALIAS_NAMES or not any(columns <= names
                                                        for names in tables.values()):
                return None
            needed += 1  # at least ``as`` with the alias
    return needed
