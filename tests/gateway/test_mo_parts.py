"""Long MO messages whose parts wait in PostgreSQL: restarts, repeats, races, expiry."""

from __future__ import annotations

import asyncio

from gateway.accept.pipeline import Pipeline
from gateway.base.app import open_pool
from gateway.report.mo import MoHandler, add_template, join_parts
from smpp.pdu import DeliverSm
from smpp.udh import concat_udh
from tests.gateway.world import RU_MOBILE, SENDER, make_world, send_accepting_mo

SUBSCRIBER = "79160000001"


def part(seq: int, total: int, text: str, *, ref: int = 42, source: str = SUBSCRIBER) -> DeliverSm:
    return DeliverSm(source_addr=source, destination_addr=SENDER, esm_class=0x40, data_coding=0,
                     short_message=concat_udh(ref, total, seq) + text.encode())


def test_join_parts_orders_and_reports_gaps():
    rows = [{"seq": 3, "data_coding": 0, "payload": b"c"}, {"seq": 1, "data_coding": 0, "payload": b"a"}]
    assert join_parts(rows, 3) == ("ac", 2, False)
    assert join_parts([*rows, {"seq": 2, "data_coding": 0, "payload": b"b"}], 3) == ("abc", 3, True)


async def _mo(pool) -> list:
    return await pool.fetch("SELECT * FROM mo_messages ORDER BY received_at")


async def test_parts_survive_a_restart_and_repeats_count_once(pool, db_url):
    first = MoHandler(pool, None)
    await first.receive_pdu(1, part(2, 3, "middle "))
    await first.receive_pdu(1, part(2, 3, "middle "))     # the vendor sent it again
    await first.receive_pdu(1, part(1, 3, "Start "))
    assert await pool.fetchval("SELECT count(*) FROM mo_parts") == 2
    assert await _mo(pool) == []
    # The process dies; another one (its own pool) gets the last part.
    other_pool = await open_pool(db_url, 2)
    try:
        await MoHandler(other_pool, None).receive_pdu(1, part(3, 3, "end"))
    finally:
        await other_pool.close()
    (mo,) = await _mo(pool)
    assert (mo["text"], mo["parts"], mo["complete"], mo["vendor_id"]) == ("Start middle end", 3, True, 1)
    assert await _waiting(pool) == 0
    # A part repeated after the message was stored is recognised; the same reference with
    # other content is a new message.
    await first.receive_pdu(1, part(3, 3, "end"))
    assert await _waiting(pool) == 0 and len(await _mo(pool)) == 1
    await first.receive_pdu(1, part(1, 3, "Again "))
    assert await _waiting(pool) == 1
    await first.receive_pdu(1, part(2, 3, "and "))
    await first.receive_pdu(1, part(3, 3, "again"))
    assert [r["text"] for r in await _mo(pool)] == ["Start middle end", "Again and again"]


async def _waiting(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM mo_parts WHERE taken_at IS NULL")


async def test_parts_racing_in_two_processes_make_one_message(pool, db_url):
    other_pool = await open_pool(db_url, 4)
    try:
        handlers = [MoHandler(pool, None), MoHandler(other_pool, None)]
        for ref in range(5):
            parts = [part(seq, 4, f"p{seq} ", ref=ref) for seq in (1, 2, 3, 4, 4)]  # the last one twice
            await asyncio.gather(*(handlers[i % 2].receive_pdu(1, p) for i, p in enumerate(parts)))
    finally:
        await other_pool.close()
    rows = await _mo(pool)
    assert sorted(r["text"] for r in rows) == ["p1 p2 p3 p4 "] * 5
    assert await _waiting(pool) == 0


async def test_incomplete_sets_expire_as_partial_mo_without_actions(pool, redis, settings):
    world = await make_world(pool, mo_enabled=True)
    pipeline = Pipeline(pool, redis, settings)
    await pipeline.start()
    try:
        await send_accepting_mo(pipeline, world.partner_id)
        async with pool.acquire() as conn:
            await add_template(conn, world.partner_id, "info", "Herald info")
        handler = MoHandler(pool, pipeline, reassembly_timeout=0.3)
        await handler.receive_pdu(1, part(1, 2, "INFO please", source=RU_MOBILE))
        assert await handler.expire_parts() == []            # not old enough yet
        await asyncio.sleep(0.5)
        (expired,) = await handler.expire_parts()
        assert not expired.complete and expired.partner_id == world.partner_id
        (mo,) = await _mo(pool)
        assert (mo["text"], mo["parts"], mo["complete"]) == ("INFO please", 1, False)
        assert mo["reply_message_id"] is None and mo["template_id"] is None
        assert await pool.fetchval("SELECT count(*) FROM callback_outbox WHERE kind = 'mo'") == 0
        assert await _waiting(pool) == 0

        # A set that was complete when its process died (last part stored, MO not yet):
        # the next look at stale sets processes it like any whole MO, reply included.
        await pool.execute(
            """INSERT INTO mo_parts (source, destination, ref, total, seq, vendor_id, data_coding,
                                     payload, received_at)
               VALUES ($1, $2, 9, 2, 1, 1, 0, 'INFO '::bytea, now() - interval '1 minute'),
                      ($1, $2, 9, 2, 2, 1, 0, 'more'::bytea, now() - interval '1 minute')""",
            RU_MOBILE, SENDER)
        (whole,) = await handler.expire_parts()
        assert whole.complete and whole.reply_message_id is not None
        row = await pool.fetchrow("SELECT * FROM mo_messages WHERE id = $1", whole.id)
        assert (row["text"], row["parts"], row["complete"]) == ("INFO more", 2, True)
        assert await pool.fetchval("SELECT count(*) FROM callback_outbox WHERE kind = 'mo'") == 1
        # receive_pdu looks for stale sets too: an old lone part expires when the next MO comes.
        await pool.execute(
            """INSERT INTO mo_parts (source, destination, ref, total, seq, data_coding, payload,
                                     received_at)
               VALUES ('79160000002', $1, 3, 2, 2, 0, 'tail'::bytea, now() - interval '1 minute')""",
            SENDER)
        handler._next_expiry = 0.0
        await handler.receive_pdu(1, DeliverSm(source_addr="79160000003", destination_addr=SENDER,
                                               short_message=b"hello"))
        assert await pool.fetchval(
            "SELECT complete FROM mo_messages WHERE source = '79160000002'") is False
    finally:
        await pipeline.stop()
