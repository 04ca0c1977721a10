"""The background service that runs contact imports: one at a time per Herald process.

An import is a row in PostgreSQL (:mod:`contacts.imports`), so any process
may take it: :func:`contacts.imports.claim` picks the oldest due one with
``FOR UPDATE SKIP LOCKED`` and gives it a lease. The import itself runs in a
child process (``python -m contacts.worker``): parsing a million rows is a
minute of CPU that must not stall this process's event loop, which serves
the portal and the API. The child renews the lease as it goes; if it dies
(or Herald with it: the child gets SIGTERM when its parent goes), the lease
runs out and a runner takes the import again from the start, at most three
times in all. A clean stop hands a running import back at once.

The runner looks for work every ``poll`` seconds, and at once when
:meth:`ImportRunner.poke` is called (the portal does when it queues one).
Once an hour it also deletes drafts nobody finished for a day (their files
take room in PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

import asyncpg

from contacts import imports

log = logging.getLogger("herald.contacts.runner")


class ImportRunner:
    name = "contact_imports"  # in /healthz when registered

    def __init__(self, pool: asyncpg.Pool, database_url: str, *, poll: float = 2.0) -> None:
        self.pool = pool
        self.database_url = database_url
        self.poll = poll
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._child: asyncio.subprocess.Process | None = None
        self._current: int | None = None
        self._next_cleanup = 0.0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="contact-imports")

    def poke(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._stop_child()

    def health(self) -> str:
        if self._task is None or self._task.done():
            return "not running"
        return "ok"

    async def _stop_child(self) -> None:
        child, current = self._child, self._current
        self._child = self._current = None
        if child is not None and child.returncode is None:
            child.terminate()
            try:
                await asyncio.wait_for(child.wait(), 5)
            except TimeoutError:
                child.kill()
                await child.wait()
        if current is not None:
            # handed back for the next runner at once, not after the lease
            with contextlib.suppress(Exception):
                await self.pool.execute(
                    """UPDATE contact_imports SET status = 'queued', lease_until = NULL
                       WHERE id = $1 AND status = 'running'""", current)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                while await self.run_once():
                    pass
                if loop.time() >= self._next_cleanup:
                    self._next_cleanup = loop.time() + 3600
                    gone = await imports.delete_drafts(self.pool)
                    if gone:
                        log.info("event=contact_import_drafts_deleted count=%s", gone)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("event=contact_import_loop_failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_once(self) -> bool:
        """Take one due import and run it to its end; False when none was due."""
        claimed = await imports.claim(self.pool)
        if claimed is None:
            return False
        import_id, attempts = claimed
        if attempts > imports.MAX_ATTEMPTS:
            await imports.fail(self.pool, import_id, "The import stopped three times before it ended.")
            log.warning("event=contact_import_given_up id=%s", import_id)
            return True
        log.info("event=contact_import_started id=%s attempt=%s", import_id, attempts)
        self._current = import_id
        env = dict(os.environ, HERALD_IMPORT_DATABASE_URL=self.database_url)
        from gateway.base.embedded import die_with_parent

        self._child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "contacts.worker", str(import_id), env=env,
            preexec_fn=die_with_parent,
        )
        code = await self._child.wait()
        self._child = self._current = None
        if code != 0:
            log.error("event=contact_import_worker_failed id=%s code=%s", import_id, code)
            status = await self.pool.fetchval("SELECT status FROM contact_imports WHERE id = $1", import_id)
            if status == "running":
                await imports.fail(self.pool, import_id, "The import could not be finished.")
        return True
