"""Herald's binary COPY of messages and send-queue rows (gateway.store.pgcopy), and the stop
list's array literals: each stores exactly what asyncpg's own encoding stores, or leaves the
batch to it."""

from __future__ import annotations

import dataclasses
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest

from gateway.accept import stoplist
from gateway.store import messages as m
from gateway.store import queue
from gateway.store.messages import NewMessage, Status
from smpp.pdu import DataCoding

_TEXTS = ["", "Your code is 123456", "tab\there", "line\nbreak\r\n", "back\\slash", 'quote "q"',
          "Привет, 世界 🎉", "{braces},commas", "NULL", "\\N"]
_COSTS = [Decimal(0), Decimal("0.010000"), Decimal("0.01"), Decimal("123.456789"), Decimal("1E+3"),
          Decimal("0.000001"), Decimal("-5.5"), Decimal("99999999999999.999999"), Decimal("10000"),
          Decimal("0.1000")]
_TIMES = [None, datetime(2026, 12, 3, 6, 38, 41, 123456, tzinfo=UTC),
          datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=-5))),
          datetime(2000, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=3)))]


def _messages(partner_id: int, count: int, seed: int) -> list[NewMessage]:
    """Messages whose values vary column by column, in runs (as batches have them) and not."""
    rng = random.Random(seed)

    def pick(options, repeat: float = 0.6):
        return options[0] if rng.random() < repeat else rng.choice(options)

    out = []
    for i in range(count):
        channel = pick(["sms", "viber"])
        status = pick([Status.BILLED, Status.PREPARED, "BILLED"])
        out.append(NewMessage(
            partner_id=partner_id, origin=pick(["api", "smpp", "campaign"]), sender=pick(["Herald", "X"]),
            destination=pick([f"7916{i:07d}", "35799000001", "Ünïcode"], 0.9), text=pick(_TEXTS),
            channel=channel, id=m.new_message_id(), user_id=pick([None, 1, 2**62]),
            api_key_id=pick([None, 3]), smpp_account_id=pick([None, 7]),
            smpp_session=pick([None, "s1"]), mccmnc=pick(["25001", None, "262"], 0.8),
            parts=pick([1, 3, 32767]), encoding=pick(["gsm7", "ucs2"]),
            data_coding=pick([DataCoding.SMSC_DEFAULT, 8, 0]), flash=pick([False, True]),
            accept_mo=pick([False, True]), cost=pick(_COSTS), currency=pick(["EUR", None, "US"]),
            charge_ref=pick([str(i), None], 0.9), label=pick(["bench", ""]),
            campaign_id=pick([None, 5]), client_ref=pick([None, "ref"]), status=status,
            vendor_id=pick([None, 9]), error_code=pick([None, "0x45"]), error_text=pick([None, "e"]),
            registered_delivery=pick([1, 0, -32768]), callback_url=pick([None, "http://x/cb"]),
            valid_until=pick(_TIMES), created_at=pick(_TIMES[1:]), billed_at=pick(_TIMES),
            traffic_type=pick([None, "promotion", "transaction"]),
            fallback_channel=pick([None, "sms"]), fallback_ttl=pick([None, 60, 2**31 - 1]),
            image_url=pick([None, "http://x/i.png"]), button_url=pick([None, "http://x/b"]),
            button_caption=pick([None, "Go"]), scheduled_for=pick(_TIMES),
            smpp_data_coding=pick([None, 0, 255]), service_type=pick([None, "CMT", ""]),
            **pick([{}, {"concat_ref": 65535, "concat_total": 3, "concat_seq": i % 3 + 1,
                         "concat_wide": True},
                    {"concat_ref": 7, "concat_total": 2, "concat_seq": 1, "concat_wide": False}]),
            udhi=pick([None, True, False]), fallback_for=pick([None, m.new_message_id()]),
        ))
    return out


def _encoded(msgs: list[NewMessage]) -> bytes | None:
    return m.COPY_TABLE.encode([m._record(x) for x in msgs])


