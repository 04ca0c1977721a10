"""SMPP times and replace_sm at Herald's SMPP server: validity_period, schedule_delivery_time,
query_sm of a scheduled message, replace_sm (SMPP 3.4 §4.10, §5.2.14-15, §7.1.1)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import pytest_asyncio

from gateway.intake.smpp_accounts import create_account
from gateway.intake.smpp_submits import (
    MAX_SCHEDULE_AHEAD,
    MAX_VALIDITY,
    Timing,
    query_state,
    replacement,
    timing_of,
)
from gateway.store import queue
from gateway.store.messages import Message, NewMessage, Status, insert_messages
from smpp.pdu import (
    CancelSm,
    CommandStatus,
    DataSm,
    MessageState,
    QuerySm,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Tag,
)
from smpp.receipts import parse_receipt
from smpp.times import format_absolute, format_relative
from tests.gateway.smpp_stack import Esme, build_stack, eventually
from tests.gateway.world import RU_MOBILE, SENDER, balance

S = CommandStatus
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# --- pure: the times of a submit -------------------------------------------------------

TIMINGS = [
    ("", "", Timing(None, None)),
    ("", "261125130000000+", Timing(None, NOW + timedelta(hours=1))),
    ("", "261125150000008+", Timing(None, NOW + timedelta(hours=1))),        # 15:00 at UTC+2
    ("", "000000020000000R", Timing(None, NOW + timedelta(hours=2))),
    ("", "261125110000000+", Timing(None, NOW - timedelta(hours=1))),        # past: kept, expires
    ("000000010000000R", "", Timing(NOW + timedelta(hours=1), None)),
    ("261125140000000+", "000001000000000R",                                 # validity from now
     Timing(NOW + timedelta(hours=2), NOW + timedelta(days=1))),
    ("261125110000000+", "", Timing(None, None)),                             # past schedule: now
    ("000000000000000R", "", Timing(None, None)),
    ("", "000100000000000R", Timing(None, NOW + MAX_VALIDITY)),              # a month: capped
    ("000020000000000R", "001000000000000R",                                  # capped from the schedule
     Timing(NOW + timedelta(days=20), NOW + timedelta(days=20) + MAX_VALIDITY)),
    ("000030000000000R", "", Timing(NOW + MAX_SCHEDULE_AHEAD, None)),
    ("000030000001000R", "", S.ESME_RINVSCHED),                              # too far ahead
    ("241301120000000+", "", S.ESME_RINVSCHED),
    ("000001000000100R", "", S.ESME_RINVSCHED),
    ("", "240230120000000+", S.ESME_RINVEXPIRY),
    ("", "000001000000004R", S.ESME_RINVEXPIRY),
    ("", "24010112000000A+", S.ESME_RINVEXPIRY),
    ("241301120000000+", "240230120000000+", S.ESME_RINVSCHED),             # the schedule first
]


@pytest.mark.parametrize(("schedule", "validity", "expected"), TIMINGS)
def test_timing_of_a_submit(schedule, validity, expected):
    pdu = SubmitSm(schedule_delivery_time=schedule, validity_period=validity)
    assert timing_of(pdu, NOW) == expected
    multi = SubmitMulti(schedule_delivery_time=schedule, validity_period=validity)
    assert timing_of(multi, NOW) == expected


def test_data_sm_reads_qos_time_to_live():
    assert timing_of(DataSm(), NOW) == Timing(None, None)
    ttl = DataSm(tlvs={Tag.QOS_TIME_TO_LIVE: 600})
    assert timing_of(ttl, NOW) == Timing(None, NOW + timedelta(minutes=10))
    long = DataSm(tlvs={Tag.QOS_TIME_TO_LIVE: 30 * 86400})
    assert timing_of(long, NOW) == Timing(None, NOW + MAX_VALIDITY)


def _message(**kw) -> Message:
    base = dict(id=uuid.uuid4(), partner_id=1, user_id=None, api_key_id=None, smpp_account_id=7,
                smpp_session=None, origin="smpp", channel="sms", sender=SENDER,
                destination=RU_MOBILE, mccmnc=None, text="hello", parts=1, encoding="gsm7",
                data_coding=0, flash=False, accept_mo=False, cost=Decimal(0), currency=None,
                charge_ref=None, label="", campaign_id=None, client_ref=None, status=Status.BILLED,
                vendor_id=None, vendor_message_id=None, vendor_message_key=None,
                vendor_match_keys=None, error_code=None, error_text=None, registered_delivery=1,
                callback_url=None, valid_until=None, created_at=NOW, billed_at=NOW, sent_at=None,
                done_at=None, seen_at=None, updated_at=NOW, smpp_data_coding=0)
    base.update(kw)
    return Message(**base)


def test_replacement_values():
    later = NOW + timedelta(hours=3)
    kept = _message(scheduled_for=later, valid_until=later + timedelta(hours=1))
    new = replacement(kept, ReplaceSm(short_message=b"bye", registered_delivery=0), NOW)
    assert (new.text, new.encoding, new.data_coding, new.registered_delivery) == ("bye", "gsm7", 0, 0)
    assert (new.scheduled_for, new.valid_until) == (later, later + timedelta(hours=1))  # NULL keeps
    moved = replacement(kept, ReplaceSm(short_message=b"bye", schedule_delivery_time="000000000000000R",
                                        validity_period="000000000500000R"), NOW)
    assert (moved.scheduled_for, moved.valid_until) == (None, NOW + timedelta(minutes=5))
    # the text comes in the submit's data_coding (UCS-2 here), not in Herald's re-encoding
    wide = _message(smpp_data_coding=8, encoding="gsm7")
    new = replacement(wide, ReplaceSm(short_message="Привет".encode("utf-16-be")), NOW)
    assert (new.text, new.encoding, new.data_coding) == ("Привет", "ucs2", 8)


@pytest.mark.parametrize(("message", "pdu", "status"), [
    (_message(), ReplaceSm(short_message=b"x" * 161), S.ESME_RREPLACEFAIL),      # 2 parts, paid 1
    (_message(parts=2, text="x" * 200), ReplaceSm(short_message=b"short"), S.ESME_RREPLACEFAIL),
    (_message(concat_ref=7, concat_total=2, concat_seq=1, concat_wide=False), ReplaceSm(short_message=b"x"),
     S.ESME_RREPLACEFAIL),
    (_message(encoding="binary", text="00ff", udhi=False), ReplaceSm(short_message=b"x"), S.ESME_RREPLACEFAIL),
    (_message(), ReplaceSm(short_message=b""), S.ESME_RINVMSGLEN),
    (_message(), ReplaceSm(short_message=b"x", schedule_delivery_time="24130112000000+R"),
     S.ESME_RINVSCHED),
    (_message(), ReplaceSm(short_message=b"x", validity_period="241301120000000+"), S.ESME_RINVEXPIRY),
])
def test_replacement_refusals(message, pdu, status):
    assert replacement(message, pdu, NOW) == status


def test_query_state():
    assert query_state(_message(scheduled_for=NOW + timedelta(hours=1))) == MessageState.ENROUTE
    expired = _message(status=Status.UNDELIVERED, valid_until=NOW, done_at=NOW + timedelta(seconds=1))
    assert query_state(expired) == MessageState.EXPIRED
    undelivered = _message(status=Status.UNDELIVERED, done_at=NOW)
    assert query_state(undelivered) == MessageState.UNDELIVERABLE


# --- the send queue's not_before -------------------------------------------------------


async def test_enqueue_with_not_before_is_not_claimed_earlier(conn):
    partner = await conn.fetchval("SELECT id FROM partners LIMIT 1")
    msgs = [NewMessage(partner_id=partner, origin="api", sender="S", destination="1")
            for _ in range(3)]
    await insert_messages(conn, msgs)
    soon = await conn.fetchval("SELECT now() + interval '1 hour'")
    await queue.enqueue(conn, [(msgs[0].id, [1]), (msgs[1].id, [1], None), (msgs[2].id, [1], soon)])
    claimed = await queue.claim(conn, "w", 10)
    assert {c.message_id for c in claimed} == {msgs[0].id, msgs[1].id}
    assert await conn.fetchval("SELECT not_before FROM send_queue WHERE message_id = $1",
                               msgs[2].id) == soon
    await conn.execute("UPDATE send_queue SET not_before = now() WHERE message_id = $1", msgs[2].id)
    assert [c.message_id for c in await queue.claim(conn, "w", 10)] == [msgs[2].id]


# --- end to end over SMPP --------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def stack(pool, redis, settings):
    s = await build_stack(pool, redis, settings)
    yield s
    await s.stop()


def submit(text: str = "Hello later", **kw) -> SubmitSm:
    kw.setdefault("registered_delivery", 1)
    return SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE, short_message=text.encode(), **kw)


async def _row(pool, message_id: str):
    return await pool.fetchrow("SELECT * FROM messages WHERE id = $1", uuid.UUID(message_id))


async def _queued(pool, message_id: str):
    return await pool.fetchrow("SELECT * FROM send_queue WHERE message_id = $1", uuid.UUID(message_id))


async def test_validity_past_or_short_ends_expired_and_is_not_sent(stack, pool):
    esme = Esme()
    client = await stack.client(handler=esme)
    now = datetime.now(UTC)
    past = await client.submit(submit("too late", validity_period=format_absolute(now - timedelta(minutes=1))))
    # one second of validity, counted from now, for a message due in two seconds
    short = await client.submit(submit("too short", validity_period="000000000001000R",
                                       schedule_delivery_time=format_relative(timedelta(seconds=2))))
    assert past.status == S.ESME_ROK and short.status == S.ESME_ROK
    assert await balance(pool, stack.world.partner_id) == Decimal("99.90")  # both charged at submit
    for result in (past, short):
        await eventually(lambda r=result: _status_is(pool, r.message_id, Status.UNDELIVERED), within=10)
        row = await _row(pool, result.message_id)
        assert row["error_text"] == "validity period expired" and row["sent_at"] is None
        query = await client.submit(QuerySm(message_id=result.message_id, source_addr=SENDER))
        assert query.response.message_state == MessageState.EXPIRED
        assert query.response.final_date != ""
    assert stack.sim.received == []
    await esme.wait(lambda: len(esme.receipts) == 2)
    assert {parse_receipt(r.short_message).message_id for r in esme.receipts} == {
        past.message_id, short.message_id}
    # The client's receipt says why: EXPIRED, in the text and in the message_state TLV.
    assert {parse_receipt(r.short_message).state for r in esme.receipts} == {MessageState.EXPIRED}
    assert {r.tlvs[Tag.MESSAGE_STATE] for r in esme.receipts} == {MessageState.EXPIRED}


async def _status_is(pool, message_id: str, status: Status) -> bool:
    return (await _row(pool, message_id))["status"] == status


async def test_a_scheduled_message_is_charged_at_once_and_sent_when_due(stack, pool):
    client = await stack.client()
    # written at UTC+03:00, two seconds from now
    due = datetime.now(UTC) + timedelta(seconds=2)
    schedule = format_absolute(due, utc_offset=timedelta(hours=3))
    result = await client.submit(submit("at the time", schedule_delivery_time=schedule))
    assert result.status == S.ESME_ROK
    assert await balance(pool, stack.world.partner_id) == Decimal("99.95")
    row = await _row(pool, result.message_id)
    written = due.replace(microsecond=due.microsecond // 100_000 * 100_000)  # tenths
    assert row["status"] == Status.BILLED and row["scheduled_for"] == written
    queued = await _queued(pool, result.message_id)
    assert queued["not_before"] == written and queued["claimed_by"] is None
    query = await client.submit(QuerySm(message_id=result.message_id, source_addr=SENDER))
    assert query.response.message_state == MessageState.ENROUTE
    await eventually(lambda: stack.sim.received, within=10)
    assert [r.text for r in stack.sim.received] == ["at the time"]
    await eventually(lambda: _sent(pool, result.message_id))
    row = await _row(pool, result.message_id)
    assert row["sent_at"] >= written  # not claimed before it was due


async def _sent(pool, message_id: str) -> bool:
    return (await _row(pool, message_id))["sent_at"] is not None


async def test_a_schedule_in_the_past_means_now(stack, pool):
    client = await stack.client()
    past = format_absolute(datetime.now(UTC) - timedelta(hours=1))
    result = await client.submit(submit("now", schedule_delivery_time=past))
    assert result.status == S.ESME_ROK
    assert (await _row(pool, result.message_id))["scheduled_for"] is None
    await eventually(lambda: stack.sim.received)


async def test_bad_times_are_refused_with_their_status(stack, pool):
    client = await stack.client()
    too_far = format_absolute(datetime.now(UTC) + MAX_SCHEDULE_AHEAD + timedelta(days=1))
    cases = [
        (submit(schedule_delivery_time="241301120000000+"), S.ESME_RINVSCHED),
        (submit(schedule_delivery_time="000001000000004R"), S.ESME_RINVSCHED),
        (submit(schedule_delivery_time=too_far), S.ESME_RINVSCHED),
        (submit(validity_period="240230120000000+"), S.ESME_RINVEXPIRY),
        (submit(validity_period="000001000000100R"), S.ESME_RINVEXPIRY),
        (SubmitMulti(source_addr=SENDER, short_message=b"x", validity_period="24023012000000x+",
                     dest_addresses=[SmeAddress(1, 1, RU_MOBILE)]), S.ESME_RINVEXPIRY),
    ]
    for pdu, status in cases:
        assert (await client.submit(pdu)).status == status, pdu
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0
    assert await balance(pool, stack.world.partner_id) == Decimal("100")


async def test_replace_before_sending_changes_what_the_vendor_gets(stack, pool):
    client = await stack.client()
    later = format_relative(timedelta(minutes=10))
    result = await client.submit(submit("first text", schedule_delivery_time=later))
    assert result.status == S.ESME_ROK
    # new text and validity; the schedule moves to now, so it leaves at once
    replace = await client.submit(ReplaceSm(
        message_id=result.message_id, source_addr=SENDER, short_message=b"second text",
        schedule_delivery_time="000000000000000R", validity_period="000000010000000R",
        registered_delivery=0))
    assert replace.status == S.ESME_ROK
    await eventually(lambda: stack.sim.received, within=10)
    assert [r.text for r in stack.sim.received] == ["second text"]
    row = await _row(pool, result.message_id)
    assert (row["text"], row["registered_delivery"], row["scheduled_for"]) == ("second text", 0, None)
    assert row["valid_until"] - row["updated_at"] < timedelta(hours=1, seconds=5)
    assert await balance(pool, stack.world.partner_id) == Decimal("99.95")  # charged once


async def test_replace_keeps_the_original_data_coding(stack, pool):
    client = await stack.client()
    result = await client.submit(SubmitSm(
        source_addr=SENDER, destination_addr=RU_MOBILE, data_coding=8,
        short_message="Привет".encode("utf-16-be"), schedule_delivery_time="000000100000000R"))
    assert result.status == S.ESME_ROK
    replace = await client.submit(ReplaceSm(
        message_id=result.message_id, source_addr=SENDER, short_message="Пока!".encode("utf-16-be"),
        schedule_delivery_time="000000000000000R"))
    assert replace.status == S.ESME_ROK
    await eventually(lambda: stack.sim.received, within=10)
    assert [r.text for r in stack.sim.received] == ["Пока!"]


async def test_replace_is_refused_once_sent_or_leased(stack, pool):
    client = await stack.client()
    sent = await client.submit(submit("gone"))
    await eventually(lambda: stack.sim.received, within=10)
    await eventually(lambda: _queued_gone(pool, sent.message_id))
    after = await client.submit(ReplaceSm(message_id=sent.message_id, source_addr=SENDER,
                                          short_message=b"too late"))
    assert after.status == S.ESME_RREPLACEFAIL

    waiting = await client.submit(submit("waiting", schedule_delivery_time="000000100000000R"))
    message_id = uuid.UUID(waiting.message_id)
    new_text = ReplaceSm(message_id=waiting.message_id, source_addr=SENDER, short_message=b"new")
    # a worker's lease: the text may be on the wire
    await pool.execute("UPDATE send_queue SET claimed_by = 'other-worker' WHERE message_id = $1",
                       message_id)
    assert (await client.submit(new_text)).status == S.ESME_RREPLACEFAIL
    await pool.execute("UPDATE send_queue SET claimed_by = NULL WHERE message_id = $1", message_id)
    # a worker claiming it right now holds the row lock: refused without waiting for it
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT 1 FROM send_queue WHERE message_id = $1 FOR UPDATE", message_id)
        async with asyncio.timeout(3):
            assert (await client.submit(new_text)).status == S.ESME_RREPLACEFAIL
    assert (await _row(pool, waiting.message_id))["text"] == "waiting"
    assert (await client.submit(new_text)).status == S.ESME_ROK
    assert (await _row(pool, waiting.message_id))["text"] == "new"
    # not claimable yet: still ten hours away
    assert (await _queued(pool, waiting.message_id))["not_before"] > datetime.now(UTC) + timedelta(hours=9)


async def _queued_gone(pool, message_id: str) -> bool:
    return await _queued(pool, message_id) is None


async def test_replace_only_the_own_message_with_its_source(stack, pool):
    async with pool.acquire() as conn:
        await create_account(conn, stack.world.partner_id, "other", "secret2", user_id=stack.world.user_id)
    client = await stack.client()
    other = await stack.client("other", "secret2")
    result = await client.submit(submit("mine", schedule_delivery_time="000000100000000R"))
    attempts = [
        (other, ReplaceSm(message_id=result.message_id, source_addr=SENDER, short_message=b"theirs")),
        (client, ReplaceSm(message_id=result.message_id, source_addr="Other", short_message=b"x")),
        (client, ReplaceSm(message_id=str(uuid.uuid4()), source_addr=SENDER, short_message=b"x")),
        (client, ReplaceSm(message_id="not-an-id", source_addr=SENDER, short_message=b"x")),
    ]
    for who, pdu in attempts:
        assert (await who.submit(pdu)).status == S.ESME_RINVMSGID
    assert (await _row(pool, result.message_id))["text"] == "mine"
    # a text needing more parts than were paid for
    longer = ReplaceSm(message_id=result.message_id, source_addr=SENDER, short_message=b"y" * 170)
    assert (await client.submit(longer)).status == S.ESME_RREPLACEFAIL
    assert (await _row(pool, result.message_id))["text"] == "mine"


async def test_a_scheduled_message_can_be_cancelled_and_is_refunded(stack, pool):
    client = await stack.client()
    result = await client.submit(submit("never mind", schedule_delivery_time="000000100000000R"))
    assert await balance(pool, stack.world.partner_id) == Decimal("99.95")
    cancel = await client.submit(CancelSm(message_id=result.message_id, source_addr=SENDER))
    assert cancel.status == S.ESME_ROK
    assert (await _row(pool, result.message_id))["status"] == Status.FAILED
    assert await balance(pool, stack.world.partner_id) == Decimal("100.00")
    replace = await client.submit(ReplaceSm(message_id=result.message_id, source_addr=SENDER,
                                            short_message=b"again"))
    assert replace.status == S.ESME_RREPLACEFAIL
