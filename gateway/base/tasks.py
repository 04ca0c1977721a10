"""The background task a long-lived service runs, and how it ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from gateway.base.app import task_health

log = logging.getLogger("herald.tasks")


async def cancel(task: asyncio.Task | None) -> None:
    """Cancel ``task`` (nothing when None) and wait until it has ended."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


class PollLoop:
    """A service that works through a table in batches: the send workers, the HTTP
    callback dispatcher, the SMPP outbox dispatcher.

    Its task runs :meth:`run_once` (one batch; the number of rows handled) again at
    once while batches come back full, else after ``poll_interval`` seconds, or
    sooner when :meth:`notify` says there is work. An exception from a pass is
    logged and the loop goes on. :meth:`stop` lets the pass in hand finish (within
    ``stop_timeout`` seconds when set: then it is cancelled).
    """

    name: str  # the task's name, in logs

    def __init__(self, *, batch: int, poll_interval: float, stop_timeout: float | None = None
                 ) -> None:
        self.batch = batch
        self.poll_interval = poll_interval
        self._stop_timeout = stop_timeout
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    async def run_once(self) -> int:
        raise NotImplementedError

    def has_more(self) -> bool:
        """Work in hand that the next pass must take without waiting (none by default)."""
        return False

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        """Let the pass in hand finish, then end the loop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            if self._stop_timeout is None:
                await self._task
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._task, self._stop_timeout)  # cancels it on timeout
            self._task = None

    def notify(self, *_: object) -> None:
        """There is work: look now rather than at the next poll."""
        self._wake.set()

    def health(self) -> str:
        """``"ok"`` while the loop runs (``/healthz``)."""
        return "stopping" if self._stopping else task_health(self._task)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                done = await self.run_once()
            except Exception:
                log.exception("event=poll_loop_failed loop=%s", self.name)
                done = 0
            if done < self.batch and not self._stopping and not self.has_more():
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
