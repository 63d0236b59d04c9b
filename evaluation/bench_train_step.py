"""Training-step time of Graphix-T5 with the graph sublayers on and off, side by side.

One model per shape; its graph sublayers are switched on and off between steps
(``config.use_graph``), so both variants share weights, batches and process. Steps alternate
off/on, then on/off, so drift in machine load hits both variants alike. A step is forward,
backward and an AdamW step. The report gives the median step time per variant, as wall clock
and as process CPU time, and their ratios. On a machine shared with other processes the CPU
time of a one-thread run is the steadier measure. It also gives tokens per second (non-padding
input plus target tokens) and peak memory.

Peak memory: on CUDA, ``torch.cuda.max_memory_allocated`` per variant in the timing process.
On CPU, the peak resident set size during two training steps in a fresh subprocess per shape
and variant (``VmHWM`` after a reset, see ``probe_memory``). It includes the model, the
optimizer state, the batches, Python and torch themselves.

Batches come from Spider through ``graphix.preprocess`` (training split, a tokenizer trained
on its questions, SQL and schema names) when the Spider folder is found, and otherwise from
synthetic graphs of the sizes given by ``--synthetic-*``.

    python evaluation/bench_train_step.py                       # both shapes, both sources
    python evaluation/bench_train_step.py --layer               # the graph layer alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration  # noqa: E402

SHAPES = {
    "tiny": dict(d_model=256, d_kv=64, d_ff=1024, num_heads=4, num_layers=4, num_decoder_layers=4),
    "t5-small": dict(
        d_model=512, d_kv=64, d_ff=2048, num_heads=8, num_layers=6, num_decoder_layers=6
    ),
}
T5_SMALL_VOCAB = 32128


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="tiny,t5-small", help="comma-separated shapes")
    parser.add_argument(
        "--sources",
        default="auto",
        help="comma-separated batch sources: spider, synthetic; auto = spider if found, "
        "and synthetic",
    )
    parser.add_argument("--spider-dir", default=os.environ.get("GRAPHIX_SPIDER_DIR"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5, help="measured steps per variant")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured steps per variant")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bf16", action="store_true", help="run under bf16 autocast")
    parser.add_argument("--graph-num-heads", type=int, default=None)
    parser.add_argument("--graph-head-dim", type=int, default=None)
    parser.add_argument("--synthetic-tokens", type=int, default=512)
    parser.add_argument("--synthetic-nodes", type=int, default=300)
    parser.add_argument("--synthetic-edges", type=int, default=6000)
    parser.add_argument("--synthetic-target", type=int, default=128)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--layer", action="store_true", help="time the graph layer alone")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--probe-memory", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# Batches ----------------------------------------------------------------------------------


def synthetic_batches(args, vocab_size: int, count: int, seed: int = 0) -> list[dict]:
    """Batches of random tokens with graphs of the sizes given on the command line."""
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(count):
        batch_size, tokens, nodes = args.batch_size, args.synthetic_tokens, args.synthetic_nodes
        # Spans of 1 or 2 tokens, one after another from the start of the input.
        lengths = 1 + torch.randint(0, 2, (batch_size, nodes), generator=generator)
        ends = torch.cumsum(lengths, dim=1)
        if int(ends.max()) > tokens:
            raise SystemExit(f"{nodes} nodes of up to 2 tokens do not fit in {tokens} tokens")
        spans = torch.stack([ends - lengths, ends], dim=-1).reshape(-1, 2)  # [B * nodes, 2]

        # Unique (source, target) pairs inside each example, offset into the batch graph.
        scores = torch.rand(batch_size, nodes * nodes, generator=generator)
        pairs = scores.topk(args.synthetic_edges, dim=1).indices  # [B, E]
        offset = (torch.arange(batch_size) * nodes).unsqueeze(1)  # [B, 1]
        edge_index = torch.stack([pairs // nodes + offset, pairs % nodes + offset]).reshape(2, -1)

        batches.append(
            {
                "input_ids": torch.randint(3, vocab_size, (batch_size, tokens), generator=generator),
                "attention_mask": torch.ones(batch_size, tokens, dtype=torch.long),
                "labels": torch.randint(
                    3, vocab_size, (batch_size, args.synthetic_target), generator=generator
                ),
                "graph_edge_index": edge_index,
                "graph_edge_type": torch.randint(0, 25, (edge_index.shape[1],), generator=generator),
                "graph_node_batch": torch.arange(batch_size).repeat_interleave(nodes),
                "graph_node_spans": spans,
            }
        )
    return batches


def spider_batches(args, count: int) -> tuple[list[dict], int]:
    """Batches of Spider training examples through the preprocessing pipeline."""
    from graphix.data import load_spider_split
    from graphix.graph import collate
    from graphix.preprocess import Preprocessor
    from graphix.tokenizer import TokenizerTrainingConfig, train_tokenizer

    data = load_spider_split(args.spider_dir, "train")
    texts = [example.question for example in data.examples]
    texts += [example.query for example in data.examples if example.query]
    for schema in data.schemas.values():
        texts.append(" ".join(table.name for table in schema.tables))
        texts.append(" ".join(column.name for column in schema.columns))
    tokenizer_dir = Path(os.environ.get("TMPDIR", "/tmp")) / "graphix-bench-tokenizer"
    tokenizer = train_tokenizer(texts, tokenizer_dir, TokenizerTrainingConfig(vocab_size=4000))

    # Evenly spaced examples, so the batches mix many databases.
    preprocessor = Preprocessor(tokenizer)
    needed = count * args.batch_size
    chosen = data.examples[:: max(1, len(data.examples) // needed)][:needed]
    records = [preprocessor.process(example, data.schemas[example.db_id]) for example in chosen]
    batches = [
        collate(records[start : start + args.batch_size])
        for start in range(0, needed, args.batch_size)
    ]
    return batches, len(tokenizer)


def describe(batches: list[dict], batch_size: int) -> dict:
    per_batch = [
        {
            "tokens": batch["input_ids"].shape[1],
            "nodes": batch["graph_node_batch"].numel() / batch_size,
            "edges": batch["graph_edge_type"].numel() / batch_size,
            "target": batch["labels"].shape[1],
        }
        for batch in batches
    ]
    return {key: statistics.mean(item[key] for item in per_batch) for key in per_batch[0]}


def load_batches(args, source: str, shape: str, count: int) -> tuple[list[dict], int]:
    """Return batches and the model vocabulary size for ``source``."""
    if source == "spider":
        batches, vocab_size = spider_batches(args, count)
    else:
        vocab_size = 8000
        batches = synthetic_batches(args, vocab_size, count)
    if shape == "t5-small":
        vocab_size = T5_SMALL_VOCAB
    return batches, vocab_size


# Steps ------------------------------------------------------------------------------------


def build_model(args, shape: str, vocab_size: int) -> GraphixT5ForConditionalGeneration:
    graph_settings = {}
    if args.graph_num_heads:
        graph_settings["graph_num_heads"] = args.graph_num_heads
    if args.graph_head_dim:
        graph_settings["graph_head_dim"] = args.graph_head_dim
    torch.manual_seed(0)
    config = GraphixT5Config(
        vocab_size=vocab_size, decoder_start_token_id=0, **SHAPES[shape], **graph_settings
    )
    return GraphixT5ForConditionalGeneration(config).to(args.device).train()


def train_step(model, optimizer, batch: dict, use_graph: bool, args) -> tuple[float, float]:
    """Run one training step; return its wall time and process CPU time in seconds."""
    model.config.use_graph = use_graph
    batch = {key: value.to(args.device) for key, value in batch.items()}
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16):
        loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, time.process_time() - start_cpu


def count_tokens(batch: dict) -> int:
    return int(batch["attention_mask"].sum() + (batch["labels"] != -100).sum())


def time_shape(args, shape: str, source: str) -> dict:
    """Time interleaved on/off steps for one shape and batch source."""
    count = args.warmup + args.steps
    batches, vocab_size = load_batches(args, source, shape, count)
    model = build_model(args, shape, vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    times = {"off": [], "on": []}
    cpu_times = {"off": [], "on": []}
    tokens = {"off": 0, "on": 0}
    peak = {}
    for step, batch in enumerate(batches):
        order = ("off", "on") if step % 2 == 0 else ("on", "off")
        for variant in order:
            if args.device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            seconds, cpu_seconds = train_step(model, optimizer, batch, variant == "on", args)
            if args.device.startswith("cuda"):
                peak[variant] = max(peak.get(variant, 0), torch.cuda.max_memory_allocated())
            if step >= args.warmup:
                times[variant].append(seconds)
                cpu_times[variant].append(cpu_seconds)
                tokens[variant] += count_tokens(batch)

    result = {"shape": shape, "source": source, "batch": describe(batches, args.batch_size)}
    result["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    for variant in ("off", "on"):
        result[f"{variant}_median_s"] = statistics.median(times[variant])
        result[f"{variant}_median_cpu_s"] = statistics.median(cpu_times[variant])
        result[f"{variant}_tokens_per_s"] = tokens[variant] / sum(times[variant])
        if peak:
            result[f"{variant}_peak_gb"] = peak[variant] / 1e9
    result["ratio"] = result["on_median_s"] / result["off_median_s"]
    result["cpu_ratio"] = result["on_median_cpu_s"] / result["off_median_cpu_s"]
    result["step_ratios"] = [on / off for on, off in zip(times["on"], times["off"])]
    result["step_cpu_ratios"] = [on / off for on, off in zip(cpu_times["on"], cpu_times["off"])]
    return result


def probe_memory(args) -> None:
    """Child process: two steps of one variant, then print the peak resident set size.

    Loading Spider and building batches can peak higher than training, so the high-water
    mark is reset (``/proc/self/clear_refs``) once the model and batches exist, and the peak
    is read from ``VmHWM`` after the steps. Where that is unavailable, the result is
    ``ru_maxrss`` over the whole process.
    """
    shape, source, variant = args.probe_memory.split(":")
    batches, vocab_size = load_batches(args, source, shape, 2)
    model = build_model(args, shape, vocab_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    try:
        Path("/proc/self/clear_refs").write_text("5")
        status = Path("/proc/self/status")
    except OSError:
        status = None
    for batch in batches:
        train_step(model, optimizer, batch, variant == "on", args)
    if status is not None:
        line = next(line for line in status.read_text().splitlines() if line.startswith("VmHWM"))
        peak_kb = int(line.split()[1])
    else:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_rss_gb": peak_kb * 1024 / 1e9}))


def measure_memory(args, shape: str, source: str, variant: str) -> float:
    command = [sys.executable, __file__, "--probe-memory", f"{shape}:{source}:{variant}"]
    command += ["--threads", str(args.threads), "--batch-size", str(args.batch_size)]
    command += ["--device", args.device]
    for name in ("tokens", "nodes", "edges", "target"):
        command += [f"--synthetic-{name}", str(getattr(args, f"synthetic_{name}"))]
    if args.spider_dir:
        command += ["--spider-dir", args.spider_dir]
    if args.graph_num_heads:
        command += ["--graph-num-heads", str(args.graph_num_heads)]
    if args.graph_head_dim:
        command += ["--graph-head-dim", str(args.graph_head_dim)]
    if args.bf16:
        command.append("--bf16")
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_rss_gb"]


# The graph layer alone ----------------------------------------------------------------------


def time_layer(args) -> dict:
    """Forward and backward of one graph layer: dense padded layout against the edge list."""
    from graphix.model.rgat import BatchedGraph, RelationalGraphAttention, RelationEmbedding

    batch = synthetic_batches(args, 100, 1)[0]
    torch.manual_seed(0)
    config = GraphixT5Config(**SHAPES["t5-small"])
    layer = RelationalGraphAttention(512, config.graph_num_heads, config.graph_head_dim, 0.0)
    relations = RelationEmbedding(25, config.graph_head_dim)
    tokens = torch.randn(args.batch_size, args.synthetic_tokens, 512, requires_grad=True)
    graph_inputs = [batch[key] for key in ("graph_edge_index", "graph_edge_type")]
    node_inputs = [batch[key] for key in ("graph_node_batch", "graph_node_spans")]

    def dense() -> None:
        graph = BatchedGraph.from_edges(
            *graph_inputs, *node_inputs, args.batch_size, args.synthetic_tokens, 25
        )
        layer(tokens, graph, relations).sum().backward()

    def edge_list() -> None:
        nodes = tokens.reshape(-1, 512)[
            batch["graph_node_batch"] * args.synthetic_tokens + batch["graph_node_spans"][:, 0]
        ]  # [N_total, D], first token of each span
        layer.attend_edges(layer.layer_norm(nodes), *graph_inputs, relations).sum().backward()

    times = {"dense": [], "edge_list": []}
    for step in range(args.warmup + args.steps):
        for name, run in (("dense", dense), ("edge_list", edge_list)):
            start = time.perf_counter()
            run()
            if step >= args.warmup:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


# Report -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.probe_memory:
        probe_memory(args)
        return 0
    if args.layer:
        print(json.dumps(time_layer(args), indent=2))
        return 0

    sources = args.sources.split(",")
    if sources == ["auto"]:
        from graphix.data import resolve_spider_dir

        sources = ["synthetic"]
        try:
            args.spider_dir = str(resolve_spider_dir(args.spider_dir or REPO_ROOT.parent / "shared/spider"))
            sources.insert(0, "spider")
        except Exception as error:  # noqa: BLE001 - any failure means: no Spider here
            print(f"Spider not used ({error}); synthetic batches only", file=sys.stderr)

    results = []
    for source in sources:
        for shape in args.shapes.split(","):
            result = time_shape(args, shape, source)
            if not args.no_memory and not args.device.startswith("cuda"):
                for variant in ("off", "on"):
                    result[f"{variant}_peak_gb"] = measure_memory(args, shape, source, variant)
            results.append(result)
            print(json.dumps(result), file=sys.stderr)

    print(f"device {args.device}, {args.threads} threads, bf16 {args.bf16}, "
          f"batch {args.batch_size}, {args.steps} measured steps (median)")
    print("| source | shape | tokens/nodes/edges/target per example | off s/step | on s/step "
          "| ratio | off CPU s | on CPU s | CPU ratio | tokens/s off | tokens/s on "
          "| peak GB off | peak GB on |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        sizes = "{tokens:.0f} / {nodes:.0f} / {edges:.0f} / {target:.0f}".format(**r["batch"])
        print(
            f"| {r['source']} | {r['shape']} | {sizes} | {r['off_median_s']:.3f} | "
            f"{r['on_median_s']:.3f} | {r['ratio']:.3f} | {r['off_median_cpu_s']:.3f} | "
            f"{r['on_median_cpu_s']:.3f} | {r['cpu_ratio']:.3f} | {r['off_tokens_per_s']:.0f} | "
            f"{r['on_tokens_per_s']:.0f} | {r.get('off_peak_gb', float('nan')):.2f} | "
            f"{r.get('on_peak_gb', float('nan')):.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
