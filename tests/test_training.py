"""Training: batch order, schedule, and a run that is killed and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from graphix.training import batch_order, linear_schedule


def test_batch_order_covers_every_example_once():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 6, 4, 10]
    batches = batch_order(lengths, batch_size=3, seed=0, epoch=0)
    flat = sorted(i for batch in batches for i in batch)
    assert flat == list(range(len(lengths)))
    assert all(1 <= len(batch) <= 3 for batch in batches)


def test_batch_order_depends_on_seed_and_epoch():
    lengths = list(range(200))
    first = batch_order(lengths, 8, seed=1, epoch=0)
    assert first == batch_order(lengths, 8, seed=1, epoch=0)
    assert first != batch_order(lengths, 8, seed=1, epoch=1)
    assert first != batch_order(lengths, 8, seed=2, epoch=0)


def test_batch_order_groups_similar_lengths():
    lengths = list(range(400))
    for batch in batch_order(lengths, 8, seed=3, epoch=0):
        spread = max(lengths[i] for i in batch) - min(lengths[i] for i in batch)
        # Sorting inside windows of 400 examples keeps each batch within a narrow band.
        assert spread < 40


def test_linear_schedule_values():
    multiplier = linear_schedule(warmup_steps=4, max_steps=14)
    assert multiplier(0) == pytest.approx(0.25)
    assert multiplier(3) == pytest.approx(1.0)
    assert multiplier(4) == pytest.approx(1.0)
    assert multiplier(9) == pytest.approx(0.5)
    assert multiplier(14) == 0.0
    assert multiplier(20) == 0.0


TINY_RUN = [
    "train_limit=24", "eval_examples=4", "vocab_size=200", "d_model=32", "d_ff=64", "d_kv=8",
    "num_layers=2", "num_decoder_layers=2", "num_heads=2", "graph_heads=2", "batch_size=4",
    "max_input_tokens=256", "max_target_tokens=48", "warmup_steps=2", "log_every=1",
    "checkpoint_every=1", "eval_every=0", "mixed_precision=no",
]


def _train(args, spider, **kwargs):
    env = {**os.environ, "GRAPHIX_SPIDER_DIR": str(spider), "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "graphix", "train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
@pytest.mark.spider
def test_killed_run_resumes_from_latest_checkpoint(spider, tmp_path):
    run = tmp_path / "run"
    process = _train([f"output_dir={run}", "max_steps=40", *TINY_RUN], spider)
    latest = run / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if latest.exists() and json.loads(latest.read_text())["step"] >= 3:
            break
        assert process.poll() is None, process.stdout.read()
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = json.loads(latest.read_text())["step"]

    resumed = _train([f"output_dir={run}", "--resume", "max_steps=" + str(killed_at + 2)], spider)
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "resuming from" in output
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    # The resumed run continues the step count instead of starting again at 1.
    assert steps[-1] == killed_at + 2
    assert (run / "model" / "config.json").exists()


@pytest.mark.spider
def test_segments_continue_where_the_last_one_stopped(spider, tmp_path):
    """A 2-step segment, then a resumed finish, log every step once on one schedule."""
    run = tmp_path / "run"
    first = _train([f"output_dir={run}", "max_steps=5", "--segment-steps", "2", *TINY_RUN], spider)
    output, _ = first.communicate(timeout=600)
    assert first.returncode == 75, output
    assert "continue with: graphix train --resume" in output
    assert not (run / "model").exists()
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == 2

    last = _train([f"output_dir={run}", "--resume", "--segment-steps", "10"], spider)
    output, _ = last.communicate(timeout=600)
    assert last.returncode == 0, output
    assert (run / "model" / "config.json").exists()

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5]
    # The learning rate follows one schedule across both processes.
    lrs = [r["lr"] for r in records if "loss" in r]
    assert lrs == sorted(lrs, reverse=True)
    assert lrs[-1] == 0.0


def test_resume_without_checkpoint_is_clear_error(tmp_path):
    from graphix.cli import main

    code = main(["train", f"output_dir={tmp_path / 'none'}", "--resume"])
    assert code == 1
