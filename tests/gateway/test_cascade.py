"""The Viber→SMS cascade: TTL ran out or Viber failed → exactly one SMS, charged as SMS,
reported to the client under the Viber message's transaction id. Real servers throughout."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp

from billing.vendors import enabled_vendors
from gateway.accept.pipeline import Pipeline
from gateway.report.cascade import CascadeJob, linked_sms, sms_submission
from gateway.report.fallback import NOT_SENT, due_rows, fallback_due, fallback_reason
from gateway.send.connectors import Connectors
from gateway.send.viber_connector import ViberVendor
from gateway.store import queue
from gateway.store.messages import Status
from smpp.simulator import CarrierSimulator, SimConfig
from tests.gateway.smpp_stack import FAST as SMPP_FAST
from tests.gateway.smpp_stack import eventually
from tests.gateway.test_connectors import _message
from tests.gateway.test_viber import FAST as VIBER_FAST
from tests.gateway.test_viber import viber_stack, wait_callbacks, wait_status
from tests.gateway.world import RU_MOBILE, SENDER, balance
from viber.simulator import ViberSimConfig

CASCADE = {"channels": ["Viber", "SMS"], "fallbackTtl": 60}


def test_fallback_reason_and_the_sms_it_sends():
    accepted = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    viber = _message(channel="viber", fallback_channel="sms", fallback_ttl=60,
                     status=Status.SENT, created_at=accepted, sent_at=accepted + timedelta(seconds=30),
                     api_key_id=7, user_id=3, label="promo", callback_url="http://cb",
                     registered_delivery=1)
    # The TTL counts from acceptance, not from the send.
    assert fallback_due(viber) == accepted + timedelta(seconds=60)
    assert fallback_reason(viber, accepted + timedelta(seconds=59)) is None
    assert fallback_reason(viber, accepted + timedelta(seconds=60)) == "ttl"
    queued = replace(viber, status=Status.BILLED, sent_at=None)
    assert fallback_reason(queued, accepted + timedelta(seconds=59)) is None
    assert fallback_reason(queued, accepted + timedelta(seconds=60)) == "ttl"
    for status, reason in ((Status.UNDELIVERED, "undelivered"), (Status.FAILED, "failed"),
                           (Status.DELIVERED, None), (Status.SEEN, None)):
        assert fallback_reason(replace(viber, status=status), accepted) == reason
    assert fallback_reason(_message(channel="viber", status=Status.FAILED), accepted) is None
    sms = sms_submission(viber)
    assert (sms.channel, sms.sender, sms.destination, sms.text, sms.partner_id, sms.user_id,
            sms.api_key_id, sms.label, sms.callback_url, sms.registered_delivery) == (
        "sms", SENDER, RU_MOBILE, "hi", 1, 3, 7, "promo", "http://cb", 1)
    assert sms.fallback_for == viber.id and sms.fallback_channel is None and sms.client_ref is None


def test_fallback_due_counts_from_acceptance_or_a_later_schedule():
    accepted = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    kw = dict(channel="viber", fallback_channel="sms", fallback_ttl=600, created_at=accepted)
    assert fallback_due(_message(**kw)) == accepted + timedelta(minutes=10)
    later = accepted + timedelta(hours=2)
    assert fallback_due(_message(scheduled_for=later, **kw)) == later + timedelta(minutes=10)
    earlier = accepted - timedelta(hours=2)  # a schedule already past counts from acceptance
    assert fallback_due(_message(scheduled_for=earlier, **kw)) == accepted + timedelta(minutes=10)
    assert fallback_due(_message(channel="viber", created_at=accepted)) is None
    assert fallback_due(_message(channel="viber", fallback_channel="sms")) is None  # no TTL


def test_due_rows_follow_the_status():
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    sent = now - timedelta(seconds=10)
    kw = dict(channel="viber", fallback_channel="sms", fallback_ttl=60)
    # Sent: nothing to write, the row of its storing already says when it falls due.
    on_sent = _message(status=Status.SENT, sent_at=sent, **kw)
    failed = _message(status=Status.FAILED, **kw)
    seen = _message(status=Status.SEEN, **kw)
    no_ttl = _message(status=Status.SENT, sent_at=sent, channel="viber", fallback_channel="sms")
    plain = _message(status=Status.UNDELIVERED, channel="viber")
    due, settled = due_rows([on_sent, failed, seen, no_ttl, plain], now)
    assert due == [(failed.id, now)]
    assert settled == [seen.id]


async def _with_sms_carrier(stack, pool, redis):
    """A real SMPP carrier for the SMS the cascade sends (receipts after 50 ms)."""
    carrier = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await carrier.start()
    await pool.execute("UPDATE vendors SET smpp_port = $2, tps = 1000 WHERE id = $1",
                       stack.world.sms_vendor, carrier.port)
    connectors = Connectors(pool, redis, options=SMPP_FAST)
    stack.pipeline.add_listener(connectors.notify)
    await connectors.start()
    stack.others += [connectors, carrier]
    return carrier


async def _sms_of(pool, viber_id):
    return await pool.fetch("SELECT id, status, cost, fallback_for FROM messages "
                            "WHERE channel = 'sms' AND fallback_for = $1", viber_id)


async def test_ttl_runs_out_one_sms_charged_as_sms_reported_under_the_viber_id(
        pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client, ViberSimConfig(silent=1))
    try:
        carrier = await _with_sms_carrier(stack, pool, redis)
        viber_id = await stack.send(message="Your code is 4711", **CASCADE)
        assert await wait_status(pool, viber_id, ("SENT",)) == "SENT"
        row = await pool.fetchrow("SELECT cost, created_at, sent_at FROM messages WHERE id = $1",
                                  viber_id)
        viber_cost, due = row["cost"], row["created_at"] + timedelta(seconds=60)
        # Viber gives up when the SMS goes: the time left when it was sent, at most the TTL.
        assert due - row["sent_at"] <= timedelta(seconds=stack.sim.received[0]["ttl"]) <= (
            timedelta(seconds=60))
        # Due 60 s after Herald accepted it (written when stored, not moved by the send).
        assert await pool.fetchval("SELECT due_at FROM viber_cascade_due") == due

        one, two = CascadeJob(pool, stack.pipeline), CascadeJob(pool, stack.pipeline)
        assert (await one.run_once(due - timedelta(seconds=1))).sent == 0
        later = due
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


async def _queued(pool, message_id) -> str | None:
    """Who holds the message's send-queue row ('' for nobody), None when it has none."""
    row = await pool.fetchrow("SELECT claimed_by FROM send_queue WHERE message_id = $1", message_id)
    return None if row is None else row["claimed_by"] or ""


