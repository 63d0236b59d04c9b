"""A micro-batcher: questions that arrive together go through the model as one batch.

Request handlers `submit` a question and await its SQL. One background task takes the
first waiting request, collects more for up to `max_wait_ms` or until `max_batch_size`,
groups them by beam width (the one generation setting a batch must share) and calls
``ask_many`` for each group in a single worker thread, so the model runs one batch at a
time while the event loop keeps accepting requests. Requests that arrive during a batch
form the next one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from graphix.errors import GraphixError

logger = logging.getLogger(__name__)


class SQLGenerator(Protocol):
    """The model interface the batcher calls: `graphix.api.Text2SQL` or a test double."""

    def ask_many(self, questions: list[str], db, *, num_beams: int, execute: bool,
                 dialect: str) -> list:
        """Return one answer per question, each with ``sql``, ``beams`` and ``timings_ms``."""


class ServerBusyError(GraphixError):
    """The request queue is full, or the batcher has stopped."""


@dataclass(frozen=True)
class BatchingConfig:
    """Limits of the micro-batcher."""

    max_batch_size: int = 8
    """Questions per call of ``ask_many``."""
    max_wait_ms: float = 5.0
    """How long the first request of a batch waits for others to join it."""
    max_pending: int = 256
    """Requests that may wait at once; more are rejected as busy."""

    def __post_init__(self):
        if self.max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {self.max_batch_size}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must not be negative, got {self.max_wait_ms}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {self.max_pending}")


@dataclass
class Generated:
    """The model's output for one request, with the size of the batch it ran in."""

    sql: str
    beams: list[tuple[str, float]]
    timings_ms: dict[str, float]
    batch_size: int


@dataclass
class _Pending:
    question: str
    db_path: Path
    num_beams: int
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Collects concurrent requests into batches for a `SQLGenerator`."""

    def __init__(self, generator: SQLGenerator, config: BatchingConfig = BatchingConfig()):
        self.generator = generator
        self.config = config
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._arrived: asyncio.Event | None = None
        self._held: list[_Pending] = []
        self.batches_run = 0

    @property
    def pending(self) -> int:
        """Requests waiting for a batch."""
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Start the background task; call from the event loop that will submit requests."""
        if self.running:
            return
        self._queue = asyncio.Queue(maxsize=self.config.max_pending)
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graphix-model")
        self._task = asyncio.create_task(self._run(), name="graphix-batcher")
        logger.info("batcher started: up to %d questions per batch, %.1f ms wait",
                    self.config.max_batch_size, self.config.max_wait_ms)

    async def stop(self) -> None:
        """Stop the background task and fail the requests still waiting."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        waiting = list(self._held)
        while self._queue is not None and not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for item in waiting:
            _set_exception(item.future, ServerBusyError("the server is shutting down"))
        self._held = []
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
        logger.info("batcher stopped after %d batches", self.batches_run)

    async def submit(self, question: str, db_path: Path, num_beams: int) -> Generated:
        """Queue one question and wait for its SQL; raise ServerBusyError if the queue is full."""
        if not self.running:
            raise ServerBusyError("the model is not running; retry when GET /health says ok")
        item = _Pending(question, db_path, num_beams, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            raise ServerBusyError(f"the server has {self.config.max_pending} questions waiting; "
                                  "retry in a moment") from None
        self._arrived.set()
        return await item.future

    async def _run(self) -> None:
        while True:
            await self._collect()
            groups: dict[int, list[_Pending]] = {}
            for item in self._held:
                groups.setdefault(item.num_beams, []).append(item)
            for items in groups.values():
                await self._run_group(items)
            self._held = []

    async def _collect(self) -> None:
        """Wait for one request, then gather others until the batch is full or time is up.

        The batch goes to `self._held`, so that `stop` can fail requests taken off the
        queue but not yet answered.
        """
        self._held = [await self._queue.get()]
        deadline = time.perf_counter() + self.config.max_wait_ms / 1000
        while len(self._held) < self.config.max_batch_size:
            try:
                self._held.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            # Wait on an event, not on queue.get, so that a timeout cannot cancel a get that
            # has already taken a request off the queue.
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                pass
        # Requests whose client went away need no SQL.
        self._held = [item for item in self._held if not item.future.done()]

    async def _run_group(self, items: list[_Pending]) -> None:
        if not items:
            return
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self._generate, items)
        except asyncio.CancelledError:
            for item in items:
                _set_exception(item.future, ServerBusyError("the server is shutting down"))
            raise
        except Exception as error:  # noqa: BLE001 - every failure must reach its requests
            if len(items) > 1:
                # One bad request (a corrupt database, say) must not fail the others.
                logger.warning("batch of %d failed (%s); running its questions one by one",
                               len(items), error)
                for item in items:
                    await self._run_group([item])
                return
            logger.info("question failed on %s: %s", items[0].db_path.name, error)
            _set_exception(items[0].future, error)
            return
        self.batches_run += 1
        logger.debug("ran a batch of %d questions in %.1f ms", len(items),
                     (time.perf_counter() - started) * 1000)
        for item, answer in zip(items, results):
            timings = dict(answer.timings_ms)
            timings["queue"] = round((started - item.queued_at) * 1000, 2)
            _set_result(item.future, Generated(answer.sql, list(answer.beams), timings,
                                               batch_size=len(items)))

    def _generate(self, items: list[_Pending]) -> list:
        answers = self.generator.ask_many([item.question for item in items],
                                          [item.db_path for item in items],
                                          num_beams=items[0].num_beams, execute=False,
                                          dialect="sqlite")
        if len(answers) != len(items):
            raise RuntimeError(f"ask_many returned {len(answers)} answers for "
                               f"{len(items)} questions")
        return answers


def _set_result(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future, error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
