"""The micro-batcher on its own: batch sizes, grouping by beam width, shutdown."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from graphix.api import Answer
from graphix.server.batching import BatchingConfig, MicroBatcher, ServerBusyError

DB = Path("unused.sqlite")


class Recorder:
    """Returns "SELECT <question>" and records each call's questions and beam width."""

    def __init__(self, gate: threading.Event | None = None):
        self.calls: list[tuple[list[str], int]] = []
        self.gate = gate
        self.entered = threading.Event()

    def ask_many(self, questions, db, *, num_beams, execute, dialect):
        assert execute is False
        assert dialect == "sqlite"
        assert db == [DB] * len(questions)
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        self.calls.append((list(questions), num_beams))
        return [Answer(q, f"SELECT {q}", [(f"SELECT {q}", -1.0)] * num_beams,
                       timings_ms={"generate": 2.0}) for q in questions]


def run(coroutine):
    return asyncio.run(coroutine)


def test_batches_capped_at_max_size():
    recorder = Recorder()

    async def scenario():
        batcher = MicroBatcher(recorder, BatchingConfig(max_batch_size=2, max_wait_ms=50))
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(str(i), DB, 1) for i in range(5)))
        await batcher.stop()
        return results, batcher.batches_run

    results, batches = run(scenario())
    assert [result.sql for result in results] == [f"SELECT {i}" for i in range(5)]
    assert [questions for questions, _ in recorder.calls] == [["0", "1"], ["2", "3"], ["4"]]
    assert [result.batch_size for result in results] == [2, 2, 2, 2, 1]
    assert batches == 3


def test_batches_grouped_by_beam_width():
    recorder = Recorder()

    async def scenario():
        batcher = MicroBatcher(recorder, BatchingConfig(max_batch_size=8, max_wait_ms=50))
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(str(i), DB, 1 + i % 3) for i in range(6)))
        await batcher.stop()
        return results

    results = run(scenario())
    assert sorted(recorder.calls, key=lambda call: call[1]) == [
        (["0", "3"], 1), (["1", "4"], 2), (["2", "5"], 3)]
    assert [len(result.beams) for result in results] == [1, 2, 3, 1, 2, 3]
    assert all(result.timings_ms["generate"] == 2.0 for result in results)
    assert all(result.timings_ms["queue"] >= 0 for result in results)


def test_no_wait_still_answers():
    recorder = Recorder()

    async def scenario():
        batcher = MicroBatcher(recorder, BatchingConfig(max_batch_size=4, max_wait_ms=0))
        await batcher.start()
        first = await batcher.submit("a", DB, 1)
        second = await batcher.submit("b", DB, 1)
        await batcher.stop()
        return first, second

    first, second = run(scenario())
    assert (first.sql, second.sql) == ("SELECT a", "SELECT b")
    assert recorder.calls == [(["a"], 1), (["b"], 1)]


def test_stop_fails_waiting_requests():
    gate = threading.Event()
    recorder = Recorder(gate)

    async def scenario():
        batcher = MicroBatcher(recorder, BatchingConfig(max_batch_size=1, max_wait_ms=0))
        await batcher.start()
        running = asyncio.create_task(batcher.submit("running", DB, 1))
        while not recorder.entered.is_set():
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(batcher.submit("waiting", DB, 1))
        await asyncio.sleep(0.05)
        gate.set()
        await batcher.stop()
        return await asyncio.gather(running, waiting, return_exceptions=True)

    running, waiting = run(scenario())
    assert isinstance(running, ServerBusyError)
    assert isinstance(waiting, ServerBusyError)
    assert "shutting down" in str(waiting)


def test_submit_before_start_rejected():
    batcher = MicroBatcher(Recorder())
    with pytest.raises(ServerBusyError, match="not running"):
        run(batcher.submit("q", DB, 1))


@pytest.mark.parametrize("fields, message", [
    ({"max_batch_size": 0}, "max_batch_size"),
    ({"max_wait_ms": -1}, "max_wait_ms"),
    ({"max_pending": 0}, "max_pending"),
])
def test_config_validated(fields, message):
    with pytest.raises(ValueError, match=message):
        BatchingConfig(**fields)