async def _unstarted_viber_vendor(pool, redis, stack, session) -> ViberVendor:
    """The world's Viber vendor with a send worker the test runs a pass of (run_once)."""
    async with pool.acquire() as conn:
        (vendor,) = [v for v in await enabled_vendors(conn, "viber")
                     if v.id == stack.world.viber_vendor]
    return ViberVendor(pool, redis, vendor, session=session, options=VIBER_FAST)


async def test_a_queued_message_never_sent_falls_back_at_its_ttl_once_and_is_refunded(
        pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client, ViberSimConfig(silent=1))
    try:
        await stack.viber.stop()  # no Viber send worker: what is sent waits in the queue
        carrier = await _with_sms_carrier(stack, pool, redis)
        plain = await stack.send(message="not a cascade")
        viber_id = await stack.send(message="Your code is 4711", **CASCADE)
        row = await pool.fetchrow("SELECT status, cost, created_at FROM messages WHERE id = $1",
                                  viber_id)
        plain_cost = await pool.fetchval("SELECT cost FROM messages WHERE id = $1", plain)
        assert row["status"] == "BILLED" and await _queued(pool, viber_id) == ""
        due = row["created_at"] + timedelta(seconds=60)
        # Written as it was stored (migration 0410), for the cascade message only.
        assert [tuple(r) for r in await pool.fetch(
            "SELECT viber_message_id, due_at FROM viber_cascade_due")] == [(viber_id, due)]
        assert await balance(pool, stack.world.partner_id) == (
            Decimal("100") - plain_cost - row["cost"])

        one, two = CascadeJob(pool, stack.pipeline), CascadeJob(pool, stack.pipeline)
        early = await one.run_once(due - timedelta(seconds=1))
        assert (early.sent, early.unsent) == (0, 0) and await _queued(pool, viber_id) == ""
        # Two processes at once: one takes it out of the queue, one SMS goes.
        results = await asyncio.gather(one.run_once(due), two.run_once(due))
        assert sorted((r.sent, r.unsent) for r in results) == [(0, 0), (1, 1)]
        again = await one.run_once(due + timedelta(hours=1))
        assert (again.sent, again.unsent, again.refused) == (0, 0, 0)

        viber = await pool.fetchrow("SELECT status, error_text, sent_at, done_at FROM messages "
                                    "WHERE id = $1", viber_id)
        assert (viber["status"], viber["error_text"], viber["sent_at"]) == ("FAILED", NOT_SENT, None)
        assert await _queued(pool, viber_id) is None and await _queued(pool, plain) == ""
        assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(viber_id)) == (
            "failed")
        assert await pool.fetchval("SELECT reason FROM viber_cascade") == "ttl"
        (sms,) = await _sms_of(pool, viber_id)
        assert await linked_sms(pool, viber_id) == sms["id"]
        # The Viber charge given back; the SMS charged as SMS.
        assert await balance(pool, stack.world.partner_id) == (
            Decimal("100") - plain_cost - sms["cost"])

        # Viber workers from now on have only the other message to send.
        await stack.viber.start()
        assert await wait_status(pool, plain, ("SENT",)) == "SENT"
        assert [r["reference"] for r in stack.sim.received] == [str(plain)]
        assert await wait_status(pool, sms["id"], ("DELIVERED",)) == "DELIVERED"
        assert [m.text for m in carrier.received] == ["Your code is 4711"]
        calls = await wait_callbacks(stack.rx, viber_id, 3)
        assert [(c["status"], c["channel"]) for c in calls] == [
            ("FAILED", "VIBER"), ("SENT", "SMS"), ("DELIVERED", "SMS")]
    finally:
        await stack.stop()


