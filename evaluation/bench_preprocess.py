"""Time preprocessing of Spider dev and train: value indexes, then linking to token ids.

Usage::

    python evaluation/bench_preprocess.py --spider-dir ../shared/spider \\
        [--tokenizer FOLDER] [--repeats 3] [--report evaluation/preprocess.md]

Value indexes are built into a fresh temporary cache first (cold), then loaded again
(warm). Preprocessing times include loading every index from that cache, linking,
graph construction, serialization and tokenization, in one process on one core. Without
--tokenizer a SentencePiece unigram vocabulary of 4,000 pieces is trained on Spider train
questions, schemas and SQL first (not timed).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graphix.data import load_spider_split  # noqa: E402
from graphix.preprocess import PreprocessConfig, build_value_indexes, preprocess_examples  # noqa: E402


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def train_default_tokenizer(spider_dir: Path, folder: Path):
    from graphix.serialization import normalize_sql
    from graphix.tokenizer import TokenizerTrainingConfig, train_tokenizer

    train = load_spider_split(spider_dir, "train")
    texts = [example.question for example in train.examples]
    texts += [normalize_sql(example.query) for example in train.examples]
    for schema in train.schemas.values():
        texts.append(" , ".join(column.name.lower() for column in schema.columns))
        texts.append(" | ".join(table.name.lower() for table in schema.tables))
    return train_tokenizer(texts, folder, TokenizerTrainingConfig(vocab_size=4000))


def timed(function, repeats: int) -> tuple[float, object]:
    """Return the median wall time of `repeats` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spider-dir", type=Path,
                        default=os.environ.get("GRAPHIX_SPIDER_DIR", "../shared/spider"))
    parser.add_argument("--tokenizer", default=None, help="fast tokenizer folder (default: train one)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is shown")
    parser.add_argument("--report", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench_preprocess_"))
    if args.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        tokenizer_name = args.tokenizer
    else:
        tokenizer = train_default_tokenizer(args.spider_dir, work / "tokenizer")
        tokenizer_name = "SentencePiece unigram, 4,000 pieces, trained on Spider train"
    config = PreprocessConfig(cache_dir=work / "value_index")
    load_before = os.getloadavg()

    rows = []
    splits = {name: load_spider_split(args.spider_dir, name) for name in ("dev", "train")}
    for name, data in splits.items():
        cold, _ = timed(lambda data=data: build_value_indexes(data, config, progress=False), 1)
        warm, _ = timed(lambda data=data: build_value_indexes(data, config, progress=False),
                        args.repeats)
        rows.append((f"{name}: value indexes, build (cold cache)", len(data.schemas), "databases", cold))
        rows.append((f"{name}: value indexes, load (warm cache)", len(data.schemas), "databases", warm))

    for name, data in splits.items():
        repeats = args.repeats if name == "dev" else 1
        text_only, records = timed(
            lambda data=data: preprocess_examples(data, None, config, progress=False), repeats)
        rows.append((f"{name}: preprocess, text and graph only", len(records), "examples", text_only))
        full, records = timed(
            lambda data=data: preprocess_examples(data, tokenizer, config, progress=False), repeats)
        cut = sum(1 for record in records if record["cut_items"])
        rows.append((f"{name}: preprocess with tokenizer ({cut} inputs cut to 512)", len(records),
                     "examples", full))

    load_after = os.getloadavg()
    lines = [
        f"- machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- load average (1 min) before/after: {load_before[0]:.2f} / {load_after[0]:.2f}",
        f"- tokenizer: {tokenizer_name}",
        f"- examples skipped for a missing database: dev {splits['dev'].skipped}, "
        f"train {splits['train'].skipped}",
        f"- median of {args.repeats} runs for dev rows and warm loads, 1 run otherwise",
        "",
        "| step | items | | seconds | ms per item |",
        "|---|---:|---|---:|---:|",
    ]
    for step, count, unit, seconds in rows:
        lines.append(f"| {step} | {count} | {unit} | {seconds:.2f} | {1000 * seconds / count:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.report:
        args.report.write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
