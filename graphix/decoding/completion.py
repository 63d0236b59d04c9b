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
>>> complete_query(checker, "select t1.age from singer as t1 where ( t1.age > 3")
'select t1.age from singer as t1 where ( t1.age > 3 )'
>>> complete_query(checker, "select avg ( t1.age )")
'select avg ( t1.age ) from singer as t1'
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import NamedTuple

from graphix.decoding import sql_lexer
from graphix.decoding.prefix_checker import CheckerState, PrefixChecker
from graphix.decoding.sql_grammar import ArgsFrame, ListFrame, ParenFrame, SelectFrame

DEFAULT_MAX_WORDS = 8
DEFAULT_MAX_FEEDS = 1_500
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
    """Return the cheapest completion of `sql` (see `ranked_completions`); None when `sql`
    is already a complete query or no completion is found."""
    if checker.accepts_query(sql):
        return None
    return next(completions(checker, sql, max_words=max_words, max_feeds=max_feeds), None)


class Completion(NamedTuple):
    """One cut of a query, possibly with completion words added."""

    sql: str
    steps: int
    """Completion steps added; 0 for a cut that is itself a complete query."""
    cost: int
    """Words dropped from the query plus steps added."""


def completions(checker: PrefixChecker, sql: str, *, max_words: int = DEFAULT_MAX_WORDS,
                max_feeds: int = DEFAULT_MAX_FEEDS) -> Iterator[str]:
    """Yield the SQL of `ranked_completions`, cheapest first."""
    for completion in ranked_completions(checker, sql, max_words=max_words,
                                         max_feeds=max_feeds):
        yield completion.sql


def ranked_completions(checker: PrefixChecker, sql: str, *,
                       max_words: int = DEFAULT_MAX_WORDS,
                       max_feeds: int = DEFAULT_MAX_FEEDS,
                       max_cost: float = float("inf")) -> Iterator[Completion]:
    """Yield `sql` cut at a word boundary and completed, cheapest first.

    The search tries every word boundary of `sql` after its first word (its end included)
    side by side. It yields completions by cost: each word dropped from `sql` and each
    step added costs 1, and dropping the first ``from`` of `sql` costs 1 more. Between
    equal costs, the one that adds fewer steps comes first. `sql` itself is never yielded.
    A step is one of `completion_words`; at most `max_words` steps are added. When the
    search runs out of feeds, one-step completions at every cut, latest first, follow.
    Nothing costing more than `max_cost` is yielded. Each of the two phases feeds the
    checker at most `max_feeds` times, which bounds the time (about 20 ms per 1,000 feeds on the development machine). The checker does not
    know every rule of SQLite (an aggregate of an outer query's column inside a subquery
    fails only when it runs), so execution-guided choice runs several completions.
    """
    words = sql.split()
    boundaries = _word_boundaries(checker, words)
    first_from = _first_from(words)

    # Steps that finish a partly written last word (``con`` of ``concert``) come first,
    # so that they win ties with other steps of the same cost.
    partial = words[-1].lower() if words else ""
    ordered = sorted(completion_words(checker), key=lambda word: not (
        partial and word.startswith(partial) and word != partial))
    steps_text = [(word, word if word in _CLOSING_QUOTES else " " + word)
                  for word in ordered]
    tables = checker.index.table_columns
    last = len(boundaries) - 1
    # Words after the first invalid one are dropped by every cut.
    unread = len(words) - last
    # A* search: a node's cost is the words dropped from the beam plus the steps added,
    # and `_steps_needed` bounds the steps still to come from below. A complete query
    # goes back on the queue and is yielded when it comes off it, so completions come
    # out cheapest first. A cut before the first word would keep nothing of the beam.
    queue, seen, order = [], set(), 0
    for cut in range(last, 0, -1):
        state = boundaries[cut]
        order += 1
        dropped = last - cut + unread
        if dropped and checker.is_complete(state):
            cost = dropped + _lost_from(first_from, cut, "")
            queue.append((cost, 0, order, dropped, cut, state, "", True))
        needed = _steps_needed(state, tables)
        if needed is not None and (state.lexer, state.stack) not in seen:
            seen.add((state.lexer, state.stack))
            order += 1
            queue.append((dropped + needed, 0, order, dropped, cut, state, "", False))
    heapq.heapify(queue)
    budget = max_feeds
    while queue and budget > 0:
        cost, steps, _, dropped, cut, state, added, complete = heapq.heappop(queue)
        if cost > max_cost:
            return
        if complete:
            yield Completion(" ".join(words[:cut]) + added, steps, cost)
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
                cost = dropped + steps + 1 + _lost_from(first_from, cut, added + text)
                heapq.heappush(queue, (cost, steps + 1, order, dropped, cut, extended,
                                       added + text, True))
                continue
            key = (extended.lexer, extended.stack)
            if key in seen:
                continue
            seen.add(key)
            needed = _steps_needed(extended, tables)
            if needed is None:
                continue
            heapq.heappush(queue, (dropped + steps + 1 + needed, steps + 1, order, dropped,
                                   cut, extended, added + text, False))
    # Complete queries found before the budget ran out are still on the queue.
    for entry in sorted(item for item in queue if item[7] and item[0] <= max_cost):
        yield Completion(" ".join(words[:entry[4]]) + entry[6], entry[1], entry[0])
    if not queue:
        return
    # The cheapest completions need more feeds than are left: a cut far back that one
    # step completes (``select count ( * ) ,`` with ``1``) still finishes the query.
    budget = max_feeds
    for cut in range(last, 0, -1):
        for word, text in steps_text:
            if budget <= 0:
                return
            budget -= 1
            cost = len(words) - cut + 1 + _lost_from(first_from, cut, text)
            if cost <= max_cost and checker.is_complete(checker.feed(boundaries[cut], text)):
                yield Completion(" ".join(words[:cut]) + text, 1, cost)


