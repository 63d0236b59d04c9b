"""A token-at-a-time parser for SQLite SELECT queries that checks names against a schema.

The parser is a pushdown automaton whose stack is a tuple of immutable frames, so a
parse state costs nothing to keep and feeding one token builds a new state from the
old one (usually by replacing the top frame). Decoding keeps one state per beam and
feeds each candidate continuation to it.

Covered SQL:

- ``select [distinct|all]`` with result columns ``*``, ``t.*`` and expressions with
  ``as`` aliases;
- ``from`` tables and parenthesized subqueries with aliases, joined by ``,``, ``join``,
  ``inner join``, ``left [outer] join``, ``cross join`` or ``natural join``, with ``on``;
- ``where``, ``group by`` with ``having``, ``order by`` with ``asc``/``desc``, ``limit``
  with ``offset``, and ``union [all]``, ``intersect``, ``except``;
- expressions: literals, column references, function calls (aggregates with ``distinct``
  and ``count(*)``), arithmetic and comparison operators, ``and``/``or``/``not``,
  ``[not] in`` (list or subquery), ``[not] like``, ``[not] between ... and ...``,
  ``is [not] null``, ``exists (subquery)`` and scalar subqueries.

Not covered: ``case``, ``cast``, ``with``, window functions and ``using``.

Name checks follow SQLite's rules. A column reference must belong to a table (or
subquery) of the innermost FROM clause that has it, or of an enclosing query, and an
unqualified name found in two tables of one FROM clause is ambiguous. The result
columns come before FROM, so their references are kept as pending and checked when
the FROM clause ends. SQLite also lets an ``on`` condition name a table joined later,
so unresolved names in ``on`` wait for the end of FROM too. A table alias hides the
table's own name as a qualifier.

The grammar also rejects some queries that SQLite accepts, because nobody intends them
and a lost model loops through them:

- a comparison chained onto a comparison (``a = b = c``);
- a column compared with itself (``t1.id = t1.id``), or with an expression that starts
  with it (``age = age + 1``), except in the first condition of ``on``;
- the same comparison of two columns twice in one ``and``/``or`` chain;
- a result column written a third time in one SELECT, token for token, and by default
  more than 8 result columns in one SELECT;
- by default, a new name (table or column alias, or a qualifier not yet bound) other than
  ``t1`` to ``t9`` (see `NewNames`), a table alias bound twice in one FROM clause, and
  columns named through one unbound qualifier that no single table has together.

All of these rules but the first apply only with ``strict`` (the default), which decoding
uses; finished SQL is checked without them.

It rejects as well what SQLite itself rejects only when the query runs: an aggregate call
inside another aggregate's arguments or in WHERE, ON or GROUP BY, and compound cores with
different numbers of result columns.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from graphix.decoding.sql_lexer import END, NUMBER, STRING, SYMBOL, WORD, Token
from graphix.schema import Schema


class RejectReason(str, enum.Enum):
    """Reason a prefix can no longer become a valid query."""

    SYNTAX = "syntax"
    UNBALANCED = "unbalanced"
    BAD_CHARACTER = "bad_character"
    DB_ID = "db_id"
    UNKNOWN_TABLE = "unknown_table"
    UNKNOWN_COLUMN = "unknown_column"
    COLUMN_NOT_IN_FROM = "column_not_in_from"
    UNKNOWN_QUALIFIER = "unknown_qualifier"
    AMBIGUOUS_COLUMN = "ambiguous_column"
    UNKNOWN_FUNCTION = "unknown_function"
    MISPLACED_AGGREGATE = "misplaced_aggregate"
    COLUMN_COUNT = "column_count"


class Rejection(Exception):
    """Raised when a token makes the query invalid; `reason` names the rule that failed."""

    def __init__(self, reason: RejectReason, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


RESERVED = frozenset("""
    select from where group by having order limit offset union intersect except all
    distinct as on join inner left right full outer cross natural using and or not in
    like glob between is null exists case when then else end asc desc cast collate
    escape isnull notnull
""".split())
"""Keywords that cannot be used as a bare identifier in the covered grammar."""

BARE_NAME_KEYWORDS = frozenset({"by", "asc", "desc", "cast", "end", "like", "glob", "offset"})
"""Keywords of `RESERVED` that SQLite's parser takes as a plain name where a name fits."""

# name: (minimum arguments, maximum arguments or None for any, is aggregate)
FUNCTIONS: dict[str, tuple[int, int | None, bool]] = {
    "count": (1, 1, True), "sum": (1, 1, True), "avg": (1, 1, True),
    "min": (1, None, True), "max": (1, None, True), "total": (1, 1, True),
    "group_concat": (1, 2, True),
    "abs": (1, 1, False), "length": (1, 1, False), "lower": (1, 1, False),
    "upper": (1, 1, False), "round": (1, 2, False), "substr": (2, 3, False),
    "substring": (2, 3, False), "instr": (2, 2, False), "replace": (3, 3, False),
    "trim": (1, 2, False), "ltrim": (1, 2, False), "rtrim": (1, 2, False),
    "coalesce": (2, None, False), "ifnull": (2, 2, False), "nullif": (2, 2, False),
    "date": (1, None, False), "time": (1, None, False), "datetime": (1, None, False),
    "julianday": (1, None, False), "strftime": (2, None, False), "random": (0, 0, False),
    "typeof": (1, 1, False),
}

LITERAL_WORDS = frozenset({"null", "true", "false", "current_date", "current_time",
                           "current_timestamp"})
COMPARISON_AND_ARITHMETIC = frozenset({"=", "==", "!=", "<>", "<", ">", "<=", ">=", "+", "-",
                                       "*", "/", "%", "||", "<<", ">>"})
COMPARISONS = frozenset({"=", "==", "!=", "<>", "<", ">", "<=", ">="})
SET_OPERATORS = frozenset({"union", "intersect", "except"})
MAX_ITEM_COPIES = 2
"""How often one result column may occur in one SELECT."""
DEFAULT_MAX_RESULT_COLUMNS = 8
"""Spider's gold queries have at most 6 result columns per SELECT."""


