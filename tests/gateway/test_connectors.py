"""Vendor connectors against the carrier simulator: retry, failover, refund, receipts, MO."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal

import pytest

from accounts.tenancy import owner_scope
from billing.vendors import NewVendor, create_vendor
from gateway.accept import routing, stoplist
from gateway.report.mo import add_template
from gateway.send.connectors import build_submits, classify
from gateway.send.delivery import Accepted, Failover, Retry
from gateway.store.messages import Message, Status
from smpp.pdu import CommandStatus, SubmitSm, SubmitSmResp
from smpp.results import Outcome, RequestResult
from smpp.simulator import SimConfig
from smpp.udh import parse_udh
from tests.gateway.smpp_stack import Esme, build_stack, eventually
from tests.gateway.world import RU_MOBILE, SENDER, balance, send_accepting_mo

S = CommandStatus


def _result(outcome, status=0, mid="") -> RequestResult:
    resp = SubmitSmResp(command_status=status, message_id=mid) if outcome is not Outcome.UNKNOWN else None
    return RequestResult(outcome, SubmitSm(), resp)


def test_classify_maps_vendor_answers():
    assert classify([_result(Outcome.ACCEPTED, 0, "a1")]) == Accepted("a1", None)
    assert isinstance(classify([_result(Outcome.REJECTED, S.ESME_RTHROTTLED)]), Retry)
    assert isinstance(classify([_result(Outcome.REJECTED, S.ESME_RMSGQFUL)]), Retry)
    assert isinstance(classify([_result(Outcome.UNKNOWN)]), Retry)
    assert isinstance(classify([_result(Outcome.REJECTED, S.ESME_RINVDSTADR)]), Failover)
    two = classify([_result(Outcome.ACCEPTED, 0, "1f"), _result(Outcome.ACCEPTED, 0, "zz-2")])
    assert two.vendor_message_id == "1f" and "=zz-2" in two.keys and "#31" in two.keys


def _message(**kw) -> Message:
    from datetime import UTC, datetime
    now = datetime.now(UTC)
    base = dict(id=uuid.uuid4(), partner_id=1, user_id=None, api_key_id=None, smpp_account_id=None,
                smpp_session=None, origin="api", channel="sms", sender=SENDER, destination=RU_MOBILE,
                mccmnc=None, text="hi", parts=1, encoding="gsm7", data_coding=0, flash=False,
                accept_mo=False, cost=Decimal(0), currency=None, charge_ref=None, label="",
                campaign_id=None, client_ref=None, status=Status.BILLED, vendor_id=None,
                vendor_message_id=None, vendor_message_key=None, vendor_match_keys=None,
                error_code=None, error_text=None, registered_delivery=0, callback_url=None,
                valid_until=None, created_at=now, billed_at=now, sent_at=None, done_at=None,
                seen_at=None, updated_at=now)
    base.update(kw)
    return Message(**base)


def test_build_submits_splits_long_text_and_keeps_client_parts():
    long = build_submits(_message(text="x" * 200), reference=9)
    assert len(long) == 2 and all(p.esm_class == 0x40 for p in long)
    assert parse_udh(long[1].short_message).concat.sequence == 2
    part = build_submits(_message(text="half", concat_ref=7, concat_total=3, concat_seq=2,
                                  concat_wide=False), reference=1)
    (pdu,) = part
    concat = parse_udh(pdu.short_message).concat
    assert (concat.reference, concat.total, concat.sequence, concat.wide_reference) == (7, 3, 2, False)
    (wide,) = build_submits(_message(text="half", concat_ref=300, concat_total=2, concat_seq=1,
                                     concat_wide=True), reference=1)
    concat = parse_udh(wide.short_message).concat
    assert (concat.reference, concat.wide_reference) == (300, True)
    assert build_submits(_message(text="Привет", encoding="ucs2"), reference=1)[0].data_coding == 8


@pytest.mark.parametrize(("text", "encoding", "flash"), [
    ("hi", "gsm7", False), ("x" * 160, "gsm7", False), ("x" * 161, "gsm7", False),
    ("{}" * 80, "gsm7", False), ("{}" * 81, "gsm7", False), ("Я" * 70, "ucs2", False),
    ("Я" * 71, "ucs2", False), ("é" * 140, "latin1", False), ("é" * 141, "latin1", False),
    ("flash", "gsm7", True), ("Я", "gsm7", False),
])
def test_build_submits_matches_split_message(text, encoding, flash):
    from smpp.encoding import UnencodableError
    from smpp.segments import encode_text, split_message

    message = _message(text=text, encoding=encoding, flash=flash)
    try:
        encoded = encode_text(text, encoding, flash=flash)
    except UnencodableError:
        encoded = encode_text(text, "ucs2", flash=flash)
    split = split_message(encoded, reference=3)
    pdus = build_submits(message, reference=3)
    assert [(p.short_message, p.esm_class, p.data_coding) for p in pdus] == [
        (seg.short_message, 0x40 if seg.udhi else 0, split.data_coding) for seg in split.segments]


async def _wait_status(pool, message_id, statuses, within=10.0) -> str:
    async with asyncio.timeout(within):
        while True:
            status = await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
            if status in statuses:
                return status
            await asyncio.sleep(0.05)


async def test_throttled_then_accepted(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.05, throttle_ratio=0.5, seed=3))
    try:
        client = await stack.client()
        ids = []
        for i in range(20):
            r = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                             short_message=f"m{i}".encode()))
            ids.append(uuid.UUID(r.message_id))
        for mid in ids:
            assert await _wait_status(pool, mid, ("DELIVERED",)) == "DELIVERED"
        assert stack.sim.counters.throttled > 0
        assert sorted(r.text for r in stack.sim.received) == sorted(f"m{i}" for i in range(20))
    finally:
        await stack.stop()


async def test_permanent_error_fails_over_then_fails_and_refunds(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(reject_ratio=1.0))
    try:
        client = await stack.client()
        r = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                         short_message=b"doomed", registered_delivery=1))
        mid = uuid.UUID(r.message_id)
        assert await _wait_status(pool, mid, ("FAILED",)) == "FAILED"
        assert await balance(pool, stack.world.partner_id) == Decimal("100.00")
        assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(mid)) == "failed"
    finally:
        await stack.stop()


async def test_failover_to_the_second_vendor(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(reject_ratio=1.0))
    from smpp.simulator import CarrierSimulator
    good = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await good.start()
    try:
        async with pool.acquire() as conn:
            owner = await owner_scope(conn)
            backup = await create_vendor(conn, owner, NewVendor(
                name="backup", smpp_host="127.0.0.1", smpp_port=good.port, system_id="herald"))
            await routing.add_route(conn, routing.Route("sms", backup.id, priority=200))
        stack.pipeline.invalidate()
        await stack.connectors.sync()
        client = await stack.client()
        r = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                         short_message=b"via backup"))
        mid = uuid.UUID(r.message_id)
        assert await _wait_status(pool, mid, ("DELIVERED",)) == "DELIVERED"
        assert [m.text for m in good.received] == ["via backup"]
        assert await pool.fetchval("SELECT vendor_id FROM messages WHERE id = $1", mid) == backup.id
    finally:
        await stack.stop()
        await good.stop()


async def test_undelivered_receipt_reaches_the_client(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.05, delivered=0, undelivered=1))
    try:
        esme = Esme()
        client = await stack.client(handler=esme)
        r = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                         short_message=b"lost", registered_delivery=1))
        await esme.wait(lambda: esme.receipts)
        assert b"stat:UNDELIV" in esme.receipts[0].short_message
        assert await pool.fetchval("SELECT status FROM messages WHERE id = $1",
                                   uuid.UUID(r.message_id)) == "UNDELIVERED"
    finally:
        await stack.stop()


async def test_carrier_disconnects_and_goes_silent_nothing_lost(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.05, disconnect_every=12))
    try:
        client = await stack.client(window=20)
        ids = []
        for i in range(30):
            r = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                             short_message=f"d{i}".encode()))
            ids.append(uuid.UUID(r.message_id))
            if i == 10:
                stack.sim.go_silent()
            if i == 20:
                await asyncio.sleep(1.5)   # longer than the response timeout
                stack.sim.speak()
        finals = [await _wait_status(pool, mid, ("DELIVERED", "FAILED"), within=30) for mid in ids]
        texts = {r.text for r in stack.sim.received}
        for i, (mid, final) in enumerate(zip(ids, finals, strict=True)):
            if final == "DELIVERED":
                assert f"d{i}" in texts
            else:  # the link dropped under it too often: failed, and nobody paid for it
                assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(mid)) == "failed"
        assert finals.count("DELIVERED") >= 20
        assert stack.sim.counters.disconnects > 0
        assert await pool.fetchval("SELECT count(*) FROM send_queue") == 0
    finally:
        await stack.stop()


async def test_mo_reply_stop_and_forward(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.05))
    try:
        async with pool.acquire() as conn:
            await add_template(conn, stack.world.partner_id, "info, more", "Herald info: see site")
        esme = Esme()
        client = await stack.client(handler=esme)
        await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                     short_message=b"first MT"))
        await eventually(lambda: stack.sim.received)
        long_text = "INFO " + "please tell me more " * 10   # three parts
        assert await stack.sim.send_mo(RU_MOBILE, SENDER, long_text) == [Outcome.ACCEPTED] * 2
        mo = await pool.fetchrow("SELECT * FROM mo_messages")
        assert mo["partner_id"] == stack.world.partner_id and mo["text"] == long_text
        assert mo["parts"] == 2 and mo["reply_message_id"] is not None
        reply = await pool.fetchrow("SELECT * FROM messages WHERE id = $1", mo["reply_message_id"])
        assert reply["label"] == "Reply to MO" and reply["text"] == "Herald info: see site"
        await esme.wait(lambda: esme.mo)
        assert esme.mo[0].source_addr == RU_MOBILE
        await stack.sim.send_mo(RU_MOBILE, SENDER, "STOP")
        async with pool.acquire() as conn:
            assert await stoplist.stopped(conn, [(stack.world.partner_id, SENDER, RU_MOBILE)])
        refused = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                               short_message=b"after stop"))
        assert refused.status != S.ESME_ROK
        await stack.sim.send_mo(RU_MOBILE, SENDER, "START")
        async with pool.acquire() as conn:
            assert not await stoplist.stopped(conn, [(stack.world.partner_id, SENDER, RU_MOBILE)])
        # an MO nobody's MT explains is kept without an owner
        await stack.sim.send_mo("79169999999", SENDER, "hello?")
        assert await pool.fetchval(
            "SELECT partner_id FROM mo_messages WHERE source = '79169999999'") is None
    finally:
        await stack.stop()


async def test_mo_to_an_api_message_goes_to_its_callback_url(pool, redis, settings):
    import json

    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=5))
    try:
        mt = await send_accepting_mo(stack.pipeline, stack.world.partner_id, "reply to me")
        result = await stack.connectors.mo.receive(None, RU_MOBILE, SENDER, "Yes please")
        assert result.partner_id == stack.world.partner_id
        row = await pool.fetchrow("SELECT * FROM callback_outbox WHERE kind = 'mo'")
        body = json.loads(row["body"])
        assert row["url"] == "http://127.0.0.1:9/cb"
        assert (body["transactionID"], body["dnis"], body["message"]) == (
            str(mt.message_id), RU_MOBILE, "Yes please")
        assert await pool.fetchval("SELECT count(*) FROM smpp_outbox") == 0  # not an SMPP client's
    finally:
        await stack.stop()


def test_receipt_row_follows_registered_delivery():
    from gateway.report.receipts_out import receipt_row
    from smpp.pdu import MessageState
    from smpp.receipts import parse_receipt

    done = _message(smpp_account_id=5, registered_delivery=1, status=Status.DELIVERED)
    row = receipt_row(done)
    assert row.smpp_account_id == 5 and row.message_state == MessageState.DELIVERED
    assert row.source_addr == RU_MOBILE and row.destination_addr == SENDER
    assert parse_receipt(row.short_message).message_id == str(done.id)
    assert receipt_row(_message(smpp_account_id=5, registered_delivery=0, status=Status.DELIVERED)) is None
    assert receipt_row(_message(smpp_account_id=None, registered_delivery=1, status=Status.DELIVERED)) is None
    assert receipt_row(_message(smpp_account_id=5, registered_delivery=1, status=Status.SENT)) is None
    on_failure = dict(smpp_account_id=5, registered_delivery=2)
    assert receipt_row(_message(**on_failure, status=Status.DELIVERED)) is None
    failed = receipt_row(_message(**on_failure, status=Status.FAILED, error_code="00000045"))
    assert failed.message_state == MessageState.REJECTED
    assert parse_receipt(failed.short_message).error == "045"


async def test_receipt_before_the_submit_resp_is_kept_and_applied_later(pool, redis, settings):
    """The vendor's receipt overtakes our record of its submit_sm_resp by longer than the
    connector's look-again retries: it is kept, and housekeeping settles the message."""
    from gateway.accept.pipeline import Submission
    from gateway.runtime.housekeeping import reapply_receipts

    # Hold every "vendor id recorded" update for a second: the simulator's receipts
    # (0.05 s after it accepts) arrive while the record is still uncommitted.
    await pool.execute("""
        CREATE FUNCTION slow_vendor_id() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.vendor_message_id IS DISTINCT FROM OLD.vendor_message_id THEN
                PERFORM pg_sleep(1);
            END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER slow_vendor_id BEFORE UPDATE ON messages
            FOR EACH ROW EXECUTE FUNCTION slow_vendor_id();""")
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.05))
    try:
        esme = Esme()
        client = await stack.client(handler=esme)
        r = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                         short_message=b"early", registered_delivery=1))
        smpp_id = uuid.UUID(r.message_id)
        (api,) = await stack.pipeline.submit([Submission(
            partner_id=stack.world.partner_id, origin="api", sender=SENDER, destination=RU_MOBILE,
            text="early too", callback_url="http://127.0.0.1:9/cb")])
        # Both receipts were acknowledged to the carrier after being stored, not dropped.
        await eventually(lambda: stack.sim.counters.receipts_acked == 2, within=10)
        assert await pool.fetchval("SELECT count(*) FROM early_receipts") == 2
        await eventually(lambda: _statuses(pool, [smpp_id, api.message_id], {"SENT"}), within=10)

        done = await reapply_receipts(pool, stack.connectors.receipts)
        assert done == {"early_receipts_applied": 2, "early_receipts_dropped": 0}
        assert await _statuses(pool, [smpp_id, api.message_id], {"DELIVERED"})
        assert await pool.fetchval("SELECT count(*) FROM early_receipts") == 0
        # What a live receipt produces: the deliver_sm to the SMPP client, the HTTP callback.
        await esme.wait(lambda: esme.receipts)
        assert b"stat:DELIVRD" in esme.receipts[0].short_message
        assert await pool.fetchval(
            "SELECT count(*) FROM callback_outbox WHERE order_key = $1 AND body LIKE '%DELIVERED%'",
            str(api.message_id)) == 1
        # Applying again changes nothing (idempotent): no second report.
        assert (await reapply_receipts(pool, stack.connectors.receipts))["early_receipts_applied"] == 0
        assert await pool.fetchval(
            "SELECT count(*) FROM callback_outbox WHERE order_key = $1", str(api.message_id)) == 2
    finally:
        await stack.stop()


async def _statuses(pool, ids, wanted: set[str]) -> bool:
    rows = await pool.fetch("SELECT status FROM messages WHERE id = ANY($1::uuid[])", ids)
    return len(rows) == len(ids) and {r["status"] for r in rows} <= wanted


def test_build_submits_passes_the_validity_on():
    from datetime import UTC, datetime

    from smpp.times import parse_time

    until = datetime(2026, 11, 25, 18, 30, 15, tzinfo=UTC)
    for text in ("short", "x" * 400):
        pdus = build_submits(_message(text=text, valid_until=until), reference=1)
        assert {parse_time(p.validity_period, until) for p in pdus} == {until}
    assert build_submits(_message(), reference=1)[0].validity_period == ""
