"""The Viber→SMS cascade: TTL ran out or Viber failed → exactly one SMS, charged as SMS,
reported to the client under the Viber message's transaction id. Real servers throughout."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateway.cascade import (
    CascadeJob,
    due_rows,
    fallback_reason,
    linked_sms,
    sms_submission,
)
from gateway.connectors import Connectors
from gateway.messages import Status
from gateway.receipts_out import status_many_hook
from gateway.simulator import CarrierSimulator, SimConfig
from tests.gateway.smpp_stack import FAST as SMPP_FAST
from tests.gateway.smpp_stack import eventually
from tests.gateway.test_connectors import _message
from tests.gateway.test_viber import viber_stack, wait_callbacks, wait_status
from tests.gateway.world import RU_MOBILE, SENDER, balance
from viber.simulator import ViberSimConfig

CASCADE = {"channels": ["Viber", "SMS"], "fallbackTtl": 60}


def test_fallback_reason_and_the_sms_it_sends():
    sent = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    viber = _message(channel="viber", fallback_channel="sms", fallback_ttl=60,
                     status=Status.SENT, sent_at=sent, api_key_id=7, user_id=3, label="promo",
                     callback_url="http://cb", registered_delivery=1)
    assert fallback_reason(viber, sent + timedelta(seconds=59)) is None
    assert fallback_reason(viber, sent + timedelta(seconds=60)) == "ttl"
    for status, reason in ((Status.UNDELIVERED, "undelivered"), (Status.FAILED, "failed"),
                           (Status.DELIVERED, None), (Status.SEEN, None), (Status.BILLED, None)):
        assert fallback_reason(_message(channel="viber", fallback_channel="sms", fallback_ttl=60,
                                        status=status), sent) == reason
    assert fallback_reason(_message(channel="viber", status=Status.FAILED), sent) is None
    sms = sms_submission(viber)
    assert (sms.channel, sms.sender, sms.destination, sms.text, sms.partner_id, sms.user_id,
            sms.api_key_id, sms.label, sms.callback_url, sms.registered_delivery) == (
        "sms", SENDER, RU_MOBILE, "hi", 1, 3, 7, "promo", "http://cb", 1)
    assert sms.client_ref == f"cascade:{viber.id}" and sms.fallback_channel is None


def test_due_rows_follow_the_status():
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    sent = now - timedelta(seconds=10)
    kw = dict(channel="viber", fallback_channel="sms", fallback_ttl=60)
    on_sent = _message(status=Status.SENT, sent_at=sent, **kw)
    failed = _message(status=Status.FAILED, **kw)
    seen = _message(status=Status.SEEN, **kw)
    no_ttl = _message(status=Status.SENT, sent_at=sent, channel="viber", fallback_channel="sms")
    plain = _message(status=Status.UNDELIVERED, channel="viber")
    due, settled = due_rows([on_sent, failed, seen, no_ttl, plain], now)
    assert due == [(on_sent.id, sent + timedelta(seconds=60)), (failed.id, now)]
    assert settled == [seen.id]


async def _with_sms_carrier(stack, pool, redis):
    """A real SMPP carrier for the SMS the cascade sends (receipts after 50 ms)."""
    carrier = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await carrier.start()
    await pool.execute("UPDATE vendors SET smpp_port = $2, tps = 1000 WHERE id = $1",
                       stack.world.sms_vendor, carrier.port)
    connectors = Connectors(pool, redis, on_change=status_many_hook(), options=SMPP_FAST)
    stack.pipeline.add_listener(connectors.notify)
    await connectors.start()
    stack.others += [connectors, carrier]
    return carrier


async def _sms_of(pool, viber_id):
    return await pool.fetch("SELECT id, status, cost, client_ref FROM messages "
                            "WHERE channel = 'sms' AND client_ref = $1", f"cascade:{viber_id}")


async def test_ttl_runs_out_one_sms_charged_as_sms_reported_under_the_viber_id(
        pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client, ViberSimConfig(silent=1))
    try:
        carrier = await _with_sms_carrier(stack, pool, redis)
        viber_id = await stack.send(message="Your code is 4711", **CASCADE)
        assert await wait_status(pool, viber_id, ("SENT",)) == "SENT"
        assert stack.sim.received[0]["ttl"] == 60  # Viber gives up when the SMS goes
        viber_cost = await pool.fetchval("SELECT cost FROM messages WHERE id = $1", viber_id)
        sent_at = await pool.fetchval("SELECT sent_at FROM messages WHERE id = $1", viber_id)
        assert await pool.fetchval("SELECT due_at FROM viber_cascade_due") == (
            sent_at + timedelta(seconds=60))

        one, two = CascadeJob(pool, stack.pipeline), CascadeJob(pool, stack.pipeline)
        assert (await one.run_once(sent_at + timedelta(seconds=59))).sent == 0
        later = sent_at + timedelta(seconds=61)
        # Two processes at once: one claim goes in, one SMS.
        results = await asyncio.gather(one.run_once(later), two.run_once(later))
        assert sorted(r.sent for r in results) == [0, 1]
        assert (await one.run_once(later + timedelta(hours=1))).sent == 0
        assert await pool.fetchval("SELECT count(*) FROM viber_cascade_due") == 0
        (sms,) = await _sms_of(pool, viber_id)
        assert await linked_sms(pool, viber_id) == sms["id"]
        assert await pool.fetchval("SELECT reason FROM viber_cascade") == "ttl"
        assert sms["cost"] == Decimal("0.05")  # the SMS rate of 250/01, not Viber's
        assert await balance(pool, stack.world.partner_id) == Decimal("100") - viber_cost - sms["cost"]

        assert await wait_status(pool, sms["id"], ("DELIVERED",)) == "DELIVERED"
        assert [m.text for m in carrier.received] == ["Your code is 4711"]
        calls = await wait_callbacks(stack.rx, viber_id, 3)
        assert [(c["status"], c["channel"]) for c in calls] == [
            ("SENT", "VIBER"), ("SENT", "SMS"), ("DELIVERED", "SMS")]
        assert not any(c["body"]["transactionID"] == str(sms["id"]) for c in stack.rx.accepted)

        # A process that died after claiming: the claim is taken over, the SMS found, none added.
        await pool.execute("UPDATE viber_cascade SET state = 'claimed', sms_message_id = NULL, "
                           "claimed_until = $1", later)
        result = await one.run_once(later + timedelta(minutes=5))
        assert (result.recovered, result.sent) == (1, 0)
        assert len(await _sms_of(pool, viber_id)) == 1
        assert await linked_sms(pool, viber_id) == sms["id"]
    finally:
        await stack.stop()


async def test_delivered_in_time_sends_no_sms(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.02, delivered=0, seen=1, seen_delay=0.02))
    try:
        viber_id = await stack.send(**CASCADE)
        assert await wait_status(pool, viber_id, ("SEEN",)) == "SEEN"
        assert await pool.fetchval("SELECT count(*) FROM viber_cascade_due") == 0
        sent_at = await pool.fetchval("SELECT sent_at FROM messages WHERE id = $1", viber_id)
        result = await CascadeJob(pool, stack.pipeline).run_once(sent_at + timedelta(days=1))
        assert result.sent == 0
        assert await _sms_of(pool, viber_id) == []
        assert await pool.fetchval("SELECT count(*) FROM viber_cascade") == 0
    finally:
        await stack.stop()


async def test_undelivered_falls_back_at_once_and_a_refused_sms_is_recorded(
        pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.02, delivered=0, undelivered=1))
    try:
        first = await stack.send(**CASCADE)
        no_cascade = await stack.send()  # Viber only: never falls back
        for mid in (first, no_cascade):
            assert await wait_status(pool, mid, ("UNDELIVERED",)) == "UNDELIVERED"
        job = CascadeJob(pool, stack.pipeline)
        assert (await job.run_once()).sent == 1  # no waiting for the TTL
        (sms,) = await _sms_of(pool, first)
        assert sms["status"] == "BILLED"
        assert await pool.fetchval("SELECT reason FROM viber_cascade") == "undelivered"
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE channel = 'sms'") == 1

        # Out of money when the SMS is due: refused, recorded, not tried again.
        second = await stack.send(**CASCADE)
        assert await wait_status(pool, second, ("UNDELIVERED",)) == "UNDELIVERED"
        await pool.execute("UPDATE partners SET balance = 0 WHERE id = $1", stack.world.partner_id)
        assert (await job.run_once()).refused == 1
        row = await pool.fetchrow("SELECT state, error, sms_message_id FROM viber_cascade "
                                  "WHERE viber_message_id = $1", second)
        assert row["state"] == "refused" and row["sms_message_id"] is None and row["error"]
        assert (await job.run_once()).refused == 0
        assert await _sms_of(pool, second) == []
    finally:
        await stack.stop()


async def test_the_service_falls_back_on_its_own(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.02, delivered=0, failed=1))
    job = CascadeJob(pool, stack.pipeline, interval=0.05)
    await job.start()
    try:
        viber_id = await stack.send(**CASCADE)
        assert await wait_status(pool, viber_id, ("FAILED",)) == "FAILED"
        async def linked() -> bool:
            return await linked_sms(pool, viber_id) is not None

        await eventually(linked, within=10)
        assert isinstance(await linked_sms(pool, viber_id), uuid.UUID)
    finally:
        await job.stop()
        await stack.stop()
