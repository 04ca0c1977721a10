"""Periodic chores: a sender ID past its validity period stops being usable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from billing import senders
from billing.tenancy import load_scope, owner_scope
from gateway.housekeeping import Housekeeping, run_chores
from tests.gateway.world import make_world


async def _enabled_sender(pool, valid_until: datetime) -> tuple[int, int]:
    world = await make_world(pool, name="Expiring")
    async with pool.acquire() as conn:
        scope = await load_scope(conn, world.partner_id, world.user_id)
        sid = await senders.request_sender_id(conn, scope, channel="sms", sender="Shortlived")
        await senders.approve(conn, await owner_scope(conn), sid.id, valid_until=valid_until)
    return world.partner_id, sid.id


async def test_chores_expire_sender_ids_once(pool):
    now = datetime.now(UTC)
    partner_id, sid = await _enabled_sender(pool, now + timedelta(hours=1))
    async with pool.acquire() as conn:
        assert await senders.is_usable(conn, partner_id, "sms", "Shortlived", now)
    assert await run_chores(pool, now) == {"sender_ids_expired": 0}
    later = now + timedelta(hours=2)
    assert await run_chores(pool, later) == {"sender_ids_expired": 1}
    assert await run_chores(pool, later) == {"sender_ids_expired": 0}
    async with pool.acquire() as conn:
        assert not await senders.is_usable(conn, partner_id, "sms", "Shortlived", later)
        row = await conn.fetchrow("SELECT status, state FROM sender_ids WHERE id = $1", sid)
        assert (row["status"], row["state"]) == ("disabled", "unsubscribed")
        assert await conn.fetchval(
            "SELECT count(*) FROM sender_id_events WHERE sender_id_id = $1 AND action = 'expired'", sid) == 1


async def test_service_runs_chores_until_stopped(pool):
    _, sid = await _enabled_sender(pool, datetime.now(UTC) + timedelta(seconds=1))
    service = Housekeeping(pool, interval=0.2)
    await service.start()
    try:
        for _ in range(50):
            if await pool.fetchval("SELECT status FROM sender_ids WHERE id = $1", sid) == "disabled":
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT status FROM sender_ids WHERE id = $1", sid) == "disabled"
    finally:
        await service.stop()
    assert service._task.done()