class NewNames(NamedTuple):
    """The names a query may introduce: table and column aliases, and qualifiers not yet bound.

    A new name is `stem` followed by 1 to `max_digits` digits (``t1``, ``t12``). Spider's
    gold queries introduce no other names: their only aliases are ``t1`` to ``t7``, so
    a model trained on them writes no others unless it is lost, and then it loops on
    made-up names that nothing binds. Decoding that must accept any alias passes None
    instead of a `NewNames`; the grammar then also accepts an alias bound twice.
    """

    stem: str = "t"
    max_digits: int = 1

    def allows(self, name: str) -> bool:
        digits = name[len(self.stem):]
        return (name.startswith(self.stem) and 0 < len(digits) <= self.max_digits
                and digits.isascii() and digits.isdigit())

    def completions(self, prefix: str) -> list[str]:
        """Return the new names one digit longer than `prefix` (or than the stem), or an
        empty list when no new name starts with `prefix`."""
        if self.stem.startswith(prefix):
            return [self.stem + digit for digit in "123456789"]
        if self.allows(prefix) and len(prefix) - len(self.stem) < self.max_digits:
            return [prefix + digit for digit in "0123456789"]
        return []


NUMBERED_ALIASES = NewNames()
"""The default `NewNames`: ``t1`` to ``t9``."""


class SchemaIndex:
    """Lowercased lookups over one schema, built once per schema."""

    def __init__(self, schema: Schema):
        self.schema = schema
        self.db_id = schema.db_id
        self.table_columns: dict[str, frozenset[str]] = {
            table.name.lower(): frozenset(column.name.lower() for column in table.columns)
            for table in schema.tables
        }
        self.all_columns: frozenset[str] = frozenset().union(*self.table_columns.values())
        words = set(self.table_columns) | self.all_columns | RESERVED | set(FUNCTIONS)
        words |= LITERAL_WORDS
        self.words: tuple[str, ...] = tuple(sorted(words))
        """Every keyword, function and schema name, sorted for prefix search."""
        self.schema_names: frozenset[str] = frozenset(self.table_columns) | self.all_columns


# ---------------------------------------------------------------------------- scopes


class Source(NamedTuple):
    """A table or subquery in a FROM clause, named by its alias or table name."""

    key: str
    columns: frozenset[str] | None
    """Column names it provides; None when unknown, which accepts any name."""


BEFORE_FROM, IN_FROM, AFTER_FROM = range(3)
FOUND, MISSING, AMBIGUOUS = range(3)


class Scope(NamedTuple):
    """The names one SELECT core can see, and references waiting for its FROM clause."""

    sources: tuple[Source, ...] = ()
    from_state: int = BEFORE_FROM
    pending: tuple[tuple[str | None, str], ...] = ()
    aliases: frozenset[str] = frozenset()
    outputs: tuple = ()
    """Result column names, ``None`` for an unnamed expression, ``("*", qualifier)`` for stars."""

    def lookup(self, qualifier: str | None, column: str) -> int:
        if qualifier is not None:
            for source in self.sources:
                if source.key == qualifier:
                    if source.columns is None or column in source.columns:
                        return FOUND
                    return MISSING
            return MISSING
        hits = sum(1 for s in self.sources if s.columns is None or column in s.columns)
        if hits == 1 or (hits > 1 and column in self.aliases):
            return FOUND
        if hits > 1:
            return AMBIGUOUS
        return FOUND if column in self.aliases else MISSING

    def has_qualifier(self, name: str) -> bool:
        return any(source.key == name for source in self.sources)


# ---------------------------------------------------------------------------- frames

# SelectFrame states.
(S_SELECT, S_QUANTIFIER, S_ITEM, S_ITEM_END, S_ALIAS, S_ALIAS_END, S_AFTER_ITEMS, S_SOURCE,
 S_SOURCE_ALIAS, S_SOURCE_ALIAS_NAME, S_JOIN, S_JOIN_KEYWORD, S_LEFT, S_NATURAL, S_AFTER_FROM,
 S_AFTER_WHERE, S_GROUP_BY, S_GROUP_ITEM_END, S_AFTER_HAVING, S_SET_OPERATOR, S_ORDER_BY,
 S_ORDER_ITEM_END, S_ORDER_DIRECTION, S_LIMIT_END, S_END) = range(25)

# ExprFrame states.
E_OPERAND, E_NAME, E_DOT, E_AFTER, E_NOT, E_IS, E_EXISTS, E_IN = range(8)

# ArgsFrame, ParenFrame and ListFrame states.
A_START, A_ARGUMENT, A_AFTER_ARGUMENT, A_STAR = range(4)
P_START, P_CLOSE = range(2)
L_START, L_AFTER_ITEM = range(2)


class SelectFrame(NamedTuple):
    """A SELECT statement, possibly compound; `nested` when it sits inside parentheses."""

    state: int = S_SELECT
    scope: Scope = Scope()
    nested: bool = False
    compound: bool = False
    ordered: bool = False
    on_allowed: bool = False
    first_outputs: tuple | None = None
    """The result columns of the first core of a compound query."""
    compound_names: frozenset[str] = frozenset()
    """Result column names of the earlier cores of a compound query."""
    item: tuple | None = ()
    """The tokens of the result column being read; None when it contains a subquery."""
    items: tuple = ()
    """The token tuples of the earlier result columns of this core."""


FRESH_SIDE = ("",)
"""`ExprFrame.side` before the first operand of a side of a comparison."""


class ExprFrame(NamedTuple):
    """One expression; `star_allowed` for result columns, where ``t.*`` may appear."""

    state: int = E_OPERAND
    name: str = ""
    star_allowed: bool = False
    open_betweens: int = 0
    operands: int = 0
    simple: object = None
    """The column name (or ``("*", qualifier)``) when the expression is just that."""
    compared: bool = False
    """Whether the current operand of ``and``/``or`` already contains a comparison."""
    side: object = FRESH_SIDE
    """The ``(qualifier, column)`` reference that is so far the whole of the current side of
    a comparison, `FRESH_SIDE` before that side's first operand, or None."""
    against: tuple | None = None
    """The left side's reference while reading the right side of a comparison whose left
    side is one column reference."""
    operator: str = ""
    """The comparison operator between `against` and the current side."""
    conditions: frozenset = frozenset()
    """Comparisons of two columns already made in this ``and``/``or`` chain."""
    self_comparison: bool = False
    """Whether a column may be compared with itself here: only in the first condition of
    ``on``, where eight of Spider's training queries do it (``on t2.actid = t2.actid``)."""


class ArgsFrame(NamedTuple):
    """The argument list of a function call, after its ``(``."""

    function: str
    state: int = A_START
    count: int = 0


class ParenFrame(NamedTuple):
    """A parenthesized expression or scalar subquery, after its ``(``."""

    state: int = P_START


