"""Exact-set-match between a predicted and a gold `Query`.

Default mode decides as the official Spider evaluator (``taoyds/spider`` and
``test-suite-sql-eval`` ``evaluation.py``, which agree on it):

1. Values are dropped: every condition value becomes None unless it is a subquery.
2. DISTINCT is dropped, and a column of a table in the top FROM clause is replaced by
   the first column (in ``tables.json`` order) of its foreign-key group, so ``T2.id`` and
   ``T1.singer_id`` compare equal when one references the other. Steps 1 and 2 also
   cover the INTERSECT / UNION / EXCEPT parts, using the tables of the top FROM clause.
   Subqueries inside conditions keep their DISTINCT and their original columns, and a
   subquery in FROM keeps its values too.
3. Every component must match: SELECT items and WHERE conditions as multisets, GROUP BY
   columns as a multiset of column names without table, GROUP BY with HAVING as ordered
   lists, ORDER BY items with the direction and the presence of LIMIT, the set of
   AND/OR in WHERE, each set operation recursively, the set of keywords, and the FROM
   sources as a multiset. JOIN ON conditions are not compared.

Strict mode (``strict=True``) fixes the official faults, so its numbers are not
comparable with published Spider results: it compares JOIN ON conditions, keeps the
tables under ``count(*)`` (see `graphix.metrics.sql_structure`), never merges columns
through foreign keys (two columns count as one only when an ON condition of their block
equates them), and normalizes nested queries like top-level ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from graphix.metrics.sql_structure import (
    ColumnUnit,
    Condition,
    ConditionList,
    Query,
    ValueUnit,
)


def build_foreign_key_map(columns: list[str], pairs: list[tuple[int, int]]) -> dict[str, str]:
    """Map each foreign-key column to its group's representative column.

    `columns` lists ``table.column`` names by Spider index and `pairs` the foreign keys
    as index pairs. Groups are formed as the official evaluator forms them: a pair joins
    the first group that holds either of its columns, else starts a new one (so chains
    can stay split), and a group's representative is its smallest index.

    >>> build_foreign_key_map(["*", "a.id", "b.a_id", "c.a_id"], [(2, 1), (3, 1)])
    {'a.id': 'a.id', 'b.a_id': 'a.id', 'c.a_id': 'a.id'}
    """
    groups: list[set[int]] = []
    for first, second in pairs:
        group = next((g for g in groups if first in g or second in g), None)
        if group is None:
            group = set()
            groups.append(group)
        group.update((first, second))
    mapping = {}
    for group in groups:
        representative = columns[min(group)]
        for index in sorted(group):
            mapping[columns[index]] = representative
    return mapping


# ---------------------------------------------------------------------------- normalizing


def normalize(query: Query, foreign_key_map: dict[str, str], *, strict: bool = False) -> Query:
    """Return `query` in the form that exact-set-match compares."""
    if strict:
        return _normalize_strict(query)
    query = _strip_values(query)
    tables = {table for table in query.tables if isinstance(table, str)}
    column_map = {column: target for column, target in foreign_key_map.items()
                  if column.split(".", 1)[0] in tables}
    return _map_columns(query, column_map)


def _strip_value(value: object, keep_columns: bool = False) -> object:
    if isinstance(value, Query):
        return _strip_values(value, keep_columns)
    if keep_columns and isinstance(value, ColumnUnit):
        return value
    return None


def _strip_conditions(conditions: ConditionList, keep_columns: bool) -> ConditionList:
    stripped = tuple(
        replace(c, value=_strip_value(c.value, keep_columns),
                value2=_strip_value(c.value2, keep_columns))
        for c in conditions.conditions
    )
    return ConditionList(stripped, conditions.connectors)


def _strip_values(query: Query, keep_columns: bool = False) -> Query:
    """Drop condition values, recursing into subquery values and set operations."""
    return replace(
        query,
        join_conditions=_strip_conditions(query.join_conditions, keep_columns),
        where=_strip_conditions(query.where, keep_columns),
        having=_strip_conditions(query.having, keep_columns),
        **{key: None if part is None else _strip_values(part, keep_columns)
           for key, part in _set_operation_fields(query)},
    )


def _set_operation_fields(query: Query):
    return (("intersect", query.intersect), ("except_", query.except_), ("union", query.union))


def _map_column_unit(unit: ColumnUnit | None, column_map: dict[str, str]) -> ColumnUnit | None:
    if unit is None:
        return None
    return ColumnUnit(unit.aggregate, column_map.get(unit.column, unit.column), None)


def _map_value_unit(unit: ValueUnit, column_map: dict[str, str]) -> ValueUnit:
    return ValueUnit(unit.operator, _map_column_unit(unit.left, column_map),
                     _map_column_unit(unit.right, column_map))


def _map_conditions(conditions: ConditionList, column_map: dict[str, str],
                    map_values: bool = False) -> ConditionList:
    mapped = []
    for condition in conditions.conditions:
        values = {}
        if map_values:
            values = {key: _map_column_unit(v, column_map) if isinstance(v, ColumnUnit) else v
                      for key, v in (("value", condition.value), ("value2", condition.value2))}
        mapped.append(replace(condition, operand=_map_value_unit(condition.operand, column_map),
                              **values))
    return ConditionList(tuple(mapped), conditions.connectors)


def _map_columns(query: Query, column_map: dict[str, str], map_values: bool = False) -> Query:
    """Apply `column_map` and drop DISTINCT in this block and its set operations."""
    return replace(
        query,
        select=tuple((agg, _map_value_unit(unit, column_map)) for agg, unit in query.select),
        distinct=None,
        join_conditions=_map_conditions(query.join_conditions, column_map, map_values),
        where=_map_conditions(query.where, column_map, map_values),
        group_by=tuple(_map_column_unit(unit, column_map) for unit in query.group_by),
        having=_map_conditions(query.having, column_map, map_values),
        order_by=tuple(_map_value_unit(unit, column_map) for unit in query.order_by),
        **{key: None if part is None else _map_columns(part, column_map, map_values)
           for key, part in _set_operation_fields(query)},
    )


def _join_equivalences(query: Query) -> dict[str, str]:
    """Map each column equated by an ON condition to the smallest column of its class."""
    parent: dict[str, str] = {}

    def find(column: str) -> str:
        while parent.get(column, column) != column:
            column = parent[column]
        return column

    for condition in query.join_conditions.conditions:
        operand, value = condition.operand, condition.value
        if (condition.operator == "=" and not condition.negated and operand.right is None
                and operand.left.aggregate is None and isinstance(value, ColumnUnit)
                and value.aggregate is None):
            first, second = sorted((find(operand.left.column), find(value.column)))
            parent[second] = first
    return {column: find(column) for column in parent}


def _normalize_strict(query: Query) -> Query:
    def normalize_value(value: object) -> object:
        return _normalize_strict(value) if isinstance(value, Query) else value

    def normalize_conditions(conditions: ConditionList) -> ConditionList:
        return ConditionList(
            tuple(replace(c, value=normalize_value(c.value), value2=normalize_value(c.value2))
                  for c in conditions.conditions),
            conditions.connectors,
        )

    query = _strip_values(query, keep_columns=True)
    query = replace(
        query,
        tables=tuple(normalize_value(t) for t in query.tables),
        join_conditions=normalize_conditions(query.join_conditions),
        where=normalize_conditions(query.where),
        having=normalize_conditions(query.having),
        **{key: None if part is None else _normalize_strict(part)
           for key, part in _set_operation_fields(query)},
    )
    block = replace(query, intersect=None, except_=None, union=None)
    block = _map_columns(block, _join_equivalences(block), map_values=True)
    # A block's ON conditions and FROM sources are compared as multisets, so a fixed
    # order makes nested blocks that differ only in that order equal as values.
    join_conditions = ConditionList(
        tuple(sorted(block.join_conditions.conditions, key=repr)),
        tuple(sorted(block.join_conditions.connectors)),
    )
    return replace(block, join_conditions=join_conditions,
                   tables=tuple(sorted(block.tables, key=repr)),
                   intersect=query.intersect, except_=query.except_, union=query.union)


# ---------------------------------------------------------------------------- comparing


def _keywords(query: Query) -> set[str]:
    keywords = set()
    for name, present in (("where", query.where), ("group", query.group_by),
                          ("having", query.having), ("limit", query.has_limit)):
        if present:
            keywords.add(name)
    if query.order_by:
        keywords.update(("order", query.order_direction))
    for name, part in query.set_operations():
        if part is not None:
            keywords.add(name)
    for conditions in query.condition_lists():
        if "or" in conditions.connectors:
            keywords.add("or")
        for condition in conditions.conditions:
            if condition.negated:
                keywords.add("not")
            if condition.operator in ("in", "like"):
                keywords.add(condition.operator)
    return keywords


def _column_name(column: str) -> str:
    return column.split(".", 1)[1] if "." in column else column


def mismatched_components(pred: Query, gold: Query, *, strict: bool = False) -> list[str]:
    """Return the components on which two normalized queries differ; empty means a match."""
    failures = []
    if Counter(pred.select) != Counter(gold.select):
        failures.append("select")
    if Counter(pred.where.conditions) != Counter(gold.where.conditions):
        failures.append("where")
    if Counter(_column_name(u.column) for u in pred.group_by) != \
            Counter(_column_name(u.column) for u in gold.group_by):
        failures.append("group by")
    if bool(pred.group_by) != bool(gold.group_by) or (gold.group_by and (
            [u.column for u in pred.group_by] != [u.column for u in gold.group_by]
            or pred.having != gold.having)):
        failures.append("group by + having")
    if bool(pred.order_by) != bool(gold.order_by) or (gold.order_by and (
            (pred.order_direction, pred.order_by) != (gold.order_direction, gold.order_by)
            or pred.has_limit != gold.has_limit)):
        failures.append("order by")
    if set(pred.where.connectors) != set(gold.where.connectors):
        failures.append("and/or")
    for (name, pred_part), (_, gold_part) in zip(pred.set_operations(), gold.set_operations()):
        if (pred_part is None) != (gold_part is None) or (
                gold_part is not None and mismatched_components(pred_part, gold_part,
                                                                strict=strict)):
            failures.append(name)
    if _keywords(pred) != _keywords(gold):
        failures.append("keywords")
    if strict and Counter(pred.join_conditions.conditions) != \
            Counter(gold.join_conditions.conditions):
        failures.append("join conditions")
    if gold.tables and Counter(pred.tables) != Counter(gold.tables):
        failures.append("from")
    return failures


def exact_match(pred: Query, gold: Query, foreign_key_map: dict[str, str], *,
                strict: bool = False) -> bool:
    """Return True when `pred` exactly set-matches `gold` (both as built, not normalized)."""
    return not mismatched_components(normalize(pred, foreign_key_map, strict=strict),
                                     normalize(gold, foreign_key_map, strict=strict),
                                     strict=strict)


__all__ = [
    "Condition",
    "build_foreign_key_map",
    "exact_match",
    "mismatched_components",
    "normalize",
]
