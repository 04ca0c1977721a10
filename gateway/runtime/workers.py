"""Several Herald processes on one machine: a parent and its workers on the same ports.

One Herald process is one event loop on one CPU core. With ``HERALD_WORKERS=N``
the process started by ``herald serve`` becomes a parent that

1. starts the embedded PostgreSQL / Redis (unless their URLs are set), migrates
   and seeds, exactly as a single process does;
2. fixes the ports (a port of 0 becomes a free one, so all workers agree);
3. starts N ``herald serve`` workers with the database and Redis URLs, the ports
   and ``HERALD_WORKER=1..N`` in their environment. Each worker listens on the
   same HTTP and SMPP ports with SO_REUSEPORT (the kernel spreads connections
   over them) and runs everything a single process runs: pipeline, send
   workers, vendor binds, outbox, callbacks, housekeeping. They already share
   their work through PostgreSQL and Redis (see README "More than one process").
   ``HERALD_WORKER_ROLES`` gives each worker a role instead (``HERALD_ROLE``:
   ingress, egress or all, see :func:`gateway.runtime.services.build_services`);
4. restarts a worker that dies (after a pause that grows while it keeps dying),
   and on SIGINT / SIGTERM stops the workers, then the embedded servers.

Workers die with their parent (PR_SET_PDEATHSIG): a parent killed with
SIGKILL leaves no worker serving on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time

from config.settings import Settings
from gateway.base.embedded import die_with_parent, free_port

log = logging.getLogger("herald.workers")

RESTART_PAUSE = (0.5, 30.0)  # seconds before restarting a worker: first, and the cap
HEALTHY_AFTER = 60.0  # a worker that ran this long before dying restarts after the first pause


def worker_env(settings: Settings, index: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of worker ``index`` (1-based): the parent's, with what it settled."""
    env = dict(os.environ if base is None else base)
    env.update(
        DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url,
        HERALD_HTTP_PORT=str(settings.http_port), HERALD_SMPP_PORT=str(settings.smpp_port),
        HERALD_SHORT_PORT=str(settings.short_port),
        HERALD_WORKERS="1", HERALD_WORKER=str(index),
        HERALD_ROLE=settings.worker_roles[index - 1] if settings.worker_roles else "all",
    )
    env.pop("HERALD_WORKER_ROLES", None)
    return env


class Workers:
    """The parent's side: start, watch, restart and stop the worker processes."""

    def __init__(self, settings: Settings, *, check_every: float = 0.5) -> None:
        self.settings = settings
        self.check_every = check_every
        self.procs: dict[int, subprocess.Popen] = {}
        self._pause: dict[int, float] = {}
        self._since: dict[int, float] = {}

    def fix_ports(self) -> Settings:
        """Settings with concrete ports: every worker must bind the same ones."""
        s = self.settings
        self.settings = s.replace(
            http_port=s.http_port or free_port(s.http_host),
            smpp_port=s.smpp_port or free_port(s.smpp_host),
            short_port=s.short_port or free_port(s.short_host),
        )
        return self.settings

    def _spawn(self, index: int) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.runtime.cli", "serve"], env=worker_env(self.settings, index),
            preexec_fn=die_with_parent,
        )
        self.procs[index] = proc
        self._since[index] = time.monotonic()
        log.info("event=worker_started worker=%d pid=%d", index, proc.pid)

    def start(self) -> None:
        for index in range(1, self.settings.workers + 1):
            self._spawn(index)

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart dead workers until ``stop`` is set."""
        while not stop.is_set():
            for index, proc in list(self.procs.items()):
                code = proc.poll()
                if code is None:
                    continue
                if time.monotonic() - self._since[index] > HEALTHY_AFTER:
                    self._pause[index] = RESTART_PAUSE[0]
                pause = self._pause.get(index, RESTART_PAUSE[0])
                log.warning("event=worker_died worker=%d pid=%d code=%s restart_in=%.1f",
                            index, proc.pid, code, pause)
                self._pause[index] = min(pause * 2, RESTART_PAUSE[1])
                del self.procs[index]
                asyncio.get_running_loop().call_later(pause, self._respawn, index, stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.check_every)

    def _respawn(self, index: int, stop: asyncio.Event) -> None:
        if not stop.is_set() and index not in self.procs:
            self._spawn(index)

    async def stop(self, grace: float) -> None:
        """SIGTERM every worker, wait up to ``grace`` seconds, then SIGKILL what is left."""
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        deadline = asyncio.get_running_loop().time() + grace
        for index, proc in self.procs.items():
            left = max(0.1, deadline - asyncio.get_running_loop().time())
            try:
                await asyncio.to_thread(proc.wait, left)
            except subprocess.TimeoutExpired:
                log.warning("event=worker_killed worker=%d pid=%d", index, proc.pid)
                proc.kill()
                await asyncio.to_thread(proc.wait)
        self.procs.clear()