class ListFrame(NamedTuple):
    """The value list or subquery of ``in (...)``, after its ``(``."""

    state: int = L_START


Stack = tuple


def _token_text(token: Token) -> str:
    kind, text = token
    if kind == STRING:
        return f"string '{text}'"
    if kind == END:
        return "end of query"
    return repr(text)


class Grammar:
    """Feeds tokens to parse states of SQL queries over one schema."""

    def __init__(self, schema: Schema | SchemaIndex, *, implicit_aliases: bool = False,
                 strict: bool = True, new_names: NewNames | None = NUMBERED_ALIASES,
                 max_result_columns: int | None = DEFAULT_MAX_RESULT_COLUMNS):
        self.index = schema if isinstance(schema, SchemaIndex) else SchemaIndex(schema)
        self.implicit_aliases = implicit_aliases
        """Whether a table alias may follow its table without ``as`` (``from singer s``)."""
        self.strict = strict
        """Whether the rules that keep a decoding model on the training queries' form
        apply: `new_names`, `max_result_columns`, no alias bound twice, no column compared
        with itself, no comparison or result column repeated, one table per unbound
        qualifier. Without them the grammar follows SQLite's own rules."""
        self.new_names = new_names if strict else None
        """The aliases and unbound qualifiers a query may introduce; None allows any name."""
        self.max_result_columns = max_result_columns if strict else None
        """The maximum number of result columns of one SELECT; None for no limit."""
        self._handlers = {
            SelectFrame: self._select, ExprFrame: self._expr, ArgsFrame: self._args,
            ParenFrame: self._paren, ListFrame: self._list,
        }

    def initial(self) -> Stack:
        return (SelectFrame(),)

    def feed(self, stack: Stack, token: Token) -> Stack:
        """Return the state after `token`; raises Rejection when the token is invalid here."""
        handlers = self._handlers
        if not stack:
            raise Rejection(RejectReason.SYNTAX, f"unexpected {_token_text(token)} after the end")
        consumed = False
        while not consumed:
            frame = stack[-1]
            stack, consumed = handlers[type(frame)](stack, frame, token)
        return self._record_item_token(stack, token) if self.strict else stack

    @staticmethod
    def _record_item_token(stack: Stack, token: Token) -> Stack:
        """Add `token` to the result column being read by the innermost SELECT, if any.

        Tokens of a subquery inside a result column go to the subquery's own SELECT, so
        the enclosing column is marked as not comparable (None) instead.
        """
        for position in range(len(stack) - 1, -1, -1):
            frame = stack[position]
            if isinstance(frame, SelectFrame):
                break
        else:
            return stack
        if frame.state == S_ITEM_END and frame.item is not None:
            stack = (stack[:position] + (frame._replace(item=frame.item + (token,)),)
                     + stack[position + 1:])
        if frame.nested:
            for outer in range(position - 1, -1, -1):
                enclosing = stack[outer]
                if isinstance(enclosing, SelectFrame):
                    if enclosing.state == S_ITEM_END and enclosing.item is not None:
                        stack = (stack[:outer] + (enclosing._replace(item=None),)
                                 + stack[outer + 1:])
                    break
        return stack

    def _finish_item(self, frame: SelectFrame) -> SelectFrame:
        """Record the result column just read; reject its third copy.

        Fourteen of Spider's gold queries name one result column twice
        (``select t1.student_id , ... , t1.student_id``), none three times.
        """
        item = frame.item
        if not item or not self.strict:
            return frame._replace(item=())
        if frame.items.count(item) >= MAX_ITEM_COPIES:
            raise Rejection(RejectReason.SYNTAX,
                            f"a result column comes more than {MAX_ITEM_COPIES} times")
        return frame._replace(item=(), items=frame.items + (item,))

    def is_complete(self, stack: Stack) -> bool:
        try:
            return self.feed(stack, (END, "")) == ()
        except Rejection:
            return False

    # ------------------------------------------------------------------ stack helpers

    @staticmethod
    def _set_top(stack: Stack, frame) -> Stack:
        return stack[:-1] + (frame,)

    def _pop(self, stack: Stack, child) -> Stack:
        """Remove the finished top frame and let its parent record what it produced."""
        stack = stack[:-1]
        if not stack:
            return stack
        parent = stack[-1]
        if isinstance(parent, SelectFrame):
            return self._set_top(stack, self._select_child_done(parent, child))
        return stack

    # ------------------------------------------------------------------ SELECT

    def _select(self, stack: Stack, frame: SelectFrame, token: Token) -> tuple[Stack, bool]:
        kind, text = token
        word = text if kind == WORD else None
        state = frame.state

        if state == S_SELECT:
            if word == "select":
                return self._set_top(stack, frame._replace(state=S_QUANTIFIER)), True
            raise self._unexpected(token, "'select'")

        if state == S_QUANTIFIER:
            frame = frame._replace(state=S_ITEM, item=(), items=())
            if word in ("distinct", "all"):
                return self._set_top(stack, frame), True
            return self._set_top(stack, frame), False

        if state == S_ITEM:
            if token == (SYMBOL, "*"):
                scope = frame.scope._replace(outputs=frame.scope.outputs + (("*", None),))
                return self._set_top(stack, frame._replace(state=S_ALIAS_END, scope=scope)), True
            stack = self._set_top(stack, frame._replace(state=S_ITEM_END))
            return stack + (ExprFrame(star_allowed=True),), False

        if state == S_ITEM_END:
            if word == "as":
                return self._set_top(stack, frame._replace(state=S_ALIAS)), True
            return self._set_top(stack, frame._replace(state=S_ALIAS_END)), False

        if state == S_ALIAS:
            if (kind == WORD and word not in RESERVED) or kind == STRING:
                alias = self._new_name(text.lower())
                scope = frame.scope
                scope = scope._replace(aliases=scope.aliases | {alias},
                                outputs=scope.outputs[:-1] + (alias,))
                return self._set_top(stack, frame._replace(state=S_ALIAS_END, scope=scope)), True
            raise self._unexpected(token, "a column alias")

        if state == S_ALIAS_END:
            frame = self._finish_item(frame)
            if token == (SYMBOL, ","):
                limit = self.max_result_columns
                if limit is not None and len(frame.scope.outputs) >= limit:
                    raise Rejection(RejectReason.SYNTAX,
                                    f"more than {limit} result columns in one SELECT")
                self._check_column_count(frame, more=True)
                return self._set_top(stack, frame._replace(state=S_ITEM)), True
            self._check_column_count(frame, more=False)
            return self._set_top(stack, frame._replace(state=S_AFTER_ITEMS)), False

        if state == S_AFTER_ITEMS:
            if word == "from":
                scope = frame.scope._replace(from_state=IN_FROM)
                return self._set_top(stack, frame._replace(state=S_SOURCE, scope=scope)), True
            return self._close_from(stack, frame, S_AFTER_FROM), False

        if state == S_SOURCE:
            # SQLite accepts some keywords as a bare table name (``cast``, ``end``), not
            # others (``order``, ``select``), which need quotes the grammar does not cover.
            if kind == WORD and (word not in RESERVED or (word in BARE_NAME_KEYWORDS
                                                         and word in self.index.table_columns)):
                columns = self.index.table_columns.get(word)
                if columns is None:
                    raise Rejection(RejectReason.UNKNOWN_TABLE,
                                    f"no table {word!r} in database {self.index.db_id!r}")
                scope = frame.scope._replace(sources=frame.scope.sources + (Source(word, columns),))
                frame = frame._replace(state=S_SOURCE_ALIAS, scope=scope)
                return self._set_top(stack, frame), True
            if token == (SYMBOL, "("):
                stack = self._set_top(stack, frame._replace(state=S_SOURCE_ALIAS))
                return stack + (SelectFrame(nested=True),), True
            raise self._unexpected(token, "a table name or '('")

        if state == S_SOURCE_ALIAS:
            if word == "as":
                return self._set_top(stack, frame._replace(state=S_SOURCE_ALIAS_NAME)), True
            if kind == WORD and word not in RESERVED and self.implicit_aliases:
                frame = self._rename_last_source(frame, self._bind_alias(frame, word))
                return self._set_top(stack, frame), True
            return self._set_top(stack, frame._replace(state=S_JOIN)), False

        if state == S_SOURCE_ALIAS_NAME:
            if kind == WORD and word not in RESERVED:
                frame = self._rename_last_source(frame, self._bind_alias(frame, word))
                return self._set_top(stack, frame), True
            raise self._unexpected(token, "a table alias")

        if state == S_JOIN:
            return self._join(stack, frame, token)

        if state == S_JOIN_KEYWORD:
            if word == "join":
                return self._set_top(stack, frame._replace(state=S_SOURCE, on_allowed=True)), True
            raise self._unexpected(token, "'join'")

        if state == S_LEFT:
            if word == "outer":
                return self._set_top(stack, frame._replace(state=S_JOIN_KEYWORD)), True
            if word == "join":
                return self._set_top(stack, frame._replace(state=S_SOURCE, on_allowed=True)), True
            raise self._unexpected(token, "'outer' or 'join'")

        if state == S_NATURAL:
            if word == "left":
                return self._set_top(stack, frame._replace(state=S_LEFT)), True
            if word in ("inner", "cross"):
                return self._set_top(stack, frame._replace(state=S_JOIN_KEYWORD)), True
            if word == "join":
                return self._set_top(stack, frame._replace(state=S_SOURCE, on_allowed=False)), True
            raise self._unexpected(token, "'join'")

        if state == S_AFTER_FROM:
            if word == "where":
                return self._set_top(stack, frame._replace(state=S_AFTER_WHERE)) + (ExprFrame(),), True
            return self._set_top(stack, frame._replace(state=S_AFTER_WHERE)), False

        if state == S_AFTER_WHERE:
            if word == "group":
                return self._set_top(stack, frame._replace(state=S_GROUP_BY)), True
            return self._set_top(stack, frame._replace(state=S_AFTER_HAVING)), False

        if state == S_GROUP_BY:
            if word == "by":
                return self._set_top(stack, frame._replace(state=S_GROUP_ITEM_END)) + (ExprFrame(),), True
            raise self._unexpected(token, "'by'")

        if state == S_GROUP_ITEM_END:
            if token == (SYMBOL, ","):
                return stack + (ExprFrame(),), True
            if word == "having":
                return self._set_top(stack, frame._replace(state=S_AFTER_HAVING)) + (ExprFrame(),), True
            return self._set_top(stack, frame._replace(state=S_AFTER_HAVING)), False

        if state == S_AFTER_HAVING:
            if word in SET_OPERATORS:
                if frame.ordered:
                    raise Rejection(RejectReason.SYNTAX,
                                    f"{word!r} after ORDER BY or LIMIT; SQLite requires them last")
                first = frame.first_outputs if frame.compound else frame.scope.outputs
                next_state = S_SET_OPERATOR if word == "union" else S_SELECT
                frame = SelectFrame(state=next_state, nested=frame.nested, compound=True,
                                    first_outputs=first, compound_names=self._names(frame))
                return self._set_top(stack, frame), True
            if word == "order":
                if frame.compound:
                    # ORDER BY of a compound query may name a result column of any core.
                    scope = frame.scope._replace(aliases=self._names(frame))
                    frame = frame._replace(scope=scope)
                return self._set_top(stack, frame._replace(state=S_ORDER_BY)), True
            if word == "limit":
                frame = frame._replace(state=S_LIMIT_END, ordered=True)
                return self._set_top(stack, frame) + (ExprFrame(),), True
            return self._end(stack, frame, token)

        if state == S_SET_OPERATOR:
            if word == "all":
                return self._set_top(stack, frame._replace(state=S_SELECT)), True
            return self._set_top(stack, frame._replace(state=S_SELECT)), False

        if state == S_ORDER_BY:
            if word == "by":
                frame = frame._replace(state=S_ORDER_ITEM_END, ordered=True)
                return self._set_top(stack, frame) + (ExprFrame(),), True
            raise self._unexpected(token, "'by'")

        if state in (S_ORDER_ITEM_END, S_ORDER_DIRECTION):
            if state == S_ORDER_ITEM_END and word in ("asc", "desc"):
                return self._set_top(stack, frame._replace(state=S_ORDER_DIRECTION)), True
            if token == (SYMBOL, ","):
                frame = frame._replace(state=S_ORDER_ITEM_END)
                return self._set_top(stack, frame) + (ExprFrame(),), True
            if word == "limit":
                return self._set_top(stack, frame._replace(state=S_LIMIT_END)) + (ExprFrame(),), True
            return self._end(stack, frame, token)

        if state == S_LIMIT_END:
            if word == "offset" or token == (SYMBOL, ","):
                return self._set_top(stack, frame._replace(state=S_END)) + (ExprFrame(),), True
            return self._end(stack, frame, token)

        if state == S_END:
            return self._end(stack, frame, token)

        raise AssertionError(f"unknown SELECT state {state}")

    def _join(self, stack: Stack, frame: SelectFrame, token: Token) -> tuple[Stack, bool]:
        kind, text = token
        word = text if kind == WORD else None
        if token == (SYMBOL, ","):
            return self._set_top(stack, frame._replace(state=S_SOURCE, on_allowed=False)), True
        if word == "join":
            return self._set_top(stack, frame._replace(state=S_SOURCE, on_allowed=True)), True
        if word in ("inner", "cross"):
            return self._set_top(stack, frame._replace(state=S_JOIN_KEYWORD)), True
        if word == "left":
            return self._set_top(stack, frame._replace(state=S_LEFT)), True
        if word == "natural":
            return self._set_top(stack, frame._replace(state=S_NATURAL)), True
        if word == "on" and frame.on_allowed:
            frame = frame._replace(on_allowed=False)
            return self._set_top(stack, frame) + (ExprFrame(self_comparison=True),), True
        return self._close_from(stack, frame, S_AFTER_FROM), False

    def _end(self, stack: Stack, frame: SelectFrame, token: Token) -> tuple[Stack, bool]:
        """End the statement on ``)`` (nested) or the end of the query (top level)."""
        kind, text = token
        if frame.nested and token == (SYMBOL, ")"):
            return self._pop(stack, frame), True
        if not frame.nested and kind == END:
            return self._pop(stack, frame), True
        if token == (SYMBOL, ")"):
            raise Rejection(RejectReason.UNBALANCED, "')' without a matching '('")
        if kind == END:
            raise Rejection(RejectReason.UNBALANCED, "the query ends inside '('")
        raise self._unexpected(token, "a clause keyword or the end of the query")

    def _new_name(self, name: str, reason: RejectReason = RejectReason.SYNTAX) -> str:
        """Return `name` for a new alias or qualifier; reject it unless `new_names` allows
        it or it is a schema name."""
        if not self._may_be_new_name(name) and name not in self.index.schema_names:
            rule = self.new_names
            raise Rejection(reason, f"{name[:20]!r} is not a schema name, and new names run "
                                    f"from {rule.stem}1 to {rule.stem}{'9' * rule.max_digits}")
        return name

    def _may_be_new_name(self, name: str) -> bool:
        return self.new_names is None or self.new_names.allows(name)

    def new_name_completions(self, prefix: str) -> list[str]:
        """Return new names that start with `prefix` and are longer, enough to tell
        whether one can come here."""
        if self.new_names is None:
            return [prefix + "_"]
        return self.new_names.completions(prefix)

    def _bind_alias(self, frame: SelectFrame, alias: str) -> str:
        """Check a new table alias and the references already made through it.

        Result columns come before FROM, so ``select t1.name from stadium as t1`` names
        ``t1.name`` before ``t1`` exists. When the alias is bound to a table, those
        references are checked against the table's columns.
        """
        alias = self._new_name(alias)
        if self.strict and any(source.key == alias for source in frame.scope.sources[:-1]):
            # SQLite accepts it, but no column can then be qualified by it unambiguously.
            raise Rejection(RejectReason.SYNTAX, f"alias {alias!r} is already bound in this "
                                                 "FROM clause")
        columns = frame.scope.sources[-1].columns
        if columns is None:
            return alias
        for qualifier, column in frame.scope.pending:
            if qualifier == alias and column != "*" and column not in columns:
                raise Rejection(RejectReason.UNKNOWN_COLUMN,
                                f"{alias!r} has no column {column!r}")
        return alias

    @staticmethod
    def _check_column_count(frame: SelectFrame, more: bool) -> None:
        """Reject a compound core whose result columns outnumber, or end short of, the first's."""
        if not frame.compound or frame.first_outputs is None:
            return
        outputs, first = frame.scope.outputs, frame.first_outputs
        if any(isinstance(output, tuple) for output in outputs + first):
            return  # a star stands for an unknown number of columns
        if len(outputs) > len(first) or (len(outputs) == len(first) and more) or (
                not more and len(outputs) < len(first)):
            raise Rejection(RejectReason.COLUMN_COUNT,
                            f"the cores of a compound query need {len(first)} result columns "
                            f"each")

    @staticmethod
    def _rename_last_source(frame: SelectFrame, alias: str) -> SelectFrame:
        sources = frame.scope.sources
        renamed = Source(alias, sources[-1].columns)
        scope = frame.scope._replace(sources=sources[:-1] + (renamed,))
        return frame._replace(state=S_JOIN, scope=scope)

    def _select_child_done(self, parent: SelectFrame, child) -> SelectFrame:
        if isinstance(child, ExprFrame) and parent.state == S_ITEM_END:
            scope = parent.scope
            return parent._replace(scope=scope._replace(outputs=scope.outputs + (child.simple,)))
        if isinstance(child, SelectFrame) and parent.state == S_SOURCE_ALIAS:
            # A subquery in FROM exposes its result columns under the alias that follows.
            columns = self._output_columns(child)
            scope = parent.scope
            scope = scope._replace(sources=scope.sources + (Source("", columns),))
            return parent._replace(scope=scope)
        return parent

    @staticmethod
    def _names(frame: SelectFrame) -> frozenset[str]:
        outputs = {name for name in frame.scope.outputs if isinstance(name, str)}
        return frame.compound_names | outputs | frame.scope.aliases

    def _output_columns(self, frame: SelectFrame) -> frozenset[str] | None:
        outputs = frame.first_outputs if frame.compound else frame.scope.outputs
        names = set()
        for output in outputs:
            if isinstance(output, str):
                names.add(output)
            elif isinstance(output, tuple):
                qualifier = output[1]
                sources = frame.scope.sources if not frame.compound else ()
                for source in sources:
                    if qualifier is None or source.key == qualifier:
                        if source.columns is None:
                            return None
                        names |= source.columns
                if frame.compound:
                    return None
        return frozenset(names)

    # ------------------------------------------------------------------ name resolution

    def _close_from(self, stack: Stack, frame: SelectFrame, next_state: int) -> Stack:
        """Mark the FROM clause of the top SELECT as complete and check its pending names."""
        pending = frame.scope.pending
        if not frame.scope.sources and ("*", None) in frame.scope.outputs:
            raise Rejection(RejectReason.SYNTAX, "'select *' needs a FROM clause")
        scope = frame.scope._replace(from_state=AFTER_FROM, pending=())
        stack = self._set_top(stack, frame._replace(state=next_state, scope=scope))
        for qualifier, column in pending:
            if column == "*":
                if not scope.has_qualifier(qualifier):
                    raise self._missing(stack, qualifier, column)
                continue
            outcome = scope.lookup(qualifier, column)
            if outcome == AMBIGUOUS:
                raise self._ambiguous(column)
            if outcome == MISSING and qualifier is not None and scope.has_qualifier(qualifier):
                raise Rejection(RejectReason.UNKNOWN_COLUMN, f"{qualifier!r} has no column {column!r}")
            if outcome == MISSING:
                stack = self._resolve(stack, qualifier, column, len(stack) - 2)
        return stack

    def _resolve(self, stack: Stack, qualifier: str | None, column: str, start: int) -> Stack:
        """Check a column reference against the scopes at and below stack position `start`.

        A scope whose FROM clause has not started yet keeps the reference as pending.
        """
        for position in range(start, -1, -1):
            frame = stack[position]
            if not isinstance(frame, SelectFrame):
                continue
            scope = frame.scope
            if scope.from_state != BEFORE_FROM:
                outcome = scope.lookup(qualifier, column)
                if outcome == FOUND:
                    return stack
                if outcome == AMBIGUOUS:
                    raise self._ambiguous(column)
                if qualifier is not None and scope.has_qualifier(qualifier):
                    raise Rejection(RejectReason.UNKNOWN_COLUMN,
                                    f"{qualifier!r} has no column {column!r}")
            if scope.from_state != AFTER_FROM:
                # SQLite resolves ON conditions against the whole FROM clause, so a table
                # joined later may still provide the column.
                self._check_plausible(qualifier, column)
                if (qualifier is not None and self.strict
                        and not scope.has_qualifier(qualifier)):
                    self._check_one_table(scope, qualifier, column)
                scope = scope._replace(pending=scope.pending + ((qualifier, column),))
                return stack[:position] + (frame._replace(scope=scope),) + stack[position + 1:]
        raise self._missing(stack, qualifier, column)

    def _check_plausible(self, qualifier: str | None, column: str) -> None:
        """Reject a reference no FROM clause could provide.

        The name must be a column of some table, whether qualified or not.
        NOTE: a result column of a subquery in FROM, named before that subquery (``select
        t.n from (select count(*) as n ...) as t``), is rejected unless some table has a
        column of that name. Spider's gold queries never need it, and a decoding model
        that may write any name there loops on made-up names.
        """
        if qualifier is not None and qualifier not in self.index.table_columns:
            self._new_name(qualifier, RejectReason.UNKNOWN_QUALIFIER)
        columns = self.index.all_columns
        if column not in columns:
            raise Rejection(RejectReason.UNKNOWN_COLUMN,
                            f"no column {column!r} in any table of {self.index.db_id!r}")

    def _check_one_table(self, scope: Scope, qualifier: str, column: str) -> None:
        """Reject a column named through a qualifier not yet bound when no single table has
        it together with the columns already named through that qualifier.

        NOTE: a subquery in FROM may combine columns of several tables; such a subquery
        bound to the qualifier later is rejected too. Spider's gold queries never need it.
        """
        columns = {name for owner, name in scope.pending if owner == qualifier and name != "*"}
        columns.add(column)
        if not any(columns <= names for names in self.index.table_columns.values()):
            raise Rejection(RejectReason.UNKNOWN_COLUMN,
                            f"no table has all of {', '.join(sorted(columns))}, the columns "
                            f"named through {qualifier!r}")

    def _missing(self, stack: Stack, qualifier: str | None, column: str) -> Rejection:
        if qualifier is not None:
            if not any(isinstance(f, SelectFrame) and f.scope.has_qualifier(qualifier)
                       for f in stack):
                return Rejection(RejectReason.UNKNOWN_QUALIFIER,
                                 f"{qualifier!r} is not a table or alias in FROM")
            return Rejection(RejectReason.UNKNOWN_COLUMN, f"{qualifier!r} has no column {column!r}")
        if column in self.index.all_columns:
            return Rejection(RejectReason.COLUMN_NOT_IN_FROM,
                             f"column {column!r} belongs to no table in FROM")
        return Rejection(RejectReason.UNKNOWN_COLUMN,
                         f"no column {column!r} in any table of {self.index.db_id!r}")

    @staticmethod
    def _ambiguous(column: str) -> Rejection:
        return Rejection(RejectReason.AMBIGUOUS_COLUMN,
                         f"column {column!r} is in more than one table of FROM; qualify it")

    def _could_start_operand(self, stack: Stack, name: str) -> bool:
        """Whether `name` can begin an operand: a function, a column or a qualifier."""
        if name in FUNCTIONS:
            return True
        for frame in reversed(stack):
            if not isinstance(frame, SelectFrame):
                continue
            scope = frame.scope
            if scope.from_state != AFTER_FROM:
                # Any name may become a table alias in the part of FROM still to come.
                return True
            if scope.lookup(None, name) != MISSING or scope.has_qualifier(name):
                return True
        return False

    # ------------------------------------------------------------------ expressions

    def _expr(self, stack: Stack, frame: ExprFrame, token: Token) -> tuple[Stack, bool]:
        kind, text = token
        state = frame.state

        if state == E_OPERAND:
            return self._operand(stack, frame, token)

        if state == E_NAME:
            name = frame.name
            if token == (SYMBOL, "("):
                if name not in FUNCTIONS:
                    raise Rejection(RejectReason.UNKNOWN_FUNCTION, f"no function {name!r}")
                if FUNCTIONS[name][2]:
                    self._check_aggregate_place(stack, name)
                stack = self._set_top(stack, self._after(frame, None))
                return stack + (ArgsFrame(name),), True
            if token == (SYMBOL, "."):
                return self._set_top(stack, frame._replace(state=E_DOT)), True
            stack = self._resolve(stack, None, name, len(stack) - 2)
            return self._set_top(stack, self._after(frame, name, (None, name))), False

        if state == E_DOT:
            qualifier = frame.name
            if kind == WORD and (text not in RESERVED or text in self.index.all_columns):
                stack = self._resolve(stack, qualifier, text, len(stack) - 2)
                return self._set_top(stack, self._after(frame, text, (qualifier, text))), True
            if token == (SYMBOL, "*") and frame.star_allowed and frame.operands == 0:
                stack = self._check_star_qualifier(stack, qualifier)
                return self._set_top(stack, self._after(frame, ("*", qualifier))), True
            raise self._unexpected(token, f"a column name after '{qualifier}.'")

        if state == E_AFTER:
            return self._after_operand(stack, frame, token)

        if state == E_NOT:
            if kind == WORD and text == "null":
                return self._set_top(stack, self._compare(frame, text)._replace(state=E_AFTER)), True
            if kind == WORD and text in ("in", "like", "glob", "between"):
                return self._set_top(stack, frame._replace(state=E_AFTER)), False
            raise self._unexpected(token, "'in', 'like', 'between' or 'null' after 'not'")

        if state == E_IS:
            if kind == WORD and text == "not":
                return self._set_top(stack, frame._replace(state=E_OPERAND)), True
            return self._set_top(stack, frame._replace(state=E_OPERAND)), False

        if state in (E_EXISTS, E_IN):
            if token == (SYMBOL, "("):
                child = SelectFrame(nested=True) if state == E_EXISTS else ListFrame()
                return self._set_top(stack, frame._replace(state=E_AFTER)) + (child,), True
            raise self._unexpected(token, "'('")

        raise AssertionError(f"unknown expression state {state}")

    @staticmethod
    def _after(frame: ExprFrame, simple, reference: tuple | None = None) -> ExprFrame:
        """Record a finished operand; `reference` is ``(qualifier, column)`` for a column."""
        side = reference if frame.side is FRESH_SIDE else None
        if side is not None:
            Grammar._check_not_itself(frame, side)
        simple = simple if frame.operands == 0 else None
        return frame._replace(state=E_AFTER, name="", operands=frame.operands + 1, simple=simple,
                              side=side)

    def _operand(self, stack: Stack, frame: ExprFrame, token: Token) -> tuple[Stack, bool]:
        kind, text = token
        if kind in (NUMBER, STRING):
            return self._set_top(stack, self._after(frame, None)), True
        if kind == SYMBOL:
            if text == "(":
                return self._set_top(stack, self._after(frame, None)) + (ParenFrame(),), True
            if text in ("-", "+"):
                return self._set_top(stack, frame._replace(operands=frame.operands + 1,
                                                           side=None)), True
            raise self._unexpected(token, "a value, column or '('")
        if kind == WORD:
            if text == "not":
                return self._set_top(stack, frame._replace(operands=frame.operands + 1,
                                                           side=None)), True
            if text == "exists":
                return self._set_top(stack, frame._replace(state=E_EXISTS,
                                                    operands=frame.operands + 1)), True
            if text in LITERAL_WORDS:
                return self._set_top(stack, self._after(frame, None)), True
            if text in RESERVED:
                raise self._unexpected(token, "a value, column or '('")
            if not self._could_start_operand(stack, text):
                if text in self.index.table_columns:
                    raise Rejection(RejectReason.UNKNOWN_QUALIFIER,
                                    f"table {text!r} is not in FROM")
                raise self._missing(stack, None, text)
            if text not in FUNCTIONS:
                self._check_operand_name(stack, frame, text)
            return self._set_top(stack, frame._replace(state=E_NAME, name=text)), True
        raise self._unexpected(token, "a value, column or '('")

    def _check_operand_name(self, stack: Stack, frame: ExprFrame, name: str) -> None:
        """Reject a bare word that can be neither a column nor a qualifier, and, when it can
        only be a column, one compared with itself."""
        if self._may_be_new_name(name) or name in self.index.table_columns:
            return  # it may still be a qualifier: ``t1`` of ``t1.name``
        if name not in self.index.all_columns:
            raise self._missing(stack, None, name)
        if frame.side is FRESH_SIDE:
            self._check_not_itself(frame, (None, name))

    @staticmethod
    def _check_not_itself(frame: ExprFrame, reference: tuple) -> None:
        """Reject `reference` as the right side's first operand when the left side is the
        same column, unless the frame allows that."""
        if reference == frame.against and not frame.self_comparison:
            qualifier, column = reference
            name = column if qualifier is None else f"{qualifier}.{column}"
            raise Rejection(RejectReason.SYNTAX, f"{name} is compared with itself")

    def _after_operand(self, stack: Stack, frame: ExprFrame, token: Token) -> tuple[Stack, bool]:
        kind, text = token
        if kind == SYMBOL and text in COMPARISON_AND_ARITHMETIC:
            if text in COMPARISONS:
                frame = self._compare(frame, text)
                frame = frame._replace(side=FRESH_SIDE, against=self._lone_column(frame),
                                       operator=text)
            else:
                frame = frame._replace(side=None)
            return self._set_top(stack, frame._replace(state=E_OPERAND, simple=None)), True
        if kind == WORD:
            if text == "and" and frame.open_betweens:
                frame = frame._replace(state=E_OPERAND, open_betweens=frame.open_betweens - 1)
                return self._set_top(stack, frame), True
            if text in ("and", "or"):
                frame = frame._replace(state=E_OPERAND, simple=None, compared=False,
                                       side=FRESH_SIDE, against=None, self_comparison=False,
                                       conditions=self._record_condition(frame))
                return self._set_top(stack, frame), True
            if text in ("like", "glob"):
                frame = self._compare(frame, text)
                frame = frame._replace(side=FRESH_SIDE, against=self._lone_column(frame))
                return self._set_top(stack, frame._replace(state=E_OPERAND, simple=None)), True
            if text in ("between", "not", "in", "is", "isnull", "notnull"):
                # These operators take no single column on their right.
                frame = frame._replace(side=None, against=None)
            if text == "between":
                frame = self._compare(frame, text)
                frame = frame._replace(state=E_OPERAND, open_betweens=frame.open_betweens + 1,
                                simple=None)
                return self._set_top(stack, frame), True
            if text == "not":
                # ``not`` here starts ``not in``, ``not like`` or ``not between``, which
                # check the chain themselves once their keyword comes.
                return self._set_top(stack, frame._replace(state=E_NOT, simple=None)), True
            if text == "in":
                frame = self._compare(frame, text)
                return self._set_top(stack, frame._replace(state=E_IN, simple=None)), True
            if text == "is":
                frame = self._compare(frame, text)
                return self._set_top(stack, frame._replace(state=E_IS, simple=None)), True
            if text in ("isnull", "notnull"):
                return self._set_top(stack, frame._replace(simple=None)), True
        if frame.open_betweens:
            raise self._unexpected(token, "'and' of 'between'")
        self._record_condition(frame)
        return self._pop(stack, frame), False

    @staticmethod
    def _record_condition(frame: ExprFrame) -> frozenset:
        """Add the comparison of two columns just finished to the chain's conditions;
        reject it when the chain already has it."""
        side = frame.side
        if frame.against is None or side is None or side is FRESH_SIDE:
            return frame.conditions
        operator = "=" if frame.operator == "==" else frame.operator
        if operator in ("=", "!=", "<>"):
            condition = (operator,) + tuple(sorted((frame.against, side), key=repr))
        else:
            condition = (operator, frame.against, side)
        if condition in frame.conditions:
            raise Rejection(RejectReason.SYNTAX, "the same comparison of two columns comes "
                                                 "twice in one condition")
        return frame.conditions | {condition}

    def _lone_column(self, frame: ExprFrame) -> tuple | None:
        """Return the column reference that is the whole left side of a comparison, or None.

        Without `strict`, it is always None, which turns off the checks of columns
        compared with themselves and of repeated comparisons.
        """
        side = frame.side
        if not self.strict or side is None or side is FRESH_SIDE:
            return None
        return side

    @staticmethod
    def _compare(frame: ExprFrame, operator: str) -> ExprFrame:
        """Mark a comparison; reject one chained onto another (``a = b = c``)."""
        if frame.compared:
            raise Rejection(RejectReason.SYNTAX,
                            f"{operator!r} compares the result of a comparison; join "
                            "comparisons with 'and' or 'or'")
        return frame._replace(compared=True)

    @staticmethod
    def _check_aggregate_place(stack: Stack, function: str) -> None:
        """Reject an aggregate call where SQLite rejects one: inside another aggregate's
        arguments, or in WHERE, ON or GROUP BY of its own query.

        NOTE: an aggregate inside a many-argument ``min``/``max`` (a scalar function
        there) is valid SQLite but rejected too.
        """
        for frame in reversed(stack):
            if isinstance(frame, ArgsFrame) and FUNCTIONS[frame.function][2]:
                raise Rejection(RejectReason.MISPLACED_AGGREGATE,
                                f"aggregate {function}() inside {frame.function}()")
            if isinstance(frame, SelectFrame):
                if frame.state in (S_AFTER_WHERE, S_JOIN, S_GROUP_ITEM_END):
                    raise Rejection(RejectReason.MISPLACED_AGGREGATE,
                                    f"aggregate {function}() in WHERE, ON or GROUP BY; "
                                    "use HAVING")
                return

    def _check_star_qualifier(self, stack: Stack, qualifier: str) -> Stack:
        """Check ``qualifier.*`` now or, before the FROM clause, when it closes."""
        select_position = next(i for i in range(len(stack) - 1, -1, -1)
                               if isinstance(stack[i], SelectFrame))
        frame = stack[select_position]
        if frame.scope.from_state != AFTER_FROM:
            scope = frame.scope._replace(pending=frame.scope.pending + ((qualifier, "*"),))
            return stack[:select_position] + (frame._replace(scope=scope),) + stack[select_position + 1:]
        if not frame.scope.has_qualifier(qualifier):
            raise self._missing(stack, qualifier, "*")
        return stack

    # ------------------------------------------------------------------ parentheses

    def _args(self, stack: Stack, frame: ArgsFrame, token: Token) -> tuple[Stack, bool]:
        kind, text = token
        minimum, maximum, aggregate = FUNCTIONS[frame.function]
        if frame.state == A_START:
            if token == (SYMBOL, ")") and minimum == 0:
                return self._pop(stack, frame), True
            if token == (SYMBOL, "*") and frame.function == "count":
                return self._set_top(stack, frame._replace(state=A_STAR)), True
            if kind == WORD and text == "distinct" and aggregate:
                return self._set_top(stack, frame._replace(state=A_ARGUMENT)), True
            frame = frame._replace(state=A_AFTER_ARGUMENT, count=1)
            return self._set_top(stack, frame) + (ExprFrame(),), False
        if frame.state == A_ARGUMENT:
            frame = frame._replace(state=A_AFTER_ARGUMENT, count=frame.count + 1)
            return self._set_top(stack, frame) + (ExprFrame(),), False
        if frame.state == A_STAR:
            if token == (SYMBOL, ")"):
                return self._pop(stack, frame), True
            raise self._unexpected(token, "')' after 'count(*'")
        if token == (SYMBOL, ",") and (maximum is None or frame.count < maximum):
            return self._set_top(stack, frame._replace(state=A_ARGUMENT)), True
        if token == (SYMBOL, ")") and frame.count >= minimum:
            return self._pop(stack, frame), True
        if token == (SYMBOL, ")"):
            raise Rejection(RejectReason.SYNTAX,
                            f"{frame.function}() needs at least {minimum} arguments")
        raise self._unexpected(token, f"',' or ')' in the arguments of {frame.function}()")

    def _paren(self, stack: Stack, frame: ParenFrame, token: Token) -> tuple[Stack, bool]:
        if frame.state == P_START:
            if token == (WORD, "select"):
                return self._set_top(stack, SelectFrame(nested=True)), False
            return self._set_top(stack, ParenFrame(P_CLOSE)) + (ExprFrame(),), False
        if token == (SYMBOL, ")"):
            return self._pop(stack, frame), True
        raise self._unexpected(token, "')'")

    def _list(self, stack: Stack, frame: ListFrame, token: Token) -> tuple[Stack, bool]:
        if frame.state == L_START:
            if token == (WORD, "select"):
                return self._set_top(stack, SelectFrame(nested=True)), False
            return self._set_top(stack, ListFrame(L_AFTER_ITEM)) + (ExprFrame(),), False
        if token == (SYMBOL, ","):
            return stack + (ExprFrame(),), True
        if token == (SYMBOL, ")"):
            return self._pop(stack, frame), True
        raise self._unexpected(token, "',' or ')' in the 'in' list")

    @staticmethod
    def _unexpected(token: Token, expected: str) -> Rejection:
        if token[0] == END:
            return Rejection(RejectReason.SYNTAX, f"the query ends where {expected} is expected")
        return Rejection(RejectReason.SYNTAX, f"unexpected {_token_text(token)}; expected {expected}")
