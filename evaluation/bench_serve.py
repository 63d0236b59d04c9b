"""Load test of ``graphix serve`` on loopback: latency percentiles and errors of POST /ask.

The script starts the server itself (``python -m graphix serve`` on 127.0.0.1 and a free
port, over data/demo), sends a bounded number of requests from a few concurrent clients,
stops the server and prints a Markdown report. Each request sends one demo question (cycled
through data/demo/questions.json) with execution on. A server run is repeated for every
``--max-batch-size`` given, so batching on and off are measured side by side in one run.

The model is the bundled one (graphix/resources/default_model) when it exists, otherwise a
tiny random model built here (2 layers, width 32, a 200-piece tokenizer trained on the demo
questions); the report names which. A tiny model's latency is mostly server overhead, not
model time.

    python evaluation/bench_serve.py                                 # 200 requests, 8 clients
    python evaluation/bench_serve.py --requests 400 --max-batch-size 1,4,8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from tiny_model import build_tiny_model  # noqa: E402  (the random model the tests use)

DEMO_DIR = REPO_ROOT / "data" / "demo"
BUNDLED_MODEL = REPO_ROOT / "graphix" / "resources" / "default_model"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per server run")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--warmup", type=int, default=16, help="untimed requests before timing")
    parser.add_argument("--max-batch-size", default="1,8",
                        help="comma-separated batch limits; one server run each (default: 1,8)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0,
                        help="batch collection time of the server, in milliseconds")
    parser.add_argument("--beams", type=int, default=1, help="beam width of every request")
    parser.add_argument("--model", type=Path,
                        help="model folder (default: the bundled model, else a tiny random one)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the server (OMP_NUM_THREADS; default: 1)")
    parser.add_argument("--json", type=Path, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.clients < 1:
        parser.error("--requests and --clients must be at least 1")
    return args


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model: Path, port: int, max_batch_size: int, max_wait_ms: float,
                 threads: int, log) -> subprocess.Popen:
    command = [sys.executable, "-m", "graphix", "serve", "--db-dir", str(DEMO_DIR),
               "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO_ROOT),
               GRAPHIX_CACHE_DIR=str(Path(log.name).parent / "cache"))
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


async def wait_until_healthy(client, process: subprocess.Popen, log_path: Path,
                             timeout_s: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}; its log:\n"
                               + log_path.read_text()[-2000:])
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the server did not become healthy within {timeout_s:.0f} s")


async def load(base_url: str, process, log_path: Path, args, questions: list[str]) -> dict:
    """Send the warm-up and timed requests and return latencies and error counts."""
    import httpx

    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as client:
        await wait_until_healthy(client, process, log_path)

        async def one(number: int) -> tuple[float, int, dict | None]:
            body = {"db_id": "bookshop", "question": questions[number % len(questions)],
                    "beams": args.beams}
            started = time.perf_counter()
            try:
                response = await client.post("/ask", json=body)
            except httpx.HTTPError as error:
                return time.perf_counter() - started, 0, {"error": repr(error)}
            elapsed = time.perf_counter() - started
            return elapsed, response.status_code, response.json()

        async def run(total: int) -> list:
            counter = iter(range(total))
            results = []

            async def worker():
                for number in counter:
                    results.append(await one(number))

            await asyncio.gather(*(worker() for _ in range(args.clients)))
            return results

        await run(args.warmup)
        started = time.perf_counter()
        results = await run(args.requests)
        wall = time.perf_counter() - started

    latencies = sorted(elapsed * 1000 for elapsed, _, _ in results)
    ok = [payload for _, status, payload in results if status == 200]
    failures = [f"{status}: {payload}" for _, status, payload in results if status != 200]
    return {
        "requests": len(results),
        "errors": len(failures),
        "first_errors": failures[:3],
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p99_ms": percentile(latencies, 99),
        "max_ms": latencies[-1],
        "mean_ms": statistics.fmean(latencies),
        "throughput_rps": len(results) / wall,
        "mean_batch_size": statistics.fmean(p["batch_size"] for p in ok) if ok else 0.0,
        "sql_ran": sum(1 for p in ok if p["error"] is None),
        "mean_generate_ms": statistics.fmean(p["timings_ms"]["generate"] for p in ok) if ok else 0.0,
    }


def percentile(sorted_values: list[float], q: float) -> float:
    """Return the q-th percentile with linear interpolation between closest ranks."""
    position = (len(sorted_values) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def machine() -> str:
    import torch

    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"torch {torch.__version__}; load average at start {load}")


def main(argv=None) -> int:
    args = parse_args(argv)
    batch_sizes = [int(size) for size in args.max_batch_size.split(",")]
    questions = [item["question"] for item in json.loads((DEMO_DIR / "questions.json").read_text())]
    started_on = machine()

    with tempfile.TemporaryDirectory(prefix="graphix-bench-serve-") as scratch:
        scratch = Path(scratch)
        if args.model is not None:
            model, model_name = args.model, f"{args.model}"
        elif (BUNDLED_MODEL / "config.json").is_file():
            model, model_name = BUNDLED_MODEL, "the bundled model (graphix/resources/default_model)"
        else:
            model = build_tiny_model(scratch / "tiny_model")
            model_name = ("a tiny random model (no bundled model yet): 2+2 layers, width 32, "
                          "200-piece tokenizer, at most 24 SQL tokens")

        runs = []
        for size in batch_sizes:
            port = free_port()
            log_path = scratch / f"server-{size}.log"
            with log_path.open("w") as log:
                process = start_server(model, port, size, args.max_wait_ms, args.threads, log)
                try:
                    result = asyncio.run(load(f"http://127.0.0.1:{port}", process, log_path,
                                              args, questions))
                finally:
                    process.terminate()
                    try:
                        process.wait(30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()
            result["max_batch_size"] = size
            runs.append(result)
            print(f"max batch {size}: p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                  f"{result['errors']} errors", file=sys.stderr)

    print(report(runs, args, model_name, started_on))
    if args.json:
        args.json.write_text(json.dumps({"machine": started_on, "model": model_name,
                                         "args": vars(args) | {"json": str(args.json),
                                                               "model": str(args.model)},
                                         "runs": runs}, indent=2))
    return 1 if any(run["errors"] for run in runs) else 0


def report(runs: list[dict], args, model_name: str, machine_line: str) -> str:
    lines = [
        f"Model: {model_name}.",
        f"Machine: {machine_line}.",
        f"Load: {args.requests} timed requests (after {args.warmup} untimed) from "
        f"{args.clients} concurrent clients, POST /ask on bookshop with execution, beams "
        f"{args.beams}, server torch threads {args.threads}, batch wait {args.max_wait_ms} ms.",
        "",
        "| max batch | requests | errors | p50 ms | p90 ms | p99 ms | max ms | mean ms | "
        "req/s | mean batch | generate ms/question | SQL ran |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run['max_batch_size']} | {run['requests']} | {run['errors']} | "
            f"{run['p50_ms']:.1f} | {run['p90_ms']:.1f} | {run['p99_ms']:.1f} | "
            f"{run['max_ms']:.1f} | {run['mean_ms']:.1f} | {run['throughput_rps']:.1f} | "
            f"{run['mean_batch_size']:.2f} | {run['mean_generate_ms']:.1f} | {run['sql_ran']} |")
    for run in runs:
        for failure in run["first_errors"]:
            lines.append(f"\nFirst errors with max batch {run['max_batch_size']}: {failure}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
