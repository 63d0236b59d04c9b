"""Decoding modes on Spider dev, side by side: EM, EX, failures to execute, time per question.

Modes: greedy, beam 4, beam 4 + schema constraints, and beam 4 + constraints +
execution-guided choice. The script loads the model once, then walks the examples in
chunks and decodes each chunk with every mode before moving on, rotating the order of
the modes, so that background load and warm caches hit all modes alike.

    python evaluation/bench_decoding.py --spider-dir DIR [--model PATH] [--limit N]
        [--threads 2] [--report evaluation/decoding.md] [--out-dir DIR]

Time per question covers preprocessing, generation and (for the execution-guided mode)
running the beams, as in `graphix predict`. A prediction fails to execute when it is
empty, or when SQLite raises an error or times out (5 s) on it. Examples whose database
file is missing are left out of that count and of EX.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "evaluation"))

from bench_ask import cpu_name  # noqa: E402

MODES = {
    "greedy": {"num_beams": 1},
    "beam 4": {"num_beams": 4},
    "beam 4 + constrained": {"num_beams": 4, "constrained": True},
    "beam 4 + constrained + execution-guided": {"num_beams": 4, "constrained": True,
                                                "execution_guided": True},
}
TIMEOUT_S = 5.0


def fails_to_execute(sql: str, database_file: Path) -> bool:
    """Return True when `sql` is empty or SQLite cannot run it within the time limit."""
    from graphix.errors import GraphixError
    from graphix.execution import ReadOnlyDatabase

    if not sql.strip():
        return True
    try:
        with ReadOnlyDatabase(database_file) as database:
            database.execute(sql, timeout_s=TIMEOUT_S, max_rows=1)
    except GraphixError:
        return True
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider-dir", help="Spider folder (default: $GRAPHIX_SPIDER_DIR)")
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--limit", type=int, help="use only the first N dev examples")
    parser.add_argument("--chunk", type=int, default=16,
                        help="examples decoded together per mode (default: 16)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--report", help="also write the table as markdown to this file")
    parser.add_argument("--out-dir", help="write one prediction file per mode here, in the "
                                          "sql<TAB>db_id format of `graphix evaluate`")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from graphix.api import Text2SQL
    from graphix.commands.predict import _split_examples
    from graphix.data import resolve_spider_dir
    from graphix.metrics import Evaluator

    spider = resolve_spider_dir(args.spider_dir)
    model = Text2SQL.from_pretrained(args.model)
    examples, schemas = _split_examples(spider, "dev")
    if args.limit:
        examples = examples[: args.limit]

    names = list(MODES)
    predictions = {name: [] for name in names}
    seconds = dict.fromkeys(names, 0.0)
    completed = dict.fromkeys(names, 0)
    for number, start in enumerate(range(0, len(examples), args.chunk)):
        chunk = examples[start:start + args.chunk]
        shift = number % len(names)
        for name in names[shift:] + names[:shift]:
            began = time.perf_counter()
            answers = model.ask_many([e.question for e in chunk],
                                     [schemas[e.db_id] for e in chunk],
                                     execute=False, batch_size=args.chunk, **MODES[name])
            seconds[name] += time.perf_counter() - began
            predictions[name].extend(" ".join(a.sql.split()) for a in answers)
            completed[name] += sum(a.completed for a in answers)
        print(f"\r{start + len(chunk)}/{len(examples)} examples", end="", file=sys.stderr,
              flush=True)
    print(file=sys.stderr)

    rows = []
    with Evaluator(spider / "database", spider / "tables.json", timeout_s=TIMEOUT_S) as evaluator:
        for name in names:
            em = ex = decided_em = decided_ex = failures = runnable = 0
            for index, (example, sql) in enumerate(zip(examples, predictions[name])):
                result = evaluator.evaluate(example.query, sql or "SELECT", example.db_id, index)
                if result.em is not None:
                    decided_em += 1
                    em += result.em
                if result.ex is not None:
                    decided_ex += 1
                    ex += result.ex
                database_file = schemas[example.db_id].path
                if database_file is not None:
                    runnable += 1
                    failures += fails_to_execute(sql, database_file)
            rows.append({"mode": name, "em": em / max(decided_em, 1),
                         "ex": ex / max(decided_ex, 1), "fail": failures / max(runnable, 1),
                         "failures": failures, "runnable": runnable,
                         "ms_per_question": 1000 * seconds[name] / len(examples),
                         "completed": completed[name]})
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name in names:
            slug = name.replace(" + ", "_").replace(" ", "")
            (out / f"{slug}.sql").write_text("".join(
                f"{sql or 'SELECT'}\t{e.db_id}\n" for sql, e in zip(predictions[name], examples)),
                encoding="utf-8")

    beam_ms = next(r["ms_per_question"] for r in rows if r["mode"] == "beam 4")
    header = ("| decoding | EM | EX | fails to execute | completed by grammar | ms per question "
              "| time vs beam 4 |\n|---|---:|---:|---:|---:|---:|---:|")
    lines = [header] + [
        f"| {r['mode']} | {100 * r['em']:.1f} | {100 * r['ex']:.1f} | "
        f"{100 * r['fail']:.1f} % ({r['failures']}/{r['runnable']}) | {r['completed']} | "
        f"{r['ms_per_question']:.0f} | {r['ms_per_question'] / beam_ms:.2f}x |"
        for r in rows]
    table = "\n".join(lines)
    print(table)
    print(json.dumps(rows))

    if args.report:
        command = "python evaluation/bench_decoding.py " + " ".join(sys.argv[1:])
        machine = (f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
                   f"{args.threads} torch threads")
        model_name = args.model or "the bundled model (graphix/resources/default_model)"
        Path(args.report).write_text(
            "# Decoding modes on Spider dev\n\n"
            f"Model: {model_name}. Examples: {len(examples)} dev examples in file order; EX "
            "and the failure count cover those whose database file exists.\n\n"
            f"Machine: {machine}.\n\nCommand: `{command}`\n\n"
            "All modes ran in one process, chunk by chunk in rotating order. Time per "
            "question includes preprocessing and, for the execution-guided mode, running "
            f"the beams. A prediction fails to execute when it is empty or SQLite raises an "
            f"error or passes the {TIMEOUT_S:.0f} s limit.\n\n" + table + "\n",
            encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
