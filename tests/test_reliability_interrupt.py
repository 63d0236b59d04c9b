"""SIGKILL during a checkpoint write leaves the previous checkpoint loadable and resumable.

The writer runs the trainer's own checkpoint code (`Trainer._write_checkpoint` through
`CheckpointManager.save`) on a tiny real model, in a child process that the test kills
while a ``step-N.tmp-<pid>`` folder exists, that is, in the middle of a write.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

DEMO_DB = Path(__file__).resolve().parent.parent / "data" / "demo" / "bookshop.sqlite"

# Each step sets every weight of the shared embedding to the step number, so a loaded
# checkpoint shows which step wrote it.
WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path

    import torch

    from graphix.model import GraphixT5Config, GraphixT5ForConditionalGeneration
    from graphix.tokenizer import TokenizerTrainingConfig, train_tokenizer
    from graphix.training import RunState, Trainer
    from graphix.training_config import TrainConfig

    torch.set_num_threads(1)
    run = Path(sys.argv[1])
    texts = [line for line in Path(sys.argv[2]).read_text().splitlines() if line.strip()]
    tokenizer = train_tokenizer(texts * 3, run / "tokenizer", TokenizerTrainingConfig(vocab_size=120))
    config = GraphixT5Config(vocab_size=len(tokenizer), d_model=64, d_ff=128, d_kv=16,
                             num_layers=2, num_decoder_layers=2, num_heads=4,
                             graph_num_heads=2, graph_head_dim=16, pad_token_id=0,
                             eos_token_id=1, decoder_start_token_id=0)
    model = GraphixT5ForConditionalGeneration(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    trainer = Trainer(TrainConfig(output_dir=str(run), keep_checkpoints=2))
    step = 0
    while True:
        step += 1
        with torch.no_grad():
            model.shared.weight.fill_(float(step))
        write = trainer._write_checkpoint(model, tokenizer, optimizer, scheduler,
                                          RunState(step=step))
        trainer.checkpoints.save(step, write)
        print(step, flush=True)
""")


def _texts(tmp_path: Path) -> Path:
    questions = json.loads((DEMO_DB.parent / "questions.json").read_text())
    path = tmp_path / "texts.txt"
    path.write_text("\n".join(item["question"] + "\n" + item["query"] for item in questions))
    return path


def _kill_during_write(run: Path, texts: Path, after_step: int) -> bool:
    """Start the writer, wait for checkpoint `after_step`, then SIGKILL it mid-write.

    Returns True when a temporary checkpoint folder existed at the moment of the kill.
    """
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(run), str(texts)], stdout=subprocess.PIPE,
        text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    try:
        while True:
            line = process.stdout.readline()
            assert line, "the writer exited before its first checkpoints"
            if int(line) >= after_step:
                break
        root = run / "checkpoints"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(".tmp-" in path.name for path in root.iterdir()):
                process.send_signal(signal.SIGKILL)
                return True
            time.sleep(0.002)
        return False
    finally:
        process.kill()
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("after_step", [2, 4, 7])
def test_kill_mid_write_leaves_loadable_checkpoint(after_step, tmp_path):
    from graphix.api import Text2SQL
    from graphix.checkpoints import CheckpointManager, load_model
    from graphix.training import Trainer
    from graphix.training_config import TrainConfig

    run = tmp_path / "run"
    assert _kill_during_write(run, _texts(tmp_path), after_step)

    manager = CheckpointManager(run)
    latest = manager.latest()
    step = int(latest.name.split("-")[1])
    assert step >= after_step
    # The partial folder of the write that was killed is still there until cleanup.
    assert list(manager.root.glob("*.tmp-*"))

    model = load_model(latest)
    assert model.shared.weight.min().item() == step
    assert model.shared.weight.max().item() == step
    assert Text2SQL.from_pretrained(latest).model.shared.weight[0, 0].item() == step

    trainer = Trainer(TrainConfig(output_dir=str(run)))
    resumed_model, payload = trainer._load_latest()
    assert payload["run_state"]["step"] == step
    assert resumed_model.shared.weight[0, 0].item() == step
    assert manager.remove_partial() >= 1
    assert not list(manager.root.glob("*.tmp-*"))


TINY_RUN = [
    "train_limit=24", "eval_examples=4", "vocab_size=200", "d_model=32", "d_ff=64", "d_kv=8",
    "num_layers=2", "num_decoder_layers=2", "num_heads=2", "graph_heads=2", "batch_size=4",
    "max_input_tokens=256", "max_target_tokens=48", "warmup_steps=2", "log_every=1",
    "checkpoint_every=1", "eval_every=0", "mixed_precision=no",
]


@pytest.mark.slow
@pytest.mark.spider
def test_training_killed_mid_write_resumes(spider, tmp_path):
    from graphix.api import Text2SQL
    from graphix.checkpoints import CheckpointManager

    run = tmp_path / "run"
    env = {**os.environ, "GRAPHIX_SPIDER_DIR": str(spider), "OMP_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1", "GRAPHIX_CACHE_DIR": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "graphix", "train", f"output_dir={run}"]
    process = subprocess.Popen(command + ["max_steps=60", *TINY_RUN], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    manager = CheckpointManager(run)
    killed_mid_write = False
    deadline = time.monotonic() + 900
    try:
        while time.monotonic() < deadline and process.poll() is None:
            latest = manager.latest() if manager.root.is_dir() else None
            if latest is not None and int(latest.name.split("-")[1]) >= 3 and any(
                    ".tmp-" in path.name for path in manager.root.iterdir()):
                process.send_signal(signal.SIGKILL)
                killed_mid_write = True
                break
            time.sleep(0.002)
    finally:
        process.kill()
        output = process.stdout.read()
        process.wait()
    assert killed_mid_write, output

    latest = manager.latest()
    killed_at = int(latest.name.split("-")[1])
    assert Text2SQL.from_pretrained(latest).model is not None

    resumed = subprocess.run(command + ["--resume", f"max_steps={killed_at + 2}"], env=env,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming from {latest}" in resumed.stdout + resumed.stderr
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == killed_at + 2
    assert not list(manager.root.glob("*.tmp-*"))


def test_partial_pointer_file_removed(tmp_path):
    from graphix.checkpoints import CheckpointManager

    manager = CheckpointManager(tmp_path)
    manager.save(1, lambda folder: (folder / "weights.bin").write_bytes(b"1"))
    # A kill inside write_json_atomic leaves its temporary pointer file behind.
    (manager.root / ".latest.json.tmp-12345").write_text('{"step": 2, "pa')
    (manager.root / "step-00000002.tmp-12345").mkdir()

    assert manager.remove_partial() == 2
    assert sorted(path.name for path in manager.root.iterdir()) == ["latest.json", "step-00000001"]
    assert manager.latest().name == "step-00000001"
