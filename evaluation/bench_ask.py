"""Latency of `Text2SQL.ask` on the demo database, warm, for each decoding mode.

Loads the model once, asks every demo question once to warm the caches (schema, value
index, tokenizer, torch kernels), then times each question `--repeats` times per mode,
all modes interleaved question by question so that background load hits them alike.
Greedy search with schema constraints is what `graphix ask` does by default. The output
length column counts the tokens of the returned SQL, because decoding time grows with it.

    python evaluation/bench_ask.py [--model PATH] [--threads 2] [--repeats 3] [--report FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"

MODES = {
    "greedy": {"num_beams": 1},
    "greedy + constrained (ask's default)": {"num_beams": 1, "constrained": True},
    "beam 4": {"num_beams": 4},
    "beam 4 + constrained": {"num_beams": 4, "constrained": True},
}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default: 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per question and mode")
    parser.add_argument("--report", help="also write the table as markdown to this file")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from graphix.api import Text2SQL

    database = DEMO / "bookshop.sqlite"
    questions = [item["question"] for item in json.loads((DEMO / "questions.json").read_text())]
    load_start = time.perf_counter()
    model = Text2SQL.from_pretrained(args.model)
    load_s = time.perf_counter() - load_start
    for question in questions:
        model.ask(question, database)

    times = {mode: [] for mode in MODES}
    parts = {mode: {"preprocess": [], "generate": [], "execute": []} for mode in MODES}
    lengths = {mode: [] for mode in MODES}
    for question in questions:
        for _ in range(args.repeats):
            for mode, options in MODES.items():
                start = time.perf_counter()
                answer = model.ask(question, database, **options)
                times[mode].append((time.perf_counter() - start) * 1000)
                lengths[mode].append(len(model.tokenizer(answer.sql).input_ids))
                for key in parts[mode]:
                    parts[mode][key].append(answer.timings_ms[key])

    load = os.getloadavg()[0]
    lines = [
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, torch threads {args.threads}, "
        f"Python {platform.python_version()}, torch {torch.__version__}",
        f"- model: {model.model_dir}",
        f"- model load: {load_s:.2f} s; load average (1 min) at the end: {load:.2f}",
        f"- {len(questions)} demo questions x {args.repeats} runs per mode, warm, executed",
        "",
        "| mode | p50 ms | p90 ms | mean ms | preprocess ms (median) | generate ms (median) "
        "| execute ms (median) | output tokens (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for mode in MODES:
        values = times[mode]
        medians = [statistics.median(parts[mode][key]) for key in ("preprocess", "generate",
                                                                   "execute")]
        lines.append(f"| {mode} | {percentile(values, 0.5):.1f} | {percentile(values, 0.9):.1f} "
                     f"| {statistics.mean(values):.1f} | " + " | ".join(f"{m:.1f}" for m in medians)
                     + f" | {statistics.median(lengths[mode]):.0f} |")
    table = "\n".join(lines)
    print(table)
    if args.report:
        Path(args.report).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