async def _stored(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> list[tuple]:
    rows = await conn.fetch(
        f"SELECT {', '.join(m.INSERT_COLUMNS)} FROM messages WHERE id = ANY($1::uuid[]) ORDER BY id", ids)
    return [tuple(r) for r in rows]


async def test_column_types_match_the_table(conn):
    rows = await conn.fetch(
        """SELECT attname, format_type(atttypid, NULL) AS type FROM pg_attribute
           WHERE attrelid = 'messages'::regclass AND attnum > 0 AND NOT attisdropped""")
    types = {r["attname"]: r["type"] for r in rows}
    assert {c: types[c] for c in m.INSERT_COLUMNS} == m.COPY_COLUMN_TYPES


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_binary_copy_stores_what_asyncpg_stores(conn, seed):
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    msgs = _messages(pid, 300, seed)
    ids = [x.id for x in msgs]
    assert _encoded(msgs) is not None  # the fast path is the one under test
    await m.insert_messages(conn, msgs)
    fast = await _stored(conn, ids)
    await conn.execute("DELETE FROM messages WHERE id = ANY($1::uuid[])", ids)
    await conn.copy_records_to_table("messages", records=[m._record(x) for x in msgs],
                                     columns=m.INSERT_COLUMNS)
    general = await _stored(conn, ids)
    assert len(fast) == 300
    assert fast == general


@pytest.mark.parametrize("count", [1, queue.UNNEST_MAX_ROWS, queue.UNNEST_MAX_ROWS + 1])
async def test_store_and_queue_in_one_statement_stores_what_copy_stores(conn, count):
    # Up to UNNEST_MAX_ROWS go by one INSERT of arrays, more by the two COPYs: either way the
    # rows are those asyncpg's own COPY stores, and each routed message is queued from its
    # scheduled_for (now when None).
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    routes = [(), (1,), (2, 1), (2**40, 3, 1)]
    msgs = [dataclasses.replace(x, route=routes[i % len(routes)])
            for i, x in enumerate(_messages(pid, count, 7))]
    ids = [x.id for x in msgs]
    before = await conn.fetchval("SELECT now()")
    await queue.insert_and_enqueue(conn, msgs)
    stored = await _stored(conn, ids)
    queued = {r["message_id"]: (tuple(r["route"]), r["vendor_id"], r["position"], r["not_before"])
              for r in await conn.fetch("SELECT * FROM send_queue WHERE message_id = ANY($1::uuid[])", ids)}
    await conn.execute("DELETE FROM messages WHERE id = ANY($1::uuid[])", ids)
    await conn.copy_records_to_table("messages", records=[m._record(x) for x in msgs],
                                     columns=m.INSERT_COLUMNS)
    assert stored == await _stored(conn, ids)
    assert queued == {x.id: (x.route, x.route[0], 0, x.scheduled_for or before)
                      for x in msgs if x.route}


async def test_a_value_asyncpg_alone_takes_or_refuses_goes_through_asyncpg(conn):
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    naive = NewMessage(partner_id=pid, origin="api", sender="S", destination="35799000001",
                       created_at=datetime(2026, 1, 1, 12))  # naive: asyncpg reads local time
    assert _encoded([naive]) is None
    await m.insert_messages(conn, [naive])
    assert await conn.fetchval("SELECT count(*) FROM messages WHERE id = $1", naive.id) == 1
    # 1 == True: a reused encoding must not let an int pass where asyncpg wants a bool
    first, second = _messages(pid, 2, 4)
    wrong = dataclasses.replace(second, flash=1)
    assert _encoded([first, wrong]) is None
    with pytest.raises(TypeError, match="a boolean is required"):  # asyncpg's own refusal
        await m.insert_messages(conn, [first, wrong])


def test_message_ids_are_uuid7_unique_and_standard():
    ids = m.new_message_ids(2000, now_ms=1_700_000_000_000)
    assert len(set(ids)) == 2000
    for ident in ids:
        assert ident.version == 7 and ident.variant == uuid.RFC_4122
        assert ident.int >> 80 == 1_700_000_000_000
        assert ident == uuid.UUID(str(ident)) and hash(ident) == hash(uuid.UUID(str(ident)))
    assert m.new_message_ids(0) == []
    # the random bits are random: each of the 74 varies across a batch
    varying = 0
    for ident in ids:
        varying |= ident.int ^ ids[0].int
    assert varying == (1 << 80) - 1 & ~((0xF << 76) | (0b11 << 62))


async def test_queue_rows_from_the_binary_copy(conn):
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    routes = [(1,), (2, 1), (1,), (2**40, 3, 1), (2, 1)]
    msgs = [NewMessage(partner_id=pid, origin="api", sender="S", destination=f"3579900{i:04d}",
                       route=routes[i % len(routes)]) for i in range(20)]
    await m.insert_messages(conn, msgs)
    assert queue._DUE_ROWS.encode([(x.id, list(x.route), x.route[0]) for x in msgs]) is not None
    await queue.enqueue(conn, [(x.id, x.route) for x in msgs])
    rows = await conn.fetch("SELECT message_id, route, vendor_id, position FROM send_queue"
                            " WHERE message_id = ANY($1::uuid[])", [x.id for x in msgs])
    got = {r["message_id"]: (tuple(r["route"]), r["vendor_id"], r["position"]) for r in rows}
    assert got == {x.id: (x.route, x.route[0], 0) for x in msgs}


async def test_queue_route_asyncpg_takes_goes_through_asyncpg(conn):
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    msg = NewMessage(partner_id=pid, origin="api", sender="S", destination="35799000001")
    await m.insert_messages(conn, [msg])
    assert queue._DUE_ROWS.encode([(msg.id, [True], True)]) is None  # a bool is asyncpg's to take
    await queue.enqueue(conn, [(msg.id, (True,))])
    assert await conn.fetchval("SELECT route FROM send_queue WHERE message_id = $1", msg.id) == [1]


async def test_stop_list_literals_match_the_general_query(conn):
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    senders = ["Herald", 'q"uote', "back\\slash", "a,b", "{x}", " spaced ", "NULL", "", "Ünï"]
    numbers = ["79161234567", "35799000001", "", "12 34", "NULL", "79160000002"]
    for sender in senders[::2]:
        await stoplist.add(conn, pid, numbers[0], sender)
    await stoplist.add(conn, pid, numbers[1])  # every sender
    await stoplist.add(conn, pid, numbers[5], senders[5])
    items = [(pid, s, n) for s in senders for n in numbers] + [(pid + 1, "Herald", numbers[0])]
    fast = await stoplist.stopped(conn, items)
    rows = await conn.fetch(stoplist._STOPPED, [i[0] for i in items], [i[1] for i in items],
                            [i[2] for i in items])
    assert fast == {(r["partner_id"], r["sender"], r["msisdn"]) for r in rows}
    assert (pid, 'q"uote', numbers[1]) in fast and (pid, " spaced ", numbers[5]) in fast
    assert stoplist._array(["79161234567", "1"]) == "{79161234567,1}"
    assert stoplist._array(["7916", ""]) == '{"7916",""}'
