"""Micro-batching: concurrent requests share one ``predict`` call on one worker thread.

scikit-learn's cost is per call, not per row (PERF-NOTES.md), so stacking the rows
of every request that arrived while the previous call ran multiplies throughput.
The model runs on a worker thread so that a slow predict (a forest takes ~3 ms)
never stalls the event loop that accepts connections. A lone request waits for
nobody: batches form only from requests that are already queued, plus at most
``max_wait_us`` when that is set above zero.
"""

import asyncio
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from ping.metrics import Metrics
from ping.model import Model


@dataclass(frozen=True)
class Prediction:
    """Labels for each row and, when asked for, class probabilities."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None


@dataclass
class _Job:
    rows: np.ndarray
    want_probabilities: bool
    future: asyncio.Future[Prediction]
    enqueued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """Queues validated rows and answers each caller with exactly its own rows, in order."""

    def __init__(self, model: Model, metrics: Metrics, *, max_rows: int, max_wait_us: int) -> None:
        self._model = model
        self._metrics = metrics
        self._max_rows = max_rows
        self._max_wait = max_wait_us / 1_000_000
        self._queue: deque[_Job] = deque()
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ping-predict")
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._serve(), name="ping-batcher")

    async def predict(self, rows: np.ndarray, *, want_probabilities: bool = False) -> Prediction:
        """Predict ``rows`` (already validated) in the next batch."""
        job = _Job(rows, want_probabilities, asyncio.get_running_loop().create_future())
        self._queue.append(job)
        self._queued_rows += len(rows)
        self._wakeup.set()
        return await job.future

    async def close(self) -> None:
        """Answer everything already queued, then stop the worker."""
        while self._queue:
            await asyncio.sleep(0.001)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            if self._max_wait and self._queued_rows < self._max_rows:
                await asyncio.sleep(self._max_wait)
            jobs = self._take_batch()
            started = time.perf_counter()
            for job in jobs:
                self._metrics.queue_wait.observe(started - job.enqueued)
            stacked = jobs[0].rows if len(jobs) == 1 else np.concatenate([j.rows for j in jobs])
            self._metrics.batch_rows.observe(len(stacked))
            want_probabilities = any(j.want_probabilities for j in jobs)
            try:
                result = await loop.run_in_executor(
                    self._executor, self._call_model, stacked, want_probabilities
                )
            except Exception as exc:  # a model failure fails this batch's callers, not the worker
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                continue
            self._answer(jobs, result)

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

    def _call_model(self, rows: np.ndarray, want_probabilities: bool) -> Prediction:
        return Prediction(
            labels=self._model.predict(rows),
            probabilities=self._model.predict_proba(rows) if want_probabilities else None,
        )

    @staticmethod
    def _answer(jobs: list[_Job], result: Prediction) -> None:
        start = 0
        for job in jobs:
            end = start + len(job.rows)
            if not job.future.done():  # the caller may have disconnected and cancelled
                probabilities = result.probabilities
                job.future.set_result(
                    Prediction(
                        labels=result.labels[start:end],
                        probabilities=probabilities[start:end]
                        if probabilities is not None
                        else None,
                    )
                )
            start = end
