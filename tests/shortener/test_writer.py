"""The click writer: batches stored whole, kept in memory while PostgreSQL is away, bounded."""

from __future__ import annotations

import contextlib

import pytest

from shortener import links
from shortener.writer import ClickWriter
from tests.shortener.test_pure import ANDROID, IPHONE
from tests.shortener.world import build

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FlakyPool:
    """A real pool that refuses its first ``failures`` acquisitions (PostgreSQL unreachable)."""

    def __init__(self, pool, failures: int) -> None:
        self.pool, self.failures = pool, failures

    @contextlib.asynccontextmanager
    async def acquire(self):
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionRefusedError("PostgreSQL is restarting")
        async with self.pool.acquire() as conn:
            yield conn


async def test_clicks_wait_for_postgresql_and_none_is_lost_or_doubled(pool):
    async with pool.acquire() as conn:
        world = await build(conn)
        link = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                       original_url="https://a.example/")
    code_id = await pool.fetchval("SELECT id FROM short_codes WHERE link_id = $1", link.id)
    written = []
    writer = ClickWriter(FlakyPool(pool, failures=2), batch=3, on_written=written.append)
    for n in range(7):
        writer.record(code_id, False, IPHONE if n % 2 else ANDROID, "https://mail.example/", "ES")
    writer.record(code_id, True, IPHONE, "", "")  # a HEAD: counted apart
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            await writer.flush()
        assert writer.pending == 8  # kept, in order
    assert await writer.flush() == 8
    assert written == [3, 3, 2] and writer.pending == 0
    rows = await pool.fetch("SELECT os, bot, referrer, country FROM short_clicks ORDER BY id")
    assert len(rows) == 8 and sum(r["bot"] for r in rows) == 1
    assert {r["os"] for r in rows} == {"iOS", "Android"} and rows[0]["country"] == "ES"
    counters = await pool.fetchrow("SELECT clicks, bot_clicks FROM short_links WHERE id = $1", link.id)
    assert (counters["clicks"], counters["bot_clicks"]) == (7, 1)
    # the loop, then a clean stop: what was recorded last is stored too
    await writer.start()
    writer.record(code_id, False, IPHONE, "", "")
    await writer.stop()
    assert await pool.fetchval("SELECT count(*) FROM short_clicks") == 9


async def test_a_long_outage_drops_the_oldest_clicks_and_counts_them(pool):
    dropped = []
    writer = ClickWriter(FlakyPool(pool, failures=10), max_pending=5, on_dropped=dropped.append)
    for n in range(8):
        writer.record(n, False, IPHONE, "", "")
    with pytest.raises(ConnectionRefusedError):
        await writer.flush()
    assert writer.pending == 5 and writer.dropped == 3 and dropped == [3]
