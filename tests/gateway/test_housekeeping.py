"""Periodic chores: expired sender IDs, stale MO part sets, receipts that came early."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from accounts import senders
from accounts.tenancy import load_scope, owner_scope
from gateway.report import early_receipts
from gateway.report.mo import MoHandler
from gateway.runtime.housekeeping import Housekeeping, reapply_receipts, run_chores
from gateway.send.delivery import ReceiptWriter
from gateway.store import messages as m
from gateway.store.messages import Event, ReceiptUpdate
from smpp.pdu import DeliverSm
from smpp.udh import concat_udh
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
    assert (await run_chores(pool, now))["sender_ids_expired"] == 0
    later = now + timedelta(hours=2)
    assert (await run_chores(pool, later))["sender_ids_expired"] == 1
    assert (await run_chores(pool, later))["sender_ids_expired"] == 0
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


# MO part sets whose other parts never come (gateway.report.mo, migration 0361).

def _part(seq: int, total: int, text: str, ref: int = 7):
    return DeliverSm(source_addr="79160000009", destination_addr="Shop", esm_class=0x40,
                     data_coding=0, short_message=concat_udh(ref, total, seq) + text.encode())


async def test_chores_expire_stale_mo_part_sets_without_new_traffic(pool):
    handler = MoHandler(pool, pipeline=None, reassembly_timeout=60.0)
    await handler.receive_pdu(1, _part(1, 3, "Hello "))
    await handler.receive_pdu(1, _part(2, 3, "there"))
    now = datetime.now(UTC)
    assert (await run_chores(pool, now, mo=handler))["mo_sets_expired"] == 0   # still waiting
    assert await pool.fetchval("SELECT count(*) FROM mo_messages") == 0
    later = now + timedelta(seconds=61)   # the timeout has passed, and no MO came since
    assert (await run_chores(pool, later, mo=handler))["mo_sets_expired"] == 1
    mo = await pool.fetchrow("SELECT * FROM mo_messages")
    assert (mo["text"], mo["parts"], mo["complete"]) == ("Hello there", 2, False)
    assert mo["vendor_id"] == 1 and mo["action"] is None
    assert (await run_chores(pool, later, mo=handler))["mo_sets_expired"] == 0  # stored once


# Receipts that came before their message's vendor id (gateway.report.early_receipts, migration 0381).

async def _sent_message(pool, world, vendor_message_id: str | None):
    msg = m.NewMessage(partner_id=world.partner_id, origin="api", sender="S",
                       destination="35799000001", status=m.Status.BILLED,
                       callback_url="http://127.0.0.1:9/cb")
    async with pool.acquire() as conn:
        await m.insert_messages(conn, [msg])
        if vendor_message_id:
            await m.mark_sent(conn, msg.id, vendor_id=world.sms_vendor,
                              vendor_message_id=vendor_message_id)
    return msg


async def test_early_receipts_apply_once_found_and_drop_past_the_horizon(pool, caplog):
    world = await make_world(pool, name="Early")
    now = datetime.now(UTC)
    vendor = world.sms_vendor
    waiting = await _sent_message(pool, world, None)
    await early_receipts.store(pool, ReceiptUpdate(vendor, "late-1", Event.DELIVERED, now))
    await early_receipts.store(pool, ReceiptUpdate(vendor, "never", Event.UNDELIVERED, now),
                               received_at=now - timedelta(hours=25))
    writer = ReceiptWriter(pool)
    await writer.start()
    try:
        with caplog.at_level("WARNING", logger="herald.early_receipts"):
            done = await reapply_receipts(pool, writer, now, horizon=24 * 3600)
        assert done == {"early_receipts_applied": 0, "early_receipts_dropped": 1}
        assert "event=early_receipt_dropped" in caplog.text and "id=never" in caplog.text
        assert await pool.fetchval("SELECT receipted_id FROM early_receipts") == "late-1"

        async with pool.acquire() as conn:
            await m.mark_sent(conn, waiting.id, vendor_id=vendor, vendor_message_id="late-1")
        done = await reapply_receipts(pool, writer, now, horizon=24 * 3600)
        assert done["early_receipts_applied"] == 1
        row = await pool.fetchrow("SELECT status, done_at FROM messages WHERE id = $1", waiting.id)
        assert row["status"] == "DELIVERED" and row["done_at"] == now  # the receipt's own time
        assert await pool.fetchval("SELECT count(*) FROM early_receipts") == 0

        # A stored receipt for a message already past it is cleared without moving it back.
        await early_receipts.store(pool, ReceiptUpdate(vendor, "late-1", Event.UNDELIVERED, now))
        reports = await pool.fetchval("SELECT count(*) FROM callback_outbox")
        done = await reapply_receipts(pool, writer, now, horizon=24 * 3600)
        assert done["early_receipts_applied"] == 1
        assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", waiting.id) \
            == "DELIVERED"
        assert await pool.fetchval("SELECT count(*) FROM callback_outbox") == reports
    finally:
        await writer.stop()


async def test_service_applies_early_receipts_on_its_short_timer(pool):
    world = await make_world(pool, name="Timer")
    await early_receipts.store(pool, ReceiptUpdate(world.sms_vendor, "t-1", Event.DELIVERED,
                                                   datetime.now(UTC)))
    msg = await _sent_message(pool, world, "t-1")
    writer = ReceiptWriter(pool)
    await writer.start()
    service = Housekeeping(pool, interval=3600, receipts=writer, receipt_interval=0.05)
    await service.start()
    try:
        for _ in range(100):
            if await pool.fetchval("SELECT status FROM messages WHERE id = $1", msg.id) == "DELIVERED":
                break
            await asyncio.sleep(0.05)
        assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", msg.id) == "DELIVERED"
    finally:
        await service.stop()
        await writer.stop()
