"""Spider evaluation: exact-set-match, execution accuracy and hardness levels.

``evaluate_files(gold, pred, db_dir, tables)`` scores a prediction file and returns an
`EvaluationReport`; `Evaluator` scores single examples. Default mode agrees with the
official Spider evaluators; ``strict=True`` fixes their known faults and gives numbers
that are not comparable with published ones.
"""

from graphix.metrics.evaluate import (
    EvaluationReport,
    Evaluator,
    ExampleResult,
    evaluate_files,
    read_sql_file,
)
from graphix.metrics.exact_match import exact_match, mismatched_components, normalize
from graphix.metrics.execution_match import execution_match, prepare_for_execution, results_match
from graphix.metrics.hardness import HARDNESS_LEVELS, hardness
from graphix.metrics.sql_structure import Query, SchemaView, UnsupportedSQL, build_query

__all__ = [
    "HARDNESS_LEVELS",
    "EvaluationReport",
    "Evaluator",
    "ExampleResult",
    "Query",
    "SchemaView",
    "UnsupportedSQL",
    "build_query",
    "evaluate_files",
    "exact_match",
    "execution_match",
    "hardness",
    "mismatched_components",
    "normalize",
    "prepare_for_execution",
    "read_sql_file",
    "results_match",
]
