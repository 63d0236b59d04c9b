"""Spider's structured view of a SQL query, extracted from sqlglot's syntax tree.

Exact-set-match compares queries clause by clause on this view. A `Query` keeps what
the official Spider parser keeps (``taoyds/spider`` ``process_sql.py``): every column
as ``table.column`` in lower case, aggregates, arithmetic between two columns, the
conditions of ON / WHERE / HAVING as a flat list joined by AND / OR, GROUP BY, ORDER BY
with one direction for the whole clause, whether LIMIT is present, nested queries, and
INTERSECT / UNION / EXCEPT chained to the right (``a UNION b EXCEPT c`` is
``a UNION (b EXCEPT c)``).

The official parser reads only a subset of SQL, and every prediction outside it
scores 0 there. To agree with it example by example, `build_query` raises
`UnsupportedSQL` for the same constructs:

- column aliases (``count(*) AS n``), aliases of subqueries, table aliases without
  ``AS``, a table alias equal to a table name;
- ``INNER``/``LEFT``/``CROSS``/``NATURAL`` joins, comma joins, ``USING``, a subquery
  after ``JOIN``;
- functions other than max/min/count/sum/avg, literals and expressions other than
  ``col``, ``col OP col`` (OP one of ``+ - * /``) and ``agg(...)`` in SELECT;
- ``IS [NOT] NULL``, ``EXISTS``, ``NOT`` in front of a condition, parentheses around
  conditions, ``IN`` with more than one literal, ``UNION ALL``, ``WITH``, ``CASE``,
  ``CAST``, window functions;
- in SELECT, an aggregate followed by arithmetic (``max(a) - min(a)``; the
  parenthesized ``(max(a) - min(a))`` is accepted), and a leading aggregate on the
  left of arithmetic;
- text-level quirks checked by `graphix.metrics.text_rules`.

Differences from the official parser that remain: text after a complete first
statement is ignored there but must parse here, and ``LIMIT`` is kept only as present
or absent (as ``test-suite-sql-eval`` does; ``taoyds/spider`` keeps the number and
rejects a non-integer).

In default mode table aliases are resolved globally, as the official parser does: when
a subquery reuses an alias such as ``T1`` for another table, the last definition in
the text wins for every reference. `strict` mode scopes aliases per query block, lets a
correlated subquery see the aliases of enclosing blocks, and qualifies ``*`` with the
tables of its block.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.dialects.sqlite import SQLite
from sqlglot.errors import SqlglotError

from graphix.errors import SQLParseError
from graphix.metrics.text_rules import check_text, normalize_operators


class UnsupportedSQL(SQLParseError):
    """SQL outside the subset that the official Spider parser reads."""


class SpiderSQLite(SQLite):
    """SQLite as Spider writes it: double quotes delimit strings, not identifiers."""

    class Tokenizer(SQLite.Tokenizer):
        QUOTES = ["'", '"']
        IDENTIFIERS = ["`", ("[", "]")]


AGGREGATES = {exp.Max: "max", exp.Min: "min", exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg"}
ARITHMETIC = {exp.Sub: "-", exp.Add: "+", exp.Mul: "*", exp.Div: "/"}
COMPARISONS = {
    exp.EQ: "=", exp.NEQ: "!=", exp.GT: ">", exp.LT: "<", exp.GTE: ">=", exp.LTE: "<=",
    exp.Like: "like", exp.In: "in", exp.Between: "between",
}
SET_OPERATIONS = {exp.Intersect: "intersect", exp.Union: "union", exp.Except: "except"}

# Arguments of a sqlglot Select that the Spider subset can hold.
_SELECT_ARGS = {"expressions", "from_", "from", "joins", "where", "group", "having", "order",
                "limit", "offset", "distinct", "kind"}


# ---------------------------------------------------------------------------- structure


@dataclass(frozen=True)
class ColumnUnit:
    """A column, optionally under an aggregate: ``count(DISTINCT T1.name)``.

    `column` is ``table.column`` in lower case, or ``*``; strict mode writes ``*`` of a
    block over tables a and b as ``*:a,b``.
    """

    aggregate: str | None
    column: str
    distinct: bool | None = False


@dataclass(frozen=True)
class ValueUnit:
    """One column unit, or two joined by ``+ - * /``."""

    operator: str | None
    left: ColumnUnit
    right: ColumnUnit | None = None


@dataclass(frozen=True)
class Condition:
    """``[NOT] operand OP value [AND value2]``.

    A value is a number (float), a string, a `ColumnUnit`, a nested `Query`, or None
    once values are stripped for comparison.
    """

    negated: bool
    operator: str
    operand: ValueUnit
    value: object = None
    value2: object = None


@dataclass(frozen=True)
class ConditionList:
    """Conditions in text order with the ``and``/``or`` between neighbours."""

    conditions: tuple[Condition, ...] = ()
    connectors: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)


@dataclass(frozen=True)
class Query:
    """One query block, with the next block of a set operation attached to it."""

    select: tuple[tuple[str | None, ValueUnit], ...] = ()
    distinct: bool | None = False
    tables: tuple[object, ...] = ()
    """FROM sources in text order: a table name (lower case) or a nested Query."""
    join_conditions: ConditionList = ConditionList()
    where: ConditionList = ConditionList()
    group_by: tuple[ColumnUnit, ...] = ()
    having: ConditionList = ConditionList()
    order_direction: str | None = None
    """``asc`` or ``desc`` for the whole ORDER BY (the last one written wins), else None."""
    order_by: tuple[ValueUnit, ...] = ()
    has_limit: bool = False
    intersect: Query | None = None
    union: Query | None = None
    except_: Query | None = None

    def set_operations(self) -> tuple[tuple[str, Query | None], ...]:
        return (("intersect", self.intersect), ("except", self.except_), ("union", self.union))

    def condition_lists(self) -> tuple[ConditionList, ...]:
        return (self.join_conditions, self.where, self.having)


EMPTY_QUERY = Query()
"""What a prediction that cannot be parsed is compared as."""


# ---------------------------------------------------------------------------- schema view


@dataclass(frozen=True)
class SchemaView:
    """Table and column names (lower case) that column references are resolved against.

    `columns` maps each table to its columns in declaration order; `foreign_key_map`
    maps a ``table.column`` to the representative column of its foreign-key group.
    """

    columns: dict[str, tuple[str, ...]]
    foreign_key_map: dict[str, str] = field(default_factory=dict)

    def has_column(self, table: str, column: str) -> bool:
        return column in self._column_sets.get(table, ())

    @property
    def _column_sets(self) -> dict[str, frozenset[str]]:
        cached = self.__dict__.get("_sets")
        if cached is None:
            cached = {table: frozenset(cols) for table, cols in self.columns.items()}
            object.__setattr__(self, "_sets", cached)
        return cached


# ---------------------------------------------------------------------------- building


MAX_JOINS = 10
"""Most JOIN keywords `parse_sql` accepts. Spider's gold SQL has at most 8. sqlglot's
parse time doubles with each JOIN that has no ON (8 s for 15 of them), and a weak
model can write dozens, which would stall an evaluation."""

_JOIN = re.compile(r"\bjoin\b", re.IGNORECASE)


def check_join_count(sql: str) -> None:
    """Raise SQLParseError when `sql` has more JOIN keywords than sqlglot parses quickly."""
    joins = len(_JOIN.findall(sql))
    if joins > MAX_JOINS:
        raise SQLParseError(f"cannot parse SQL: {joins} JOINs, more than the {MAX_JOINS} "
                            "this parser accepts")


def parse_sql(sql: str) -> exp.Expression:
    """Parse the first statement of `sql` with sqlglot; raise SQLParseError if it fails."""
    check_join_count(sql)
    try:
        statements = [s for s in sqlglot.parse(sql, read=SpiderSQLite) if s is not None]
    except (SqlglotError, RecursionError, ValueError) as error:
        raise SQLParseError(f"cannot parse SQL: {_first_line(error)}") from None
    if not statements:
        raise SQLParseError("the SQL text is empty")
    return statements[0]


def build_query(sql: str, schema: SchemaView, *, strict: bool = False) -> Query:
    """Return the Spider structure of the first statement in `sql`.

    Raises UnsupportedSQL for SQL outside the official parser's subset and
    SQLParseError for SQL that sqlglot cannot parse.
    """
    sql = normalize_operators(sql)
    reason = check_text(sql)
    if reason is not None:
        raise UnsupportedSQL(reason)
    tree = parse_sql(sql)
    builder = _Builder(schema, strict, sql)
    if not strict:
        builder.global_aliases = _collect_global_aliases(tree, schema)
    return builder.query(tree, outer_scopes=(), top_level=True)


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _collect_global_aliases(tree: exp.Expression, schema: SchemaView) -> dict[str, str]:
    """Map every table alias to its table; the last definition in the text wins."""
    definitions = []
    for table in tree.find_all(exp.Table):
        alias = table.args.get("alias")
        if alias is None or not isinstance(alias.this, exp.Identifier):
            continue
        position = alias.this.meta.get("start", 0)
        definitions.append((position, alias.name.lower(), table.name.lower()))
    aliases = {}
    for _, alias, table in sorted(definitions):
        if alias in schema.columns:
            raise UnsupportedSQL(f"the alias {alias!r} is also a table name")
        aliases[alias] = table
    return aliases


@dataclass
class _Scope:
    """Tables of one query block: FROM order for unqualified columns, and its aliases."""

    tables: list[str]
    aliases: dict[str, str]


class _Builder:
    def __init__(self, schema: SchemaView, strict: bool, text: str):
        self.schema = schema
        self.strict = strict
        self.text = text
        self.global_aliases: dict[str, str] = {}

    # ------------------------------------------------------------------ blocks

    def query(self, node: exp.Expression, outer_scopes: tuple[_Scope, ...],
              top_level: bool = False) -> Query:
        if isinstance(node, exp.Subquery) and not node.args.get("alias"):
            return self.query(node.this, outer_scopes, top_level)
        if isinstance(node, tuple(SET_OPERATIONS)):
            return self._set_operation(node, outer_scopes, top_level)
        if isinstance(node, exp.Select):
            return self._select(node, outer_scopes, top_level)
        raise UnsupportedSQL(f"{node.key.upper()} statements are outside the Spider subset")

    def _set_operation(self, node: exp.Expression, outer_scopes, top_level: bool) -> Query:
        # sqlglot nests set operations to the left; Spider chains them to the right.
        operands: list[exp.Expression] = []
        operators: list[str] = []
        trailing = {key: node.args.get(key) for key in ("order", "limit", "offset")}
        current = node
        while isinstance(current, tuple(SET_OPERATIONS)):
            if current.args.get("distinct") is False:
                raise UnsupportedSQL("UNION ALL is outside the Spider subset")
            if current is not node and any(current.args.get(k) for k in trailing):
                raise UnsupportedSQL("ORDER BY or LIMIT inside a chain of set operations")
            operators.append(SET_OPERATIONS[type(current)])
            operands.append(current.expression)
            current = current.this
        operands.append(current)
        operands.reverse()
        operators.reverse()

        last = operands[-1]
        if any(trailing.values()):
            if not isinstance(last, exp.Select) or any(last.args.get(k) for k in trailing):
                raise UnsupportedSQL("ORDER BY or LIMIT after a parenthesized set operand")
            last = last.copy()
            for key, value in trailing.items():
                if value is not None:
                    last.set(key, value.copy())
        result = self.query(last, outer_scopes, top_level)
        for operand, operator in zip(reversed(operands[:-1]), reversed(operators)):
            block = self.query(operand, outer_scopes, top_level)
            key = "except_" if operator == "except" else operator
            result = _replace(block, **{key: result})
        return result

    def _select(self, node: exp.Select, outer_scopes, top_level: bool) -> Query:
        for key, value in node.args.items():
            if value and key not in _SELECT_ARGS:
                raise UnsupportedSQL(f"{key.upper()} is outside the Spider subset")
        if node.args.get("kind"):
            raise UnsupportedSQL("SELECT AS STRUCT/VALUE is outside the Spider subset")
        if node.args.get("offset") is not None and not top_level:
            raise UnsupportedSQL("OFFSET in a nested query is outside the Spider subset")
        distinct = node.args.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            raise UnsupportedSQL("DISTINCT ON is outside the Spider subset")

        scope = _Scope(tables=[], aliases={})
        tables, join_conditions = self._from(node, scope, outer_scopes)
        scopes = (scope,) + outer_scopes
        select = tuple(self._select_item(item, scopes) for item in node.expressions)
        if not select:
            raise UnsupportedSQL("SELECT without columns")
        where = self._clause_conditions(node.args.get("where"), scopes)
        group_by = self._group_by(node.args.get("group"), scopes)
        having = self._clause_conditions(node.args.get("having"), scopes)
        direction, order_by = self._order_by(node.args.get("order"), scopes, top_level)
        return Query(
            select=select,
            distinct=distinct is not None,
            tables=tables,
            join_conditions=join_conditions,
            where=where,
            group_by=group_by,
            having=having,
            order_direction=direction,
            order_by=order_by,
            has_limit=node.args.get("limit") is not None,
        )

    # ------------------------------------------------------------------ FROM

    def _from(self, node: exp.Select, scope: _Scope, outer_scopes) -> tuple[tuple, ConditionList]:
        source = node.args.get("from_") or node.args.get("from")
        if source is None:
            raise UnsupportedSQL("a query without FROM is outside the Spider subset")
        tables: list[object] = []
        first = source.this
        if isinstance(first, exp.Subquery):
            if first.args.get("alias") is not None:
                raise UnsupportedSQL("an alias on a subquery in FROM is outside the Spider subset")
            tables.append(self.query(first.this, outer_scopes))
        else:
            tables.append(self._table(first, scope))

        for join in node.args.get("joins") or ():
            if join.args.get("kind") or join.args.get("side") or join.args.get("method"):
                words = " ".join(
                    str(join.args[k]) for k in ("method", "side", "kind") if join.args.get(k)
                )
                raise UnsupportedSQL(f"{words} JOIN (or a comma join) is outside the Spider subset")
            if join.args.get("using"):
                raise UnsupportedSQL("JOIN ... USING is outside the Spider subset")
            if not isinstance(join.this, exp.Table):
                raise UnsupportedSQL("a subquery after JOIN is outside the Spider subset")
            tables.append(self._table(join.this, scope))

        # Columns in ON conditions resolve against all tables of the block.
        scopes = (scope,) + outer_scopes
        join_conditions = self._conditions(self._join_condition_nodes(node), scopes)
        return tuple(tables), join_conditions

    @staticmethod
    def _join_condition_nodes(node: exp.Select) -> list[exp.Expression]:
        conditions = []
        for join in node.args.get("joins") or ():
            on = join.args.get("on")
            if on is None or (isinstance(on, exp.Boolean) and on.this is True):
                continue
            conditions.append(on)
        return conditions

    def _table(self, node: exp.Expression, scope: _Scope) -> str:
        if not isinstance(node, exp.Table) or not isinstance(node.this, exp.Identifier):
            raise UnsupportedSQL(f"{node.sql()!r} in FROM is outside the Spider subset")
        if node.args.get("db") or node.args.get("catalog"):
            raise UnsupportedSQL(f"qualified table name {node.sql()!r}")
        if node.this.quoted:
            raise UnsupportedSQL(f"quoted table name {node.sql()!r}")
        name = node.name.lower()
        if name not in self.schema.columns:
            raise UnsupportedSQL(f"table {node.name!r} does not exist")
        alias = node.args.get("alias")
        if alias is not None:
            if alias.args.get("columns") or not isinstance(alias.this, exp.Identifier):
                raise UnsupportedSQL(f"table alias {alias.sql()!r} is outside the Spider subset")
            if alias.this.quoted:
                raise UnsupportedSQL(f"quoted table alias {alias.sql()!r}")
            if not self._written_with_as(node.this, alias.this):
                raise UnsupportedSQL(f"table alias {alias.name!r} needs AS in the Spider subset")
            alias_name = alias.name.lower()
            if alias_name in self.schema.columns:
                raise UnsupportedSQL(f"the alias {alias_name!r} is also a table name")
            scope.aliases[alias_name] = name
        scope.tables.append(name)
        return name

    def _written_with_as(self, table: exp.Identifier, alias: exp.Identifier) -> bool:
        end = table.meta.get("end")
        start = alias.meta.get("start")
        if end is None or start is None:
            return True
        return self.text[end + 1:start].strip().lower() == "as"

    # ------------------------------------------------------------------ columns

    def _column_name(self, node: exp.Expression, scopes) -> str:
        if isinstance(node, exp.Star):
            if self.strict:
                return "*:" + ",".join(sorted(set(scopes[0].tables)))
            return "*"
        if not isinstance(node, exp.Column) or not isinstance(node.this, exp.Identifier):
            raise UnsupportedSQL(f"{node.sql()!r} is not a column")
        if node.args.get("db") or node.args.get("catalog") or node.this.quoted:
            raise UnsupportedSQL(f"column reference {node.sql()!r} is outside the Spider subset")
        column = node.name.lower()
        qualifier = node.table.lower() if node.args.get("table") else None
        if isinstance(node.args.get("table"), exp.Identifier) and node.args["table"].quoted:
            raise UnsupportedSQL(f"quoted table qualifier in {node.sql()!r}")
        if qualifier is not None:
            table = self._resolve_qualifier(qualifier, scopes)
            if not self.schema.has_column(table, column):
                raise UnsupportedSQL(f"column {node.sql()!r} does not exist in table {table!r}")
            return f"{table}.{column}"
        search = scopes if self.strict else scopes[:1]
        for scope in search:
            for table in scope.tables:
                if self.schema.has_column(table, column):
                    return f"{table}.{column}"
        raise UnsupportedSQL(f"column {node.name!r} is not in any table of its FROM clause")

    def _resolve_qualifier(self, qualifier: str, scopes) -> str:
        if self.strict:
            for scope in scopes:
                if qualifier in scope.aliases:
                    return scope.aliases[qualifier]
        elif qualifier in self.global_aliases:
            return self.global_aliases[qualifier]
        if qualifier in self.schema.columns:
            return qualifier
        raise UnsupportedSQL(f"unknown table or alias {qualifier!r}")

    def _column_unit(self, node: exp.Expression, scopes, *, allow_aggregate: bool = True
                     ) -> ColumnUnit:
        aggregate = AGGREGATES.get(type(node))
        if aggregate is not None:
            if not allow_aggregate:
                raise UnsupportedSQL(f"aggregate {node.sql()!r} is not allowed here")
            argument = node.this
            if node.expressions:
                raise UnsupportedSQL(f"{node.sql()!r} has more than one argument")
            distinct = False
            if isinstance(argument, exp.Distinct):
                if len(argument.expressions) != 1:
                    raise UnsupportedSQL(f"{node.sql()!r} is outside the Spider subset")
                argument = argument.expressions[0]
                distinct = True
            return ColumnUnit(aggregate, self._column_name(argument, scopes), distinct)
        if isinstance(node, exp.Paren) and isinstance(node.this, (exp.Column, exp.Star)):
            return ColumnUnit(None, self._column_name(node.this, scopes))
        return ColumnUnit(None, self._column_name(node, scopes))

    def _value_unit(self, node: exp.Expression, scopes) -> ValueUnit:
        if isinstance(node, exp.Paren):
            node = node.this
        operator = ARITHMETIC.get(type(node))
        if operator is not None:
            return ValueUnit(operator, self._column_unit(node.this, scopes),
                             self._column_unit(node.expression, scopes))
        return ValueUnit(None, self._column_unit(node, scopes))

    def _select_item(self, node: exp.Expression, scopes) -> tuple[str | None, ValueUnit]:
        if isinstance(node, exp.Alias):
            raise UnsupportedSQL(f"column alias in {node.sql()!r} is outside the Spider subset")
        aggregate = AGGREGATES.get(type(node))
        if aggregate is not None:
            # The official parser reads a leading aggregate as applying to the whole item.
            if node.expressions:
                raise UnsupportedSQL(f"{node.sql()!r} has more than one argument")
            argument = node.this
            if isinstance(argument, exp.Distinct):
                if len(argument.expressions) != 1:
                    raise UnsupportedSQL(f"{node.sql()!r} is outside the Spider subset")
                unit = self._column_unit(argument.expressions[0], scopes)
                unit = ColumnUnit(unit.aggregate, unit.column, True)
                return aggregate, ValueUnit(None, unit)
            return aggregate, self._value_unit(argument, scopes)
        operator = ARITHMETIC.get(type(node))
        if operator is not None:
            if type(node.this) in AGGREGATES:
                raise UnsupportedSQL(
                    f"{node.sql()!r}: arithmetic after an aggregate needs parentheses "
                    "in the Spider subset"
                )
            return None, ValueUnit(operator, self._column_unit(node.this, scopes),
                                   self._column_unit(node.expression, scopes))
        if isinstance(node, exp.Paren):
            return None, self._value_unit(node, scopes)
        if isinstance(node, (exp.Column, exp.Star)):
            return None, ValueUnit(None, ColumnUnit(None, self._column_name(node, scopes)))
        raise UnsupportedSQL(f"SELECT item {node.sql()!r} is outside the Spider subset")

    # ------------------------------------------------------------------ conditions

    def _clause_conditions(self, clause: exp.Expression | None, scopes) -> ConditionList:
        return ConditionList() if clause is None else self._conditions([clause.this], scopes)

    def _conditions(self, roots: list[exp.Expression], scopes) -> ConditionList:
        conditions: list[Condition] = []
        connectors: list[str] = []
        for position, root in enumerate(roots):
            if position:
                connectors.append("and")
            nodes: list[exp.Expression] = []
            joins: list[str] = []
            _flatten(root, nodes, joins)
            conditions.append(self._condition(nodes[0], scopes))
            position = 1
            while position < len(nodes):
                # The official parser reads a column value as everything up to the next
                # AND, comma, bracket or clause keyword and keeps only the first column,
                # so ``a = T2.b OR c = 1`` loses ``OR c = 1``.
                if (not self.strict and joins[position - 1] == "or"
                        and _ends_with_column(conditions[-1])):
                    if not _is_simple_comparison(nodes[position]):
                        raise UnsupportedSQL("OR after a column value, followed by a complex "
                                             "condition, is outside the Spider subset")
                    position += 1
                    continue
                connectors.append(joins[position - 1])
                conditions.append(self._condition(nodes[position], scopes))
                position += 1
        return ConditionList(tuple(conditions), tuple(connectors))

    def _condition(self, node: exp.Expression, scopes) -> Condition:
        negated = False
        if isinstance(node, exp.Not):
            negated = True
            node = node.this
            if not isinstance(node, (exp.In, exp.Like, exp.Between)):
                raise UnsupportedSQL(f"NOT {node.sql()!r} is outside the Spider subset")
        if isinstance(node, exp.Paren):
            raise UnsupportedSQL("parentheses around conditions are outside the Spider subset")
        operator = COMPARISONS.get(type(node))
        if operator is None:
            raise UnsupportedSQL(f"condition {node.sql()!r} is outside the Spider subset")
        operand = self._value_unit(node.this, scopes)

        if isinstance(node, exp.Between):
            return Condition(negated, operator, operand,
                             self._value(node.args["low"], scopes),
                             self._value(node.args["high"], scopes))
        if isinstance(node, exp.In):
            if node.args.get("query") is not None:
                return Condition(negated, operator, operand, self._value(node.args["query"], scopes))
            if node.args.get("unnest") or node.args.get("field") or len(node.expressions) != 1:
                raise UnsupportedSQL(f"{node.sql()!r}: IN takes one value or a subquery "
                                     "in the Spider subset")
            return Condition(negated, operator, operand, self._value(node.expressions[0], scopes,
                                                                     in_parentheses=True))
        if isinstance(node, exp.Like) and node.args.get("escape") is not None:
            raise UnsupportedSQL("LIKE ... ESCAPE is outside the Spider subset")
        return Condition(negated, operator, operand, self._value(node.expression, scopes))

    def _value(self, node: exp.Expression, scopes, in_parentheses: bool = False) -> object:
        if isinstance(node, exp.Subquery):
            return self.query(node, scopes)
        if isinstance(node, exp.Paren):
            if in_parentheses:
                raise UnsupportedSQL(f"value {node.sql()!r} is outside the Spider subset")
            return self._value(node.this, scopes, in_parentheses=True)
        if isinstance(node, (exp.Select, *SET_OPERATIONS)):
            return self.query(node, scopes)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node.this
            try:
                return float(node.this)
            except ValueError:
                raise UnsupportedSQL(f"number {node.this!r} is outside the Spider subset") from None
        if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) \
                and not node.this.is_string:
            return -float(node.this.this)
        if in_parentheses:
            raise UnsupportedSQL(f"value {node.sql()!r} is outside the Spider subset")
        # The official parser reads the first column of an expression value and skips the
        # rest, so ``b + 1`` compares like ``b``.
        leftmost = node
        while type(leftmost) in ARITHMETIC:
            leftmost = leftmost.this
        if isinstance(leftmost, (exp.Column, exp.Star)):
            return ColumnUnit(None, self._column_name(leftmost, scopes))
        raise UnsupportedSQL(f"value {node.sql()!r} is outside the Spider subset")

    # ------------------------------------------------------------------ GROUP BY, ORDER BY

    def _group_by(self, clause: exp.Expression | None, scopes) -> tuple[ColumnUnit, ...]:
        if clause is None:
            return ()
        for key in ("grouping_sets", "cube", "rollup", "totals"):
            if clause.args.get(key):
                raise UnsupportedSQL(f"GROUP BY {key.upper()} is outside the Spider subset")
        return tuple(self._column_unit(item, scopes) for item in clause.expressions)

    def _order_by(self, clause: exp.Expression | None, scopes, top_level: bool
                  ) -> tuple[str | None, tuple[ValueUnit, ...]]:
        if clause is None:
            return None, ()
        direction = "asc"
        units = []
        for position, item in enumerate(clause.expressions):
            inner = item.this if isinstance(item, exp.Ordered) else item
            if (top_level and position == len(clause.expressions) - 1
                    and type(inner) in COMPARISONS and not self.strict):
                # ``ORDER BY count(*) >= 5``: the official parser stops after the first
                # operand and ignores the rest of the statement.
                units.append(self._value_unit(inner.this, scopes))
                break
            if isinstance(item, exp.Ordered):
                if item.args.get("desc"):
                    direction = "desc"
                elif item.args.get("desc") is False:
                    direction = "asc"
                item = item.this
            units.append(self._value_unit(item, scopes))
        return direction, tuple(units)


def _flatten(node: exp.Expression, nodes: list, joins: list) -> None:
    """List the conditions under an AND/OR tree in text order, with their connectors."""
    if isinstance(node, (exp.And, exp.Or)):
        _flatten(node.this, nodes, joins)
        joins.append("and" if isinstance(node, exp.And) else "or")
        _flatten(node.expression, nodes, joins)
    else:
        nodes.append(node)


def _ends_with_column(condition: Condition) -> bool:
    last = condition.value2 if condition.operator == "between" else condition.value
    return isinstance(last, ColumnUnit)


def _is_simple_comparison(node: exp.Expression) -> bool:
    """True for ``x OP y`` with plain columns or literals, which holds no stop token."""
    if isinstance(node, exp.Not):
        node = node.this
    if not isinstance(node, (exp.EQ, exp.NEQ, exp.GT, exp.LT, exp.GTE, exp.LTE, exp.Like)):
        return False
    plain = (exp.Column, exp.Literal, exp.Neg)
    return isinstance(node.this, plain) and isinstance(node.expression, plain)


def _replace(query: Query, **changes) -> Query:
    from dataclasses import replace

    return replace(query, **changes)
