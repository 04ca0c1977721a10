"""What a short link leads to, answered from memory: the redirect service's read path.

The redirect must not wait for PostgreSQL on every click, so each process
keeps

* every short domain (host → id, enabled, brand portal), read at start and
  again every ``refresh`` seconds;
* the codes it was asked for lately, ``ttl`` seconds each (``miss_ttl`` for
  codes that do not exist, so a flood of made-up codes costs one lookup each
  per few seconds, not one per request), at most ``max_entries``.

A change that must show at once (a link archived, a domain added, switched
off or granted) calls :meth:`Resolver.changed`: this process forgets at once,
and a counter in Redis moves; every other process reads the counter each
``poll`` seconds (1 s) and forgets too when it moved. (A counter polled, not a
pub/sub channel: a blocked pub/sub read can swallow the cancellation that
stops a process.) Were Redis away, the TTLs bound how long a stale answer lives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from gateway.base import tasks
from shortener import domains, links

log = logging.getLogger("herald.shortener")

GENERATION_KEY = "herald:shortener:generation"


@dataclass(frozen=True, slots=True)
class DomainEntry:
    id: int
    host: str
    enabled: bool
    portal_id: int | None  # the portal whose brand its 404 page wears (None: the default)


def host_key(host: str) -> str:
    """A Host header as the domain table keys it: lower case, no port, no trailing dot."""
    host = host.lower()
    if host.startswith("["):
        return host
    return host.partition(":")[0].rstrip(".")


class Resolver:
    """Short domains and codes of this process (see the module doc)."""

    def __init__(self, pool: asyncpg.Pool, redis: aioredis.Redis | None = None, *, ttl: float = 30.0,
                 miss_ttl: float = 5.0, refresh: float = 10.0, poll: float = 1.0,
                 max_entries: int = 200_000) -> None:
        self.pool = pool
        self.redis = redis
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.refresh = refresh
        self.poll = poll
        self.max_entries = max_entries
        self.hosts: dict[str, DomainEntry] = {}
        self._codes: dict[tuple[int, str], tuple[float, links.Target | None]] = {}
        self._generation: bytes | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._generation = await self._read_generation()
        await self.load_hosts()
        self._task = asyncio.create_task(self._watch(), name="shortener-changes")

    async def stop(self) -> None:
        await tasks.cancel(self._task)
        self._task = None

    def domain(self, host: str) -> DomainEntry | None:
        """The short domain a request's Host names, or None (then it is not a short link)."""
        return self.hosts.get(host_key(host))

    async def target(self, domain_id: int, code: str) -> links.Target | None:
        """What the code leads to (archived and expired links included), or None."""
        key = (domain_id, code)
        now = time.monotonic()
        cached = self._codes.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await links.find_target(self.pool, domain_id, code)
        if len(self._codes) >= self.max_entries:
            # Oldest first (insertion order): drop a tenth in one go.
            for stale in list(self._codes)[: self.max_entries // 10]:
                del self._codes[stale]
        self._codes[key] = (now + (self.ttl if found else self.miss_ttl), found)
        return found

    def forget(self) -> None:
        """Drop every cached code (this process)."""
        self._codes.clear()

    async def load_hosts(self) -> None:
        rows = await domains.all_hosts(self.pool)
        self.hosts = {host: DomainEntry(i, host, enabled, portal) for host, (i, enabled, portal) in rows.items()}

    async def changed(self) -> None:
        """Links or domains changed: forget here and now, and tell the other processes."""
        self.forget()
        await self.load_hosts()
        if self.redis is not None:
            try:
                self._generation = str(await self.redis.incr(GENERATION_KEY)).encode()
            except Exception:  # the other processes catch up within the TTL
                log.warning("event=shortener_generation_failed", exc_info=True)

    async def _read_generation(self) -> bytes | None:
        if self.redis is None:
            return None
        try:
            return await self.redis.get(GENERATION_KEY)
        except Exception:
            log.warning("event=shortener_generation_unreadable", exc_info=True)
            return self._generation

    async def _watch(self) -> None:
        """Forget when another process changed something; read the domains again now and then."""
        loop = asyncio.get_running_loop()
        next_hosts = loop.time() + self.refresh
        while True:
            await asyncio.sleep(self.poll)
            try:
                generation = await self._read_generation()
                if generation != self._generation:
                    self._generation = generation
                    self.forget()
                    await self.load_hosts()
                    next_hosts = loop.time() + self.refresh
                elif loop.time() >= next_hosts:
                    await self.load_hosts()
                    next_hosts = loop.time() + self.refresh
            except Exception:
                log.warning("event=short_domains_refresh_failed", exc_info=True)
