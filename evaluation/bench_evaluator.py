"""Time the Spider evaluator (EM + EX) on the 972 executable dev examples.

The official scripts, run on the same 972 examples of the DAIL-SQL GPT-4 prediction set
on a 2-core machine of the kind this project is developed on, take 1.26 s
(``taoyds/spider`` ``evaluation.py --etype all``) plus 3.47 s (``test-suite-sql-eval``
``evaluation.py --etype all``) = 4.73 s, whole process each. This script times:

- ``library``: a fresh Python process that imports ``graphix.metrics`` and calls
  ``evaluate_files`` (what the official numbers measure: start, import, EM, EX, exit);
- ``cli``: a fresh ``python -m graphix evaluate`` process, which also imports every
  other subcommand module;
- ``in-process``: ``evaluate_files`` alone, in this process, after a warm-up run.

Usage::

    python evaluation/bench_evaluator.py --spider ../shared/spider \\
        --reference ../shared/eval-reference --repeats 5
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OFFICIAL_SECONDS = 1.26 + 3.47
REPO_ROOT = Path(__file__).resolve().parent.parent


def write_inputs(spider: Path, reference: Path, folder: Path) -> tuple[Path, Path, int]:
    """Write the gold and prediction files without the wta_1 examples (its database is missing)."""
    gold_lines = (spider / "dev_gold.sql").read_text(encoding="utf-8").splitlines()
    pred_lines = (reference / "dailsql-gpt4.pred.sql").read_text(encoding="utf-8").splitlines()
    kept = [(g, p) for g, p in zip(gold_lines, pred_lines)
            if any((spider / "database" / g.rsplit("\t", 1)[1]).glob("*.sqlite"))]
    gold, pred = folder / "gold.sql", folder / "pred.sql"
    gold.write_text("".join(g + "\n" for g, _ in kept), encoding="utf-8")
    pred.write_text("".join(p + "\n" for _, p in kept), encoding="utf-8")
    return gold, pred, len(kept)


def time_process(command: list[str]) -> tuple[float, float]:
    """Return the wall-clock and CPU (user + system) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   cwd=REPO_ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def time_in_process(function) -> tuple[float, float]:
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start_wall, time.process_time() - start_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider", type=Path,
                        default=Path(os.environ.get("GRAPHIX_SPIDER_DIR",
                                                    REPO_ROOT.parent / "shared" / "spider")),
                        help="Spider folder with dev_gold.sql, tables.json and database/")
    parser.add_argument("--reference", type=Path,
                        default=REPO_ROOT.parent / "shared" / "eval-reference",
                        help="folder with dailsql-gpt4.pred.sql")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per mode (default 5)")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO_ROOT))
    from graphix.metrics import evaluate_files

    with tempfile.TemporaryDirectory() as tmp:
        gold, pred, count = write_inputs(args.spider, args.reference, Path(tmp))
        db_dir, tables = args.spider / "database", args.spider / "tables.json"
        library = [sys.executable, "-c",
                   "import sys; from graphix.metrics import evaluate_files; "
                   "evaluate_files(*sys.argv[1:5])", str(gold), str(pred), str(db_dir), str(tables)]
        cli = [sys.executable, "-m", "graphix", "evaluate", "--gold", str(gold), "--pred",
               str(pred), "--db-dir", str(db_dir), "--tables", str(tables)]

        report = evaluate_files(gold, pred, db_dir, tables)  # warm-up, and the scores
        load = os.getloadavg()
        timings = {"library (whole process)": [], "cli (whole process)": [], "in-process": []}
        for _ in range(args.repeats):
            timings["library (whole process)"].append(time_process(library))
            timings["cli (whole process)"].append(time_process(cli))
            timings["in-process"].append(
                time_in_process(lambda: evaluate_files(gold, pred, db_dir, tables)))

    summary = report.summary()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, SQLite {__import__('sqlite3').sqlite_version}")
    print(f"load average before the runs: {load[0]:.2f}")
    print(f"examples: {count}; EM {summary['exact_match']:.3f}, "
          f"EX {summary['execution_accuracy']:.3f}; {args.repeats} runs per row\n")
    print("| what is timed | wall s (median) | wall s (min) | CPU s (median) "
          "| examples/s (min wall) | speed-up vs 4.73 s (min wall) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values in timings.items():
        walls = [wall for wall, _ in values]
        cpus = [cpu for _, cpu in values]
        best = min(walls)
        print(f"| {name} | {statistics.median(walls):.2f} | {best:.2f} | "
              f"{statistics.median(cpus):.2f} | {count / best:.0f} | "
              f"{OFFICIAL_SECONDS / best:.1f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
