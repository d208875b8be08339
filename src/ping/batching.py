"""Micro-batching: concurrent requests share one ``predict`` call on one worker thread.

scikit-learn's cost is per call, not per row (PERF-NOTES.md), so stacking the rows
of every request that arrived while the previous call ran multiplies throughput.
The model runs on one worker thread, so a slow call never stalls the event loop
that accepts connections and answers probes: scikit-learn's own forest predict
(~4 ms) on the loop gave p99 274 ms at 32 connections, against 28 ms on the thread.
Under load the hop costs nothing measurable (the same CPU per request either way,
for both bench models); a lone request pays ~0.1 ms for it.

Backpressure: past ``max_queued_rows`` rows waiting, a new request is refused at once
with 503 and ``Retry-After`` (a queue that only grows is latency that only grows); a
request arriving at an empty queue is always taken, whatever its size.

A lone request waits for nobody: a batch is whatever queued while the previous
call ran, plus at most ``max_wait_us`` after its oldest request arrived when that
is set above zero. A full batch (``max_rows``) goes at once.
"""

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ping.errors import ModelNotReady, Overloaded
from ping.metrics import Metrics
from ping.model import Model
from ping.tracing import Tracing, Waiting


@dataclass(frozen=True)
class Prediction:
    """Labels (or regression values) for each row and, when asked for, class probabilities."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None


class RowRefused(Exception):
    """The model raised ValueError on rows that passed the schema; ``row`` is the first
    row that fails on its own (None if only the rows together fail)."""

    def __init__(self, row: int | None, reason: str) -> None:
        super().__init__(reason)
        self.row = row
        self.reason = reason


@dataclass
class _Job:
    rows: Any  # a float64 matrix, or a DataFrame for a model fitted on one
    want_probabilities: bool
    future: asyncio.Future[Prediction]
    enqueued: float  # loop.time()
    waiting: Waiting | None = None  # the caller's span, when tracing is on


class MicroBatcher:
    """Queues validated rows and answers each caller with exactly its own rows, in order."""

    def __init__(
        self,
        model: Model,
        metrics: Metrics,
        *,
        max_rows: int,
        max_wait_us: int,
        max_queued_rows: int,
        tracing: Tracing | None = None,
    ) -> None:
        self._model = model
        self._metrics = metrics
        self._call_seconds = metrics.model_call.labels(model.metadata.name)
        self._tracing = tracing or Tracing()
        self._max_rows = max_rows
        self._max_queued_rows = max_queued_rows
        self._max_wait = max_wait_us / 1_000_000
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ping-predict")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start serving batches; call once the model is loaded, from the event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._serve(), name="ping-batcher")

    async def predict(self, rows: Any, *, want_probabilities: bool = False) -> Prediction:
        """Predict ``rows`` (already validated) in the next batch."""
        if self._closing:
            raise ModelNotReady("shutting down: no new predictions are accepted")
        if self._queue and self._queued_rows + len(rows) > self._max_queued_rows:
            self._metrics.shed.inc()
            raise Overloaded(
                f"overloaded: {self._queued_rows} rows are already waiting for the model "
                f"(PING_MAX_QUEUED_ROWS={self._max_queued_rows}); retry shortly"
            )
        loop = asyncio.get_running_loop()
        waiting = self._tracing.capture(len(rows))
        job = _Job(rows, want_probabilities, loop.create_future(), loop.time(), waiting)
        self._queue.append(job)
        self._queued_rows += len(rows)
        self._wakeup.set()
        return await job.future

    async def close(self) -> None:
        """Refuse new work, answer everything already queued or running, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue or not self._closing:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self._max_wait:
                await self._wait_for_company(loop)
            jobs = self._take_batch()
            started = loop.time()
            for job in jobs:
                self._metrics.queue_wait.observe(started - job.enqueued)
            await self._run(jobs, loop)

    async def _run(self, jobs: list[_Job], loop: asyncio.AbstractEventLoop) -> None:
        """One model call for ``jobs``; a failure is narrowed down to the jobs that cause it."""
        stacked = jobs[0].rows if len(jobs) == 1 else _stack([j.rows for j in jobs])
        self._metrics.batch_rows.observe(len(stacked))
        want_probabilities = any(j.want_probabilities for j in jobs)
        waiting = [job.waiting for job in jobs]
        try:
            result = await loop.run_in_executor(
                self._executor, self._call_model, stacked, want_probabilities, waiting
            )
        except Exception as exc:
            if len(jobs) > 1:
                # Valid input can still make a model raise (a forest refuses values past
                # float32's range), so retry one by one: only that caller gets the error.
                for job in jobs:
                    await self._run([job], loop)
            elif not jobs[0].future.done():
                if isinstance(exc, ValueError):
                    # Input that passed the schema, refused by the model: the caller's
                    # fault, so a 422 that names the row rather than a 500.
                    exc = await loop.run_in_executor(
                        self._executor, self._refused_row, stacked, want_probabilities, exc
                    )
                jobs[0].future.set_exception(exc)
            return
        self._answer(jobs, result)

    async def _wait_for_company(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hold a batch that is not full until ``max_wait`` after its oldest job arrived."""
        deadline = self._queue[0].enqueued + self._max_wait
        while self._queued_rows < self._max_rows and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Job]:
        """Pop queued jobs up to ``max_rows`` rows; always at least one job."""
        jobs = [self._queue.popleft()]
        rows = len(jobs[0].rows)
        while self._queue and rows + len(self._queue[0].rows) <= self._max_rows:
            job = self._queue.popleft()
            jobs.append(job)
            rows += len(job.rows)
        self._queued_rows -= rows
        return jobs

    def _refused_row(self, rows: Any, want_probabilities: bool, error: ValueError) -> RowRefused:
        """Bisect for the first row the model refuses: log2(rows) calls, on failure only."""
        good, bad = 0, len(rows)  # rows[:good] predict; rows[:bad] raise
        while bad - good > 1:
            middle = (good + bad) // 2
            try:
                self._call_model(_slice(rows, 0, middle), want_probabilities, ())
                good = middle
            except ValueError as exc:
                bad, error = middle, exc
        try:
            self._call_model(_slice(rows, bad - 1, bad), want_probabilities, ())
        except ValueError as exc:
            return RowRefused(bad - 1, _first_line(exc))
        return RowRefused(None, _first_line(error))  # only the rows together fail

    def _call_model(
        self, rows: Any, want_probabilities: bool, waiting: Sequence[Waiting | None]
    ) -> Prediction:
        """One model call, on the predict thread: timed, and traced when tracing is on."""
        with self._tracing.model_call(waiting, len(rows)):
            started = time.perf_counter()
            try:
                if want_probabilities:
                    return Prediction(*self._model.predict_with_probabilities(rows))
                return Prediction(labels=self._model.predict(rows))
            finally:
                self._call_seconds.observe(time.perf_counter() - started)

    @staticmethod
    def _answer(jobs: list[_Job], result: Prediction) -> None:
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            if not job.future.done():  # the caller may have disconnected and cancelled
                probabilities = result.probabilities if job.want_probabilities else None
                job.future.set_result(
                    Prediction(
                        labels=result.labels[start:end],
                        probabilities=None if probabilities is None else probabilities[start:end],
                    )
                )
            start = end


def _stack(parts: list[Any]) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import pandas as pd  # only for models fitted on a DataFrame, which already loaded it

    return pd.concat(parts, ignore_index=True)


def _slice(rows: Any, start: int, end: int) -> Any:
    return rows[start:end] if isinstance(rows, np.ndarray) else rows.iloc[start:end]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text if len(text) <= 300 else text[:299] + "…"
