"""Dynamic batching: requests for one model meet in a bounded queue and share interpreter calls.

The collector task takes the first waiting image, then keeps taking more until the batch is
full or ``wait_s`` has passed since that first image arrived, and hands the batch to the
model's single inference thread. Images that queued while the previous batch ran are
already past their wait and go at once. A full queue refuses new work (:class:`QueueFull`,
HTTP 503) instead of letting latency grow without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .detectors import Box, Detector
from .metrics import Metrics

log = logging.getLogger(__name__)


class QueueFull(Exception):
    """The model's queue is at its bound; the client should retry later."""


class BatcherClosed(Exception):
    """The model was evicted or the service is stopping."""


@dataclass(frozen=True)
class BatchResult:
    """One image's answer and how it was computed."""

    boxes: list[Box]
    batch_size: int
    queued_s: float
    inference_s: float


@dataclass
class _Job:
    image: npt.NDArray[np.uint8]
    future: asyncio.Future[BatchResult]
    enqueued: float


class Batcher:
    """Batches images for one detector and runs them on that detector's own thread."""

    def __init__(
        self,
        name: str,
        detector: Detector,
        *,
        max_batch: int,
        wait_s: float,
        queue_size: int,
        metrics: Metrics,
    ) -> None:
        self.name = name
        self.detector = detector
        self.max_batch = max(1, max_batch)
        self.wait_s = max(0.0, wait_s)
        self._queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max(1, queue_size))
        self._metrics = metrics
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"infer-{name}")
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._running = False  # a batch is between the queue and its answers

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    @property
    def full(self) -> bool:
        return self._queue.full()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._collect())

    def submit(self, image: npt.NDArray[np.uint8]) -> asyncio.Future[BatchResult]:
        """Queue one (H, W, 3) image; the future resolves with its boxes. Never waits."""
        if self._closed:
            raise BatcherClosed(self.name)
        loop = asyncio.get_running_loop()
        job = _Job(image=image, future=loop.create_future(), enqueued=time.perf_counter())
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            raise QueueFull(self.name) from None
        self._metrics.queue_depth.set(self._queue.qsize(), model=self.name)
        return job.future

    async def close(self) -> None:
        """Stop taking work, let queued and running images finish, release the thread."""
        self._closed = True
        while not self._queue.empty() or self._running:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._thread.shutdown(wait=True)
        self._metrics.queue_depth.remove(model=self.name)

    async def _gather(self) -> list[_Job]:
        first = await self._queue.get()
        self._running = True  # from here until its answers are set, close() waits
        batch = [first]
        deadline = first.enqueued + self.wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [j for j in batch if not j.future.done()]  # drop clients that went away

    async def _collect(self) -> None:
        while True:
            jobs = await self._gather()
            try:
                await self._run_batch(jobs)
            finally:
                self._running = False

    async def _run_batch(self, jobs: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        self._metrics.queue_depth.set(self._queue.qsize(), model=self.name)
        if not jobs:
            return
        images = np.stack([j.image for j in jobs])
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._thread, self.detector.detect, images)
        except Exception as exc:
            log.exception("model %s failed on a batch of %d", self.name, len(jobs))
            for j in jobs:
                if not j.future.done():
                    j.future.set_exception(exc)
            return
        took = time.perf_counter() - started
        self._metrics.batch_size.observe(len(jobs), model=self.name)
        self._metrics.inference.observe(took, model=self.name)
        for j, boxes in zip(jobs, results, strict=True):
            if not j.future.done():
                j.future.set_result(BatchResult(boxes, len(jobs), started - j.enqueued, took))
