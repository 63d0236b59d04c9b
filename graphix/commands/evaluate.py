"""``graphix evaluate``: Spider exact-set-match and execution accuracy of a prediction file."""

from __future__ import annotations

import argparse
import json

HELP = "score predicted SQL against gold SQL: Spider exact-set-match (EM) and execution (EX)"

_DESCRIPTION = """\
Score predicted SQL against gold SQL, example by example, the way the official Spider
evaluators do: exact-set-match (EM) as taoyds/spider computes it, execution accuracy
(EX) as taoyds/test-suite-sql-eval computes it, and the four hardness levels.

GOLD and PRED hold one example per line as 'sql<TAB>db_id'; a prediction line may hold
only the SQL. A prediction that does not parse, fails or runs past --timeout is wrong.
An example whose database is missing gets no EX (null in --per-example output) and is
left out of the EX total. In predictions the lowercase word 'value' (a placeholder some
models write for literals) is replaced by 1 before parsing and execution.

--strict fixes known faults of the official EM (it compares JOIN ON conditions and the
tables under count(*), scopes table aliases per query block, and never merges columns
through foreign keys). Strict numbers are NOT comparable with published Spider results.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = _DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--gold", required=True, metavar="GOLD",
                        help="gold SQL file, one 'sql<TAB>db_id' per line")
    parser.add_argument("--pred", required=True, metavar="PRED",
                        help="predicted SQL file, one line per gold line ('sql' or 'sql<TAB>db_id')")
    parser.add_argument("--db-dir", required=True, metavar="DIR",
                        help="folder with one subfolder per database holding its .sqlite "
                             "file(s); several files in one subfolder form a test suite, and a "
                             "prediction must match on all of them")
    parser.add_argument("--tables", metavar="TABLES.json",
                        help="Spider tables.json, the source of the foreign keys used by EM "
                             "(default: the foreign keys declared in each SQLite file)")
    parser.add_argument("--strict", action="store_true",
                        help="strict EM (see above); not comparable with published numbers")
    parser.add_argument("--keep-distinct", action="store_true",
                        help="keep DISTINCT when executing (the official default removes it)")
    parser.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="time limit per query in seconds (default: 30)")
    parser.add_argument("--per-example", metavar="OUT.jsonl",
                        help="write one JSON line per example: index, db_id, hardness, em, ex, "
                             "error, em_differences")
    parser.add_argument("--json", action="store_true",
                        help="print the summary as JSON (count, exact_match, "
                             "execution_accuracy, by_hardness) instead of a table")


def run(args: argparse.Namespace) -> int:
    import math
    from pathlib import Path

    from graphix.errors import InputError
    from graphix.metrics.evaluate import evaluate_files
    from graphix.metrics.execution_match import DEFAULT_TIMEOUT_S

    timeout_s = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise InputError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    if not Path(args.db_dir).is_dir():
        raise InputError(f"--db-dir {args.db_dir} is not a folder; pass the folder that contains "
                         "one subfolder per database")
    report = evaluate_files(args.gold, args.pred, args.db_dir, args.tables, strict=args.strict,
                            keep_distinct=args.keep_distinct, timeout_s=timeout_s)
    if args.per_example:
        try:
            report.write_jsonl(args.per_example)
        except OSError as error:
            raise InputError(f"cannot write --per-example {args.per_example}: "
                             f"{error.strerror}") from None
    if args.json:
        print(json.dumps(report.summary(), indent=2))
    else:
        print(report.format_table())
    return 0
