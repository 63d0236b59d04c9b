"""Checkpoints survive being killed mid-write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from graphix.checkpoints import CheckpointManager
from graphix.errors import CheckpointError


def _write_payload(step):
    def write(folder):
        (folder / "payload.json").write_text(json.dumps({"step": step}))
    return write


def test_latest_and_best_pointers(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    assert manager.latest() is None
    manager.save(10, _write_payload(10), best=True)
    manager.save(20, _write_payload(20))
    manager.save(30, _write_payload(30))
    assert manager.latest().name == "step-00000030"
    assert manager.best().name == "step-00000010"
    # keep=2 prunes the oldest step folder but never the best one.
    remaining = sorted(p.name for p in manager.root.glob("step-*"))
    assert remaining == ["step-00000010", "step-00000030"]


def test_corrupt_pointer_is_clear_error(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save(1, _write_payload(1))
    (manager.root / "latest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        manager.latest()


def test_partial_folders_removed(tmp_path):
    manager = CheckpointManager(tmp_path)
    manager.save(1, _write_payload(1))
    (manager.root / "step-00000002.tmp-999").mkdir()
    assert manager.remove_partial() == 1
    assert manager.latest().name == "step-00000001"


WRITER = textwrap.dedent("""
    import os, sys
    from graphix.checkpoints import CheckpointManager
    manager = CheckpointManager(sys.argv[1], keep=2)
    block = os.urandom(1 << 20)
    step = 0
    while True:
        step += 1
        def write(folder, step=step):
            for i in range(8):
                (folder / f"shard-{i}.bin").write_bytes(block)
            (folder / "step.txt").write_text(str(step))
        manager.save(step, write)
        print(step, flush=True)
""")


@pytest.mark.parametrize("delay_s", [0.3, 0.75, 1.2])
def test_sigkill_during_write_leaves_loadable_latest(tmp_path, delay_s):
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    # Wait for the first complete checkpoint, then kill at an arbitrary later moment.
    first = process.stdout.readline()
    assert first.strip() == "1"
    time.sleep(delay_s)
    process.send_signal(signal.SIGKILL)
    process.wait()

    manager = CheckpointManager(tmp_path)
    latest = manager.latest()
    assert latest is not None
    step = int((latest / "step.txt").read_text())
    assert latest.name == f"step-{step:08d}"
    assert len(list(latest.glob("shard-*.bin"))) == 8
    assert all(p.stat().st_size == 1 << 20 for p in latest.glob("shard-*.bin"))
    manager.remove_partial()
    assert not list(manager.root.glob("*.tmp-*"))