async def test_an_in_flight_message_is_left_to_its_worker_and_the_sms_goes_at_the_ttl(
        pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client, ViberSimConfig(silent=1))
    session = aiohttp.ClientSession()
    try:
        await stack.viber.stop()
        await _with_sms_carrier(stack, pool, redis)
        viber_id = await stack.send(**CASCADE)
        created = await pool.fetchval("SELECT created_at FROM messages WHERE id = $1", viber_id)
        due = created + timedelta(seconds=60)
        async with pool.acquire() as conn:  # a send worker holds it: it may be on the wire
            (claim,) = await queue.claim(conn, "worker-in-flight", 10, lease=600)
        assert claim.message_id == viber_id

        job = CascadeJob(pool, stack.pipeline)
        result = await job.run_once(due)
        assert (result.sent, result.unsent) == (1, 0)
        assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", viber_id) == "BILLED"
        assert await _queued(pool, viber_id) == "worker-in-flight"
        assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(viber_id)) == "open"
        assert await pool.fetchval("SELECT reason FROM viber_cascade") == "ttl"
        assert len(await _sms_of(pool, viber_id)) == 1

        # The worker gives it back (a retry) and a worker claims it after it fell due (by the
        # real clock: its acceptance moved back): not sent to Viber, FAILED and refunded.
        async with pool.acquire() as conn:
            assert await queue.retry_later(conn, "worker-in-flight", viber_id, 0)
            await conn.execute("UPDATE messages SET created_at = created_at - interval '2 minutes'"
                               " WHERE id = $1", viber_id)
        vendor = await _unstarted_viber_vendor(pool, redis, stack, session)
        assert await vendor.worker.run_once() == 1
        assert stack.sim.received == []
        row = await pool.fetchrow("SELECT status, error_text FROM messages WHERE id = $1", viber_id)
        assert (row["status"], row["error_text"]) == ("FAILED", NOT_SENT)
        assert await _queued(pool, viber_id) is None
        assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(viber_id)) == (
            "failed")
        # FAILED makes it due again at once: still the one SMS.
        assert (await job.run_once(due + timedelta(hours=1))).sent == 0
        assert len(await _sms_of(pool, viber_id)) == 1
    finally:
        await session.close()
        await stack.stop()


async def test_a_message_sent_late_gives_the_provider_the_time_left(
        pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client, ViberSimConfig(silent=1))
    try:
        await stack.viber.stop()
        viber_id = await stack.send(**{**CASCADE, "fallbackTtl": 600})
        # It waited 100 s in the queue before a worker took it (a backlog, a provider down).
        await pool.execute("UPDATE messages SET created_at = created_at - interval '100 seconds'"
                           " WHERE id = $1", viber_id)
        await stack.viber.start()
        assert await wait_status(pool, viber_id, ("SENT",)) == "SENT"
        row = await pool.fetchrow("SELECT created_at, sent_at FROM messages WHERE id = $1", viber_id)
        (request,) = stack.sim.received
        left = row["created_at"] + timedelta(seconds=600) - row["sent_at"]
        assert left <= timedelta(seconds=request["ttl"]) <= timedelta(seconds=500)
    finally:
        await stack.stop()


async def test_the_job_interval_is_the_process_setting(pool, redis, settings):
    pipeline = Pipeline(pool, redis, settings.replace(viber_cascade_poll=2.0))
    assert CascadeJob(pool, pipeline).interval == 2.0
    assert CascadeJob(pool, pipeline, interval=0.05).interval == 0.05


async def test_delivered_in_time_sends_no_sms(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.02, delivered=0, seen=1, seen_delay=0.02))
    try:
        viber_id = await stack.send(**CASCADE)
        assert await wait_status(pool, viber_id, ("SEEN",)) == "SEEN"
        assert await pool.fetchval("SELECT count(*) FROM viber_cascade_due") == 0
        created = await pool.fetchval("SELECT created_at FROM messages WHERE id = $1", viber_id)
        result = await CascadeJob(pool, stack.pipeline).run_once(created + timedelta(days=1))
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
