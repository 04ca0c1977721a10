"""Messages: the status table (pure) and the guarded SQL updates."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from gateway.store import messages as m
from gateway.store.messages import Event, NewMessage, Status, next_status

S, E = Status, Event

# (current, event, expected next status or None = ignored)
CASES = [
    (S.PREPARED, E.BILLED, S.BILLED),
    (S.PREPARED, E.FAILED, S.FAILED),
    (S.PREPARED, E.DELIVERED, None),
    (S.BILLED, E.SENT, S.SENT),
    (S.BILLED, E.BILLED, None),
    (S.BILLED, E.DELIVERED, S.DELIVERED),     # receipt before the submit response
    (S.SENT, E.SENT, None),                   # repeated: idempotent
    (S.SENT, E.DELIVERED, S.DELIVERED),
    (S.SENT, E.UNDELIVERED, S.UNDELIVERED),
    (S.SENT, E.EXPIRED, S.UNDELIVERED),
    (S.SENT, E.FAILED, S.FAILED),
    (S.SENT, E.BILLED, None),
    (S.DELIVERED, E.SENT, None),              # late SENT after DELIVERED
    (S.DELIVERED, E.DELIVERED, None),
    (S.DELIVERED, E.UNDELIVERED, None),
    (S.DELIVERED, E.SEEN, S.SEEN),
    (S.UNDELIVERED, E.DELIVERED, None),
    (S.FAILED, E.SENT, None),
    (S.SEEN, E.DELIVERED, None),
    (S.SEEN, E.SEEN, None),
]


@pytest.mark.parametrize(("current", "event", "expected"), CASES)
def test_next_status_table(current, event, expected):
    assert next_status(current, event) == expected
    assert next_status(str(current), str(event)) == expected


_RANK = {S.PREPARED: 0, S.BILLED: 1, S.SENT: 2, S.DELIVERED: 3, S.UNDELIVERED: 3,
         S.FAILED: 3, S.SEEN: 4}


def test_no_transition_goes_backwards_or_sideways_between_finals():
    for current in Status:
        for event in Event:
            new = next_status(current, event)
            if new is not None:
                assert _RANK[new] > _RANK[current], (current, event, new)
                assert next_status(new, event) is None  # applying it again does nothing


def test_uuid7_is_time_ordered_and_versioned():
    a = m.new_message_id(1_700_000_000_000)
    b = m.new_message_id(1_700_000_000_001)
    assert a.version == 7 and a.variant == uuid.RFC_4122
    assert a < b
    assert a.int >> 80 == 1_700_000_000_000


async def _owner(conn) -> int:
    return await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")


def _msg(partner_id: int, **kw) -> NewMessage:
    base = dict(partner_id=partner_id, origin="api", sender="Herald", destination="35799000001",
                text="hello")
    base.update(kw)
    return NewMessage(**base)


async def test_insert_and_read_back(conn):
    pid = await _owner(conn)
    msg = _msg(pid, status=S.BILLED, cost=Decimal("0.012345"), charge_ref="pack:1",
               registered_delivery=1, callback_url="http://127.0.0.1:1/cb", label="x")
    await m.insert_messages(conn, [msg])
    got = await m.get_message(conn, msg.id)
    assert got is not None
    assert got.status is S.BILLED
    assert got.cost == Decimal("0.012345")
    assert got.billed_at == msg.created_at  # stamped on insert when stored already billed
    assert got.wants_receipt and got.callback_url == "http://127.0.0.1:1/cb"


async def test_apply_event_is_guarded_and_timestamps_once(conn):
    pid = await _owner(conn)
    msg = _msg(pid, status=S.BILLED)
    await m.insert_messages(conn, [msg])
    t1 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    sent = await m.mark_sent(conn, msg.id, vendor_id=7, vendor_message_id="0A1b", at=t1)
    assert sent is not None and sent.status is S.SENT and sent.sent_at == t1
    assert await m.apply_event(conn, msg.id, E.SENT) is None       # repeated
    t2 = t1 + timedelta(seconds=5)
    done = await m.apply_receipt(conn, 7, "a1b", E.DELIVERED, at=t2)
    assert done is not None and done.status is S.DELIVERED and done.done_at == t2
    # Late and repeated events change nothing.
    assert await m.apply_event(conn, msg.id, E.UNDELIVERED, error_code="1") is None
    assert await m.apply_receipt(conn, 7, "a1b", E.DELIVERED) is None
    again = await m.mark_sent(conn, msg.id, vendor_id=7, vendor_message_id="0A1b")
    assert again is None
    final = await m.get_message(conn, msg.id)
    assert final.status is S.DELIVERED and final.done_at == t2 and final.error_code is None


async def test_receipt_before_submit_response(conn):
    pid = await _owner(conn)
    msg = _msg(pid, status=S.BILLED, vendor_id=3)
    await m.insert_messages(conn, [msg])
    # The id is recorded and the message is SENT...
    assert await m.mark_sent(conn, msg.id, vendor_id=3, vendor_message_id="X") is not None
    # ...a FAILED receipt-path event then finishes it with its error.
    failed = await m.apply_event(conn, msg.id, E.FAILED, error_code="0x45", error_text="rejected")
    assert failed.status is S.FAILED and failed.error_text == "rejected"
    # mark_sent after a final status still records the vendor id, without moving status.
    other = _msg(pid, status=S.BILLED)
    await m.insert_messages(conn, [other])
    await m.apply_event(conn, other.id, E.DELIVERED)
    assert await m.mark_sent(conn, other.id, vendor_id=3, vendor_message_id="Y") is None
    row = await m.find_by_vendor_id(conn, 3, "y")
    assert row.id == other.id and row.status is S.DELIVERED and row.sent_at is None


async def test_receipt_matches_newest_message_with_reused_vendor_id(conn):
    pid = await _owner(conn)
    old = _msg(pid, status=S.SENT, created_at=datetime.now(UTC) - timedelta(days=30))
    new = _msg(pid, status=S.BILLED)
    await m.insert_messages(conn, [old, new])
    await m.mark_sent(conn, old.id, vendor_id=1, vendor_message_id="1")
    await m.mark_sent(conn, new.id, vendor_id=1, vendor_message_id="1")
    got = await m.apply_receipt(conn, 1, "1", E.DELIVERED)
    assert got.id == new.id
    assert await m.apply_receipt(conn, 2, "1", E.DELIVERED) is None  # other vendor


async def test_receipt_matching_across_id_formats(conn):
    pid = await _owner(conn)
    hexa, deci, text, exact = (_msg(pid, status=S.BILLED) for _ in range(4))
    await m.insert_messages(conn, [hexa, deci, text, exact])
    await m.mark_sent(conn, hexa.id, vendor_id=5, vendor_message_id="0x1F".removeprefix("0x"))
    await m.mark_sent(conn, deci.id, vendor_id=5, vendor_message_id="000123")
    await m.mark_sent(conn, text.id, vendor_id=5, vendor_message_id=" Msg-9\x00")
    # A vendor of known format: one exact key on both sides.
    from smpp.receipts import message_id_key
    await m.mark_sent(conn, exact.id, vendor_id=6, vendor_message_id="ff",
                      keys=[message_id_key("ff", "hex")])
    assert (await m.apply_receipt(conn, 5, "31", E.DELIVERED)).id == hexa.id  # 0x1F = 31
    assert (await m.apply_receipt(conn, 5, "123", E.DELIVERED)).id == deci.id
    assert (await m.apply_receipt(conn, 5, "msg-9", E.DELIVERED)).id == text.id
    assert await m.apply_receipt(conn, 6, "ff", E.DELIVERED,
                                 keys=[message_id_key("255", "decimal")]) is not None
    assert await m.find_by_vendor_id(conn, 5, "nothing-like-it") is None
    # The receipt lookup can use the partial GIN index.
    await conn.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(r[0] for r in await conn.fetch(
        "EXPLAIN SELECT id FROM messages WHERE vendor_match_keys && $1::text[]", ["5#31"]))
    assert "messages_vendor_keys" in plan


async def test_equal_normal_form_beats_a_newer_numeric_reading(conn):
    pid = await _owner(conn)
    older = _msg(pid, status=S.BILLED, created_at=datetime.now(UTC) - timedelta(minutes=5))
    newer = _msg(pid, status=S.BILLED)
    await m.insert_messages(conn, [older, newer])
    await m.mark_sent(conn, older.id, vendor_id=1, vendor_message_id="10")   # ten or sixteen
    await m.mark_sent(conn, newer.id, vendor_id=1, vendor_message_id="0A")   # hex ten
    assert (await m.find_by_vendor_id(conn, 1, "10")).id == older.id  # same normal form wins
    assert (await m.find_by_vendor_id(conn, 1, "a")).id == newer.id


async def test_keyset_pagination_walks_every_row_once(conn):
    pid = await _owner(conn)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    batch = [_msg(pid, created_at=base + timedelta(seconds=i // 3)) for i in range(25)]
    await m.insert_messages(conn, batch)
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        page = await m.list_for_partner(conn, pid, limit=7, before=cursor, since=base)
        if not page:
            break
        seen.extend(x.id for x in page)
        cursor = m.page_cursor(page[-1])
    assert len(seen) == 25 and set(seen) == {x.id for x in batch}
    expected = sorted(batch, key=lambda x: (x.created_at, x.id), reverse=True)
    assert seen == [x.id for x in expected]
    await conn.execute("SET LOCAL enable_seqscan = off")
    plan = "\n".join(r[0] for r in await conn.fetch(
        "EXPLAIN SELECT * FROM messages WHERE partner_id = 1"
        " AND (created_at, id) < (now(), gen_random_uuid())"
        " ORDER BY created_at DESC, id DESC LIMIT 150"
    ))
    # each month's index, merged in order (a Merge Append's "Sort Key"), never a Sort node
    assert "partner_created" in plan or "partner_id_created_at_id" in plan
    assert "->  Sort  " not in plan and not plan.startswith("Sort")


async def test_batches_behave_like_the_single_calls(conn):
    pid = await _owner(conn)
    batch = [_msg(pid, status=S.BILLED) for _ in range(5)]
    await m.insert_messages(conn, batch)
    a, b, c, d, e = batch
    await m.apply_event(conn, e.id, E.DELIVERED)   # already final before mark_sent
    sent = await m.mark_sent_many(conn, [
        m.SentUpdate(a.id, 9, "0000FF"), m.SentUpdate(b.id, 9, "Txt-1"),
        m.SentUpdate(c.id, 9, "100"), m.SentUpdate(d.id, 9, "abc", keys=("=exact",)),
        m.SentUpdate(e.id, 9, "77"),
    ])
    assert [x.status if x else None for x in sent] == [S.SENT] * 4 + [None]
    row = await m.get_message(conn, a.id)
    assert (row.vendor_message_id, row.vendor_message_key, row.vendor_match_keys) == (
        "0000FF", "ff", ["9#255"])
    assert (await m.get_message(conn, e.id)).vendor_message_key == "77"  # recorded anyway
    assert (await m.get_message(conn, d.id)).vendor_match_keys == ["9=exact"]
    with pytest.raises(ValueError):
        await m.mark_sent_many(conn, [m.SentUpdate(a.id, 9, "1"), m.SentUpdate(a.id, 9, "2")])

    got = await m.apply_receipts(conn, [
        m.ReceiptUpdate(9, "255", E.DELIVERED),             # a, decimal reading of 0xFF
        m.ReceiptUpdate(9, "TXT-1", E.UNDELIVERED, error_code="001"),
        m.ReceiptUpdate(9, "100", E.EXPIRED),               # c
        m.ReceiptUpdate(9, "100", E.DELIVERED),             # c again: final already, ignored
        m.ReceiptUpdate(9, "zzz", E.DELIVERED),             # nobody
        m.ReceiptUpdate(9, "ignored", E.DELIVERED, keys=("=exact",)),   # d by exact key
    ])
    assert [(x.id, x.status) if x else None for x in got] == [
        (a.id, S.DELIVERED), (b.id, S.UNDELIVERED), (c.id, S.UNDELIVERED), None, None,
        (d.id, S.DELIVERED)]
    assert got[1].error_code == "001"
    assert await m.apply_receipts(conn, []) == []


async def test_apply_events_applies_repeats_in_order(conn):
    pid = await _owner(conn)
    msg = _msg(pid)
    await m.insert_messages(conn, [msg])
    t = datetime(2026, 5, 1, tzinfo=UTC)
    got = await m.apply_events(conn, [
        m.EventUpdate(msg.id, E.BILLED, t), m.EventUpdate(msg.id, E.SENT, t + timedelta(1)),
        m.EventUpdate(msg.id, E.BILLED, t), m.EventUpdate(msg.id, E.DELIVERED, t + timedelta(2)),
    ])
    assert [x.status if x else None for x in got] == [S.BILLED, S.SENT, None, S.DELIVERED]
    final = got[-1]
    assert (final.billed_at, final.sent_at, final.done_at) == (
        t, t + timedelta(1), t + timedelta(2))
