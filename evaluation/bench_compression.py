"""Layer drop and attention sharing on one model, measured side by side in one run.

For each setting (the uncompressed baseline first) the script compresses a copy of the model,
trains it briefly (cross-entropy after a drop, distillation from the baseline after sharing),
saves it, loads the saved folder through ``Text2SQL.from_pretrained`` and measures:

- what was removed or shared, and the parameter count;
- encoder latency: one encoder pass per demo question (batch 1), median in ms;
- end-to-end ``ask`` latency on the demo database (greedy, executed), median in ms, warm,
  and the mean number of tokens generated, because a model that stops later takes longer;
- fixed-length decoding: greedy generation of exactly ``--decode-tokens`` tokens per demo
  question, median in ms, which compares model speed at equal output length;
- training-step time: forward and backward on a fixed batch of Spider train examples;
- Spider dev exact match (EM) and execution accuracy (EX), greedy, on ``--examples`` examples.

Latencies are measured in rounds that visit every setting in turn, so background load hits all
settings alike; the report gives medians over rounds and ratios to the baseline.

    python evaluation/bench_compression.py --spider-dir ../shared/spider \\
        --report evaluation/compression.md             # the bundled model, all of dev
    python evaluation/bench_compression.py --model runs/x/model --examples 200 \\
        --settings drop:attention:decoder:2 share:0.9
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEMO = REPO / "data" / "demo"

# NOTE: the share thresholds suit attention maps that are far apart. Head-by-head cosine
# similarities between layers of a partly trained bundled-shape model (4+4 layers, 4 heads)
# were 0.01 to 0.19 (`graphix compress analyze`, 16 Spider train examples), so thresholds near
# 0.9 would share nothing. Check them with `graphix compress analyze` on the model first.
DEFAULT_SETTINGS = [
    "drop:attention:decoder:1",
    "drop:attention:decoder:2",
    "drop:block:decoder:1",
    "drop:block:encoder:1",
    "share:0.15",
    "share:0.1",
]


def parse_setting(text: str) -> dict:
    """``drop:KIND:STACK:COUNT`` or ``share:THRESHOLD`` to a setting dict."""
    parts = text.split(":")
    if parts[0] == "drop" and len(parts) == 4 and parts[3].isdigit():
        return {"name": f"drop {parts[3]} {parts[2]} {parts[1]}", "method": "drop",
                "kind": parts[1], "stack": parts[2], "count": int(parts[3])}
    if parts[0] == "share" and len(parts) == 2:
        return {"name": f"share at {float(parts[1]):g}", "method": "share",
                "threshold": float(parts[1])}
    raise SystemExit(f"bad setting {text!r}: use drop:KIND:STACK:COUNT or share:THRESHOLD")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model folder (default: the bundled model)")
    parser.add_argument("--spider-dir", help="Spider folder (default: $GRAPHIX_SPIDER_DIR)")
    parser.add_argument("--examples", type=int, default=None,
                        help="Spider dev examples to score (default: all)")
    parser.add_argument("--settings", nargs="+", default=DEFAULT_SETTINGS,
                        help="drop:KIND:STACK:COUNT or share:THRESHOLD entries "
                             f"(default: {' '.join(DEFAULT_SETTINGS)})")
    parser.add_argument("--calibration-examples", type=int, default=64,
                        help="Spider train examples for the similarity scores (default: 64)")
    parser.add_argument("--train-examples", type=int, default=2000,
                        help="Spider train examples for fine-tuning and distillation "
                             "(default: 2000)")
    parser.add_argument("--fine-tune-steps", type=int, default=100,
                        help="cross-entropy steps after a drop (default: 100)")
    parser.add_argument("--distill-steps", type=int, default=100,
                        help="distillation steps after sharing (default: 100)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--batch-size", type=int, default=8,
                        help="batch size of calibration, training and the timed step "
                             "(default: 8)")
    parser.add_argument("--decode-tokens", type=int, default=32,
                        help="tokens generated per question in the fixed-length decoding "
                             "timing (default: 32)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="latency rounds over all settings (default: 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice)")
    parser.add_argument("--work-dir", default=None,
                        help="folder for the compressed models (default: a temporary folder)")
    parser.add_argument("--report", default=None, help="markdown report to write")
    parser.add_argument("--note", default="", help="a line added to the report (machine load)")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------- building the settings


def build_settings(args, loaded, calibration, training_records, work_dir: Path) -> list[dict]:
    """Compress a copy of the model per setting, train it, save it; return setting dicts."""
    from graphix.compression.attention_sharing import group_similar_layers, share_attention
    from graphix.compression.distillation import DistillationConfig, train_student
    from graphix.compression.layer_drop import drop_by_similarity
    from graphix.compression.similarity import measure_similarity
    from graphix.compression.workflow import count_parameters, save_compressed

    baseline = loaded.model
    report = measure_similarity(baseline, calibration)
    settings = [{"name": "baseline", "method": "none", "changed": [], "folder": loaded.model_dir,
                 "compress_s": 0.0}]
    for text in args.settings:
        setting = parse_setting(text)
        start = time.perf_counter()
        model = copy.deepcopy(baseline)
        if setting["method"] == "drop":
            result = drop_by_similarity(model, calibration, setting["kind"], setting["stack"],
                                        setting["count"])
            setting["changed"] = result.dropped
            config = DistillationConfig(steps=args.fine_tune_steps, batch_size=args.batch_size,
                                        learning_rate=args.learning_rate)
            teacher = None
        else:
            setting["changed"] = group_similar_layers(report, setting["threshold"])
            share_attention(model, setting["changed"])
            config = DistillationConfig(steps=args.distill_steps, batch_size=args.batch_size,
                                        learning_rate=args.learning_rate)
            teacher = baseline
        if setting["changed"] and config.steps:
            history = train_student(model, training_records, config, teacher=teacher)
            setting["final_loss"] = history[-1]["loss"]
        setting["train_steps"] = config.steps if setting["changed"] else 0
        folder = work_dir / setting["name"].replace(" ", "_")
        save_compressed(model, loaded.tokenizer, folder, loaded.model_dir,
                        {"setting": text, "changed": setting["changed"],
                         "parameters_after": count_parameters(model)})
        setting["folder"] = folder
        setting["compress_s"] = time.perf_counter() - start
        settings.append(setting)
        print(f"built {setting['name']}: {', '.join(setting['changed']) or 'nothing changed'} "
              f"({setting['compress_s']:.0f} s)", flush=True)
    return settings


# ---------------------------------------------------------------------- measurements


def encoder_ms(text2sql, records) -> list[float]:
    import torch

    from graphix.inference import model_inputs

    model = text2sql.model
    use_graph = bool(model.config.use_graph)
    times = []
    with torch.no_grad():
        for record in records:
            inputs = model_inputs([record], use_graph)
            start = time.perf_counter()
            model.encode(**inputs)
            times.append((time.perf_counter() - start) * 1000)
    return times


def ask_ms(text2sql, questions: list[str]) -> tuple[list[float], list[int]]:
    """Time `ask` per question; also return the length in tokens of each generated SQL."""
    times, lengths = [], []
    for question in questions:
        start = time.perf_counter()
        answer = text2sql.ask(question, DEMO / "bookshop.sqlite")
        times.append((time.perf_counter() - start) * 1000)
        lengths.append(len(text2sql.tokenizer(answer.beams[0][0])["input_ids"]))
    return times, lengths


def decode_ms(text2sql, records, tokens: int) -> list[float]:
    """Time greedy generation of exactly `tokens` tokens per record, encoder included."""
    import torch

    from graphix.inference import model_inputs

    model = text2sql.model
    use_graph = bool(model.config.use_graph)
    times = []
    with torch.no_grad():
        for record in records:
            inputs = model_inputs([record], use_graph)
            start = time.perf_counter()
            model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens,
                           do_sample=False, num_beams=1)
            times.append((time.perf_counter() - start) * 1000)
    return times


def train_step_ms(model, batch: dict, repeats: int) -> float:
    model.train()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(**batch).loss.backward()
        times.append((time.perf_counter() - start) * 1000)
        model.zero_grad(set_to_none=True)
    model.eval()
    return statistics.median(times)


def dev_scores(text2sql, records, spider_dir) -> dict:
    from graphix.data import resolve_spider_dir
    from graphix.inference import generate_sql
    from graphix.metrics import Evaluator

    spider = resolve_spider_dir(spider_dir)
    start = time.perf_counter()
    beams = generate_sql(text2sql.model, text2sql.tokenizer, records, num_beams=1,
                         max_new_tokens=text2sql.max_new_tokens)
    em = ex = 0
    with Evaluator(spider / "database", spider / "tables.json") as evaluator:
        for record, candidates in zip(records, beams):
            result = evaluator.evaluate(record["query"], candidates[0].sql, record["db_id"])
            em += bool(result.em)
            ex += bool(result.ex)
    count = max(1, len(records))
    return {"em": em / count, "ex": ex / count, "dev_s": time.perf_counter() - start}


# ---------------------------------------------------------------------- the run


def run(args) -> list[dict]:
    import tempfile

    import torch

    from graphix.api import Text2SQL
    from graphix.compression.workflow import (
        batches_of,
        count_parameters,
        load_text2sql,
        spider_records,
    )
    from graphix.data import Example
    from graphix.preprocess import PreprocessConfig, Preprocessor
    from graphix.schema import Schema
    from graphix.serialization import SerializationConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_text2sql(args.model)
    lengths = dict(max_input_tokens=loaded.max_input_tokens,
                   max_target_tokens=loaded.max_new_tokens)
    use_graph = bool(loaded.model.config.use_graph)
    calibration_records = spider_records(loaded.tokenizer, args.spider_dir, "train",
                                         args.calibration_examples, seed=0, **lengths)
    calibration = batches_of(calibration_records, args.batch_size, use_graph)
    training_records = spider_records(loaded.tokenizer, args.spider_dir, "train",
                                      args.train_examples, seed=1, **lengths)
    dev_records = spider_records(loaded.tokenizer, args.spider_dir, "dev", args.examples,
                                 seed=0, **lengths)

    temporary = None
    if args.work_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="graphix-compression-")
        work_dir = Path(temporary.name)
    else:
        work_dir = Path(args.work_dir)
    settings = build_settings(args, loaded, calibration, training_records, work_dir)

    # Load every setting from its saved folder, as a user would.
    questions = [item["question"] for item in json.loads((DEMO / "questions.json").read_text())]
    schema = Schema.from_sqlite(DEMO / "bookshop.sqlite")
    for setting in settings:
        setting["model"] = Text2SQL.from_pretrained(setting["folder"])
        setting["parameters"] = count_parameters(setting["model"].model)
        for key in ("encoder", "ask", "ask_tokens", "decode", "train_step"):
            setting[key] = []
    serialization = SerializationConfig(max_input_tokens=loaded.max_input_tokens,
                                        max_target_tokens=loaded.max_new_tokens)
    preprocessor = Preprocessor(loaded.tokenizer, PreprocessConfig(serialization=serialization))
    demo_records = [preprocessor.process(Example(q, schema.db_id), schema) for q in questions]
    step_batch = calibration[0]

    for setting in settings:  # warm caches and kernels
        ask_ms(setting["model"], questions[:2])
        encoder_ms(setting["model"], demo_records[:2])
    for round_index in range(args.rounds):
        for setting in settings:
            text2sql = setting["model"]
            setting["encoder"].append(statistics.median(encoder_ms(text2sql, demo_records)))
            times, lengths = ask_ms(text2sql, questions)
            setting["ask"].append(statistics.median(times))
            setting["ask_tokens"].append(statistics.mean(lengths))
            setting["decode"].append(statistics.median(
                decode_ms(text2sql, demo_records, args.decode_tokens)))
            setting["train_step"].append(train_step_ms(text2sql.model, step_batch, repeats=2))
        print(f"latency round {round_index + 1}/{args.rounds} done", flush=True)

    for setting in settings:
        setting.update(dev_scores(setting["model"], dev_records, args.spider_dir))
        print(f"{setting['name']}: EM {setting['em']:.3f} EX {setting['ex']:.3f} "
              f"({setting['dev_s']:.0f} s)", flush=True)
        setting["encoder_ms"] = statistics.median(setting.pop("encoder"))
        setting["ask_ms"] = statistics.median(setting.pop("ask"))
        setting["ask_tokens"] = statistics.mean(setting.pop("ask_tokens"))
        setting["decode_ms"] = statistics.median(setting.pop("decode"))
        setting["train_step_ms"] = statistics.median(setting.pop("train_step"))
        setting["dev_examples"] = len(dev_records)
        setting["demo_questions"] = len(questions)
        del setting["model"]
        setting["folder"] = str(setting["folder"])
    if temporary is not None:
        temporary.cleanup()
    return settings


def markdown(settings: list[dict], args) -> str:
    base = settings[0]
    lines = [
        "# Compression: layer drop and attention sharing",
        "",
        f"Model: `{args.model or 'bundled'}`. Spider dev: {base['dev_examples']} examples, "
        f"greedy. Similarity measured on {args.calibration_examples} Spider train examples; "
        f"after compressing, {args.fine_tune_steps} cross-entropy steps per drop and "
        f"{args.distill_steps} distillation steps per sharing, batch {args.batch_size}, on "
        f"{args.train_examples} train examples. Latency: medians of {args.rounds} rounds over "
        f"all settings; encoder and `ask` (greedy, executed) on the {base['demo_questions']} "
        f"demo questions, one at a time; training step = forward and backward on a batch of "
        f"{args.batch_size}. Machine: {platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"threads {_threads()}. Produced by `evaluation/bench_compression.py`.",
    ]
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        "| setting | removed or shared | parameters | encoder ms | ask ms | ask speed-up "
        f"| ask tokens | {args.decode_tokens}-token decode ms | decode speed-up "
        "| train step ms | EM | EX | EX change (points) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: |",
    ]
    for s in settings:
        speedup = 1 - s["ask_ms"] / base["ask_ms"]
        decode_speedup = 1 - s["decode_ms"] / base["decode_ms"]
        lines.append(
            f"| {s['name']} | {', '.join(s['changed']) or '-'} | {s['parameters']:,} "
            f"| {s['encoder_ms']:.1f} | {s['ask_ms']:.1f} | {speedup:+.1%} "
            f"| {s['ask_tokens']:.1f} | {s['decode_ms']:.1f} | {decode_speedup:+.1%} "
            f"| {s['train_step_ms']:.0f} | {s['em']:.3f} | {s['ex']:.3f} "
            f"| {100 * (s['ex'] - base['ex']):+.1f} |")
    passing = [s["name"] for s in settings[1:]
               if 1 - s["ask_ms"] / base["ask_ms"] >= 0.15 and s["ex"] >= base["ex"] - 0.01]
    lines += ["", "Settings at least 15 % faster end to end with at most 1 point of EX lost: "
              + (", ".join(passing) or "none") + "."]
    return "\n".join(lines) + "\n"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv=None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    settings = run(args)
    report = markdown(settings, args)
    print(report)
    if args.report:
        path = Path(args.report)
        path.write_text(report, encoding="utf-8")
        path.with_suffix(".json").write_text(json.dumps(settings, indent=2) + "\n")
        print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
