"""Spider's hardness levels: easy, medium, hard, extra.

The level comes from three counts over the top query block of the gold SQL, as in the
official evaluator (``taoyds/spider`` ``evaluation.py``, ``eval_hardness``):

- clause components: WHERE, GROUP BY, ORDER BY, LIMIT, one per joined source, one per
  ``OR``, one per ``LIKE``;
- nested components: subqueries used as condition values, and INTERSECT / UNION / EXCEPT;
- other components: more than one aggregate, more than one SELECT item, more than one
  WHERE condition, more than one GROUP BY column.

The official aggregate count has two quirks that are kept so the levels agree with
published ones: a negated WHERE or HAVING condition (``NOT IN``, ``NOT LIKE``) counts
as an aggregate, and so does every AND/OR between HAVING conditions.
"""

from __future__ import annotations

from graphix.metrics.sql_structure import Query

HARDNESS_LEVELS = ("easy", "medium", "hard", "extra")


def count_clause_components(query: Query) -> int:
    count = sum((bool(query.where), bool(query.group_by), bool(query.order_by), query.has_limit))
    count += max(len(query.tables) - 1, 0)
    for conditions in query.condition_lists():
        count += conditions.connectors.count("or")
        count += sum(condition.operator == "like" for condition in conditions.conditions)
    return count


def count_nested_components(query: Query) -> int:
    count = sum(part is not None for _, part in query.set_operations())
    for conditions in query.condition_lists():
        for condition in conditions.conditions:
            count += isinstance(condition.value, Query) + isinstance(condition.value2, Query)
    return count


def count_other_components(query: Query) -> int:
    aggregates = sum(aggregate is not None for aggregate, _ in query.select)
    aggregates += sum(condition.negated for condition in query.where.conditions)
    aggregates += sum(unit.aggregate is not None for unit in query.group_by)
    for unit in query.order_by:
        aggregates += unit.left.aggregate is not None
        aggregates += unit.right is not None and unit.right.aggregate is not None
    aggregates += sum(condition.negated for condition in query.having.conditions)
    aggregates += len(query.having.connectors)
    return sum((
        aggregates > 1,
        len(query.select) > 1,
        len(query.where.conditions) > 1,
        len(query.group_by) > 1,
    ))


def hardness(query: Query) -> str:
    """Return the Spider hardness level of a gold query.

    >>> from graphix.metrics.sql_structure import ColumnUnit, ValueUnit
    >>> hardness(Query(select=((None, ValueUnit(None, ColumnUnit(None, "t.a"))),), tables=("t",)))
    'easy'
    """
    clauses = count_clause_components(query)
    nested = count_nested_components(query)
    others = count_other_components(query)
    if clauses <= 1 and others == 0 and nested == 0:
        return "easy"
    if (others <= 2 and clauses <= 1 and nested == 0) or \
            (clauses <= 2 and others < 2 and nested == 0):
        return "medium"
    if (others > 2 and clauses <= 2 and nested == 0) or \
            (2 < clauses <= 3 and others <= 2 and nested == 0) or \
            (clauses <= 1 and others == 0 and nested <= 1):
        return "hard"
    return "extra"
