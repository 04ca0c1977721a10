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
and a message on a Redis channel makes every other process forget too. Were
that message lost, the TTLs bound how long a stale answer can live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from gateway.base import tasks
from shortener import domains, links

log = logging.getLogger("herald.shortener")

CHANNEL = "herald:shortener:changed"


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
                 miss_ttl: float = 5.0, refresh: float = 10.0, max_entries: int = 200_000) -> None:
        self.pool = pool
        self.redis = redis
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self.refresh = refresh
        self.max_entries = max_entries
        self.hosts: dict[str, DomainEntry] = {}
        self._codes: dict[tuple[int, str], tuple[float, links.Target | None]] = {}
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        await self.load_hosts()
        self._tasks.append(asyncio.create_task(self._refresh_loop(), name="shortener-hosts"))
        if self.redis is not None:
            self._tasks.append(asyncio.create_task(self._listen(), name="shortener-changes"))

    async def stop(self) -> None:
        for task in self._tasks:
            await tasks.cancel(task)
        self._tasks.clear()

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
                await self.redis.publish(CHANNEL, b"changed")
            except Exception:  # the other processes catch up within the TTL
                log.warning("event=shortener_publish_failed", exc_info=True)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh)
            try:
                await self.load_hosts()
            except Exception:
                log.warning("event=short_domains_refresh_failed", exc_info=True)

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.forget()
                        await self.load_hosts()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("event=shortener_listen_failed", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
