"""Merge concurrent scoring requests into model batches.

Requests wait at most ``max_wait_s`` for company; a batch closes early once it holds
``max_pairs`` pairs. The merged batch is scored in a worker thread (ONNX Runtime releases the
GIL), where :class:`~osrerank.model.PairScorer` sorts the pairs by token length before padding,
and each request gets its own slice back in its own order.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..model import PairScorer, Scores

__all__ = ["BatchStats", "DynamicBatcher"]


@dataclass
class BatchStats:
    """Counters exposed on /metrics."""

    requests: int = 0
    pairs: int = 0
    batches: int = 0
    batch_pairs_max: int = 0
    inference_seconds: float = 0.0


@dataclass
class _Job:
    pairs: Sequence[tuple[str, str]]
    future: asyncio.Future[Scores]


class DynamicBatcher:
    """Async front of a synchronous scorer. Start with :meth:`start`, stop with :meth:`close`."""

    def __init__(self, scorer: PairScorer, *, max_pairs: int = 256, max_wait_s: float = 0.005) -> None:
        self.scorer, self.max_pairs, self.max_wait_s = scorer, max_pairs, max_wait_s
        self.stats = BatchStats()
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def score(self, pairs: Sequence[tuple[str, str]]) -> Scores:
        """Score one request's pairs; resolves when its batch has run."""
        if not pairs:
            return Scores(np.zeros(0), np.zeros(0, dtype=bool))
        future: asyncio.Future[Scores] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(pairs, future))
        return await future

    async def _loop(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            total = len(jobs[0].pairs)
            deadline = time.monotonic() + self.max_wait_s
            while total < self.max_pairs:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
                jobs.append(job)
                total += len(job.pairs)
            await self._run(jobs, total)

    async def _run(self, jobs: list[_Job], total: int) -> None:
        merged = [pair for job in jobs for pair in job.pairs]
        started = time.perf_counter()
        try:
            scores = await asyncio.to_thread(self.scorer.score, merged)
        except Exception as exc:  # surface model failures to every waiting request
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        s = self.stats
        s.inference_seconds += time.perf_counter() - started
        s.batches += 1
        s.requests += len(jobs)
        s.pairs += total
        s.batch_pairs_max = max(s.batch_pairs_max, total)
        offset = 0
        for job in jobs:
            n = len(job.pairs)
            if not job.future.done():
                job.future.set_result(Scores(scores.values[offset : offset + n], scores.truncated[offset : offset + n]))
            offset += n