def _word_boundaries(checker: PrefixChecker, words: list[str]) -> list[CheckerState]:
    """Return the checker state before each word, and after the last one, up to the first
    word the checker rejects."""
    boundaries = []
    state = checker.initial()
    for position, word in enumerate(words):
        boundaries.append(state)
        state = checker.feed(state, word if position == 0 else " " + word)
        if not state.ok:
            return boundaries
    boundaries.append(state)
    return boundaries


def _first_from(words: list[str]) -> int | None:
    """Return the position of the first ``from`` among `words`, or None."""
    return next((position for position, word in enumerate(words) if word.lower() == "from"),
                None)


def _lost_from(first_from: int | None, cut: int, added: str) -> int:
    """Return 1 when a cut at `cut` drops the query's first ``from`` (at `first_from`) and
    the added text brings none back, else 0, because without its table a query rarely
    means anything."""
    if first_from is None:
        return 0
    return int(cut <= first_from and " from " not in added + " ")


def completions_of_beams(checker: PrefixChecker, beams: Sequence[str], *,
                        per_beam: int) -> list[tuple[int, Completion]]:
    """Return up to `per_beam` completions and the two longest complete prefixes of each
    of `beams` (best first) with the beam's index. They are ordered by cost plus the
    beam's index, so that each place down the beam ranking costs one more word. Between
    equal totals, the one that adds fewer steps comes first, then the better beam."""
    found = []
    best = float("inf")
    for index, sql in enumerate(beams):
        if index > best:
            break  # every later beam costs more than the best found so far
        ranked = list(islice(ranked_completions(checker, sql, max_cost=best - index),
                             per_beam))
        # The cheapest completions often keep the part that makes a query fail in SQLite
        # (``order by 3`` of one column), so the two longest complete prefixes join them.
        words = sql.split()
        first_from = _first_from(words)
        for prefix in complete_prefixes(checker, sql)[:2]:
            if all(prefix != completion.sql for completion in ranked):
                cut = len(prefix.split())
                cost = len(words) - cut + _lost_from(first_from, cut, "")
                ranked.append(Completion(prefix, 0, cost))
        found.extend((completion.cost + index, completion.steps, index, completion)
                     for completion in ranked)
        best = min([best] + [completion.cost + index for completion in ranked])
    found.sort(key=lambda item: item[:3])
    return [(index, completion) for _, _, index, completion in found]


def complete_prefixes(checker: PrefixChecker, sql: str) -> list[str]:
    """Return the proper prefixes of `sql` that end between words and form a complete
    query for `checker`'s schema, longest first.

    >>> from graphix.schema import Column, Schema, Table
    >>> singer = Table("singer", "singer", (Column("age", "age", "number", "singer"),))
    >>> checker = PrefixChecker(Schema("music", (singer,)), with_db_id=False)
    >>> complete_prefixes(checker, "select age from singer order by age desc limit")
    ['select age from singer order by age desc', 'select age from singer order by age', 'select age from singer']
    """
    words = sql.split()
    boundaries = _word_boundaries(checker, words)
    last = min(len(boundaries), len(words)) - 1
    return [" ".join(words[:cut]) for cut in range(last, 0, -1)
            if checker.is_complete(boundaries[cut])]


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
