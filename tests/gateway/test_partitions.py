"""messages partitioned by month on its UUIDv7 id (migration 0700, gateway.store.partitions)."""

from __future__ import annotations

import itertools
import shutil
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gateway.base.migrate import MIGRATIONS_DIR, migrate
from gateway.base.seed import seed_system_owner
from gateway.store import messages as m
from gateway.store import partitions as p
from gateway.store.partitions import Partition
from tests.conftest import drop_database


def test_uuid7_floor_and_time_agree_with_new_message_id():
    at = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    ms = int(at.timestamp() * 1000)
    floor = m.uuid7_floor(at)
    assert m.uuid7_time(floor) == at
    # every id drawn in that millisecond is at or above the floor, and below the next one's
    for _ in range(50):
        drawn = m.new_message_id(ms)
        assert floor <= drawn < m.uuid7_floor(at + timedelta(milliseconds=1))
    assert m.new_message_id(ms - 1) < floor


def test_parse_bound():
    low, high = p.parse_bound("FOR VALUES FROM (MINVALUE) TO ('019c9e6e-a000-0000-0000-000000000000')")
    assert low is None and high == m.uuid7_time(m.uuid7_floor(high))
    low, high = p.parse_bound("FOR VALUES FROM ('019c9e6e-a000-0000-0000-000000000000') "
                              "TO ('019d3e13-c400-0000-0000-000000000000')")
    assert low < high
    with pytest.raises(ValueError):
        p.parse_bound("DEFAULT")


def _part(name, lower, upper):
    def at(day):
        return None if day is None else datetime.combine(day, datetime.min.time(), UTC)

    return Partition(name, at(lower), at(upper))


def test_months_to_create_fills_up_to_two_months_ahead_after_the_last_end():
    existing = [_part("before", None, date(2026, 5, 1)), _part("m5", date(2026, 5, 1), date(2026, 6, 1))]
    assert p.months_to_create(existing, date(2026, 3, 20)) == []
    assert p.months_to_create(existing, date(2026, 4, 20)) == [date(2026, 6, 1)]
    assert p.months_to_create(existing, date(2026, 5, 3)) == [date(2026, 6, 1), date(2026, 7, 1)]
    assert p.months_to_create(existing, date(2026, 12, 31)) == [
        date(2026, m_, 1) for m_ in range(6, 13)] + [date(2027, 1, 1), date(2027, 2, 1)]
    assert p.months_to_create([], date(2026, 1, 9)) == [date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1)]


def test_expired_keeps_the_retention_months_before_the_current_one():
    parts = [_part("before", None, date(2025, 3, 1)), _part("y2025m03", date(2025, 3, 1), date(2025, 4, 1)),
             _part("y2025m04", date(2025, 4, 1), date(2025, 5, 1))]
    # in April 2026 with 13 months kept: from March 2025 on stays
    assert [x.name for x in p.expired(parts, date(2026, 4, 15), 13)] == ["before"]
    assert [x.name for x in p.expired(parts, date(2026, 5, 1), 13)] == ["before", "y2025m03"]
    assert p.expired(parts, date(2030, 1, 1), 0) == []


async def test_fresh_schema_is_partitioned_by_id(conn):
    assert await conn.fetchval(
        "SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass") == "r"
    assert await conn.fetchval(
        """SELECT pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = 'messages'::regclass AND contype = 'p'""") == "PRIMARY KEY (id)"
    parts = await p.partitions(conn)
    assert parts[0].lower is None and parts[0].name.startswith("messages_before_y")
    today = datetime.now(UTC).date()
    assert parts[-1].upper.date() >= p.month_start(today, p.MONTHS_AHEAD)
    # partitions follow each other without gaps
    for a, b in itertools.pairwise(parts):
        assert a.upper == b.lower


async def test_sql_and_python_floors_agree(conn):
    at = datetime(2026, 7, 14, 9, 30, 1, 123000, tzinfo=UTC)
    assert await conn.fetchval("SELECT herald_uuid7_floor($1)", at) == m.uuid7_floor(at)
    drawn = m.new_message_id(int(at.timestamp() * 1000))
    assert await conn.fetchval("SELECT herald_uuid7_time($1)", drawn) == at


async def test_messages_land_in_their_month_and_keep_their_foreign_key(conn):
    owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    await p.ensure_months(conn, ahead=3)
    later = datetime.now(UTC) + timedelta(days=40)
    msg = m.NewMessage(partner_id=owner, origin="api", sender="Herald", destination="35799000001",
                       id=m.new_message_id(int(later.timestamp() * 1000)), created_at=later)
    await m.insert_messages(conn, [msg])
    where = await conn.fetchval("SELECT tableoid::regclass::text FROM messages WHERE id = $1", msg.id)
    assert where == "messages_y" + later.strftime("%Y") + "m" + later.strftime("%m")
    assert (await m.get_message(conn, msg.id)).id == msg.id
    await conn.execute("INSERT INTO send_queue (message_id, route, vendor_id) VALUES ($1, '{1}', 1)", msg.id)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with conn.transaction():
            await conn.execute("INSERT INTO send_queue (message_id, route, vendor_id) VALUES ($1, '{1}', 1)",
                               m.new_message_id())
    # ON DELETE CASCADE reaches across the partitions
    await conn.execute("DELETE FROM messages WHERE id = $1", msg.id)
    assert await conn.fetchval("SELECT count(*) FROM send_queue WHERE message_id = $1", msg.id) == 0


async def test_retention_drops_old_months_but_not_one_still_queued(pool):
    async with pool.acquire() as conn:
        await _retention_round(conn)


async def _retention_round(conn) -> None:
    owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    queued = m.NewMessage(partner_id=owner, origin="api", sender="Herald", destination="35799000002")
    await m.insert_messages(conn, [queued])
    await conn.execute("INSERT INTO send_queue (message_id, route, vendor_id) VALUES ($1, '{1}', 1)", queued.id)
    holding = await conn.fetchval("SELECT tableoid::regclass::text FROM messages WHERE id = $1", queued.id)
    # Three years on, keeping 13 months: every partition that ended before then goes...
    future = datetime.now(UTC).date() + timedelta(days=3 * 365)
    await p.ensure_months(conn, today=future)
    dropped = await p.drop_expired(conn, 13, today=future)
    cutoff = datetime.combine(p.month_start(future, -13), datetime.min.time(), UTC)
    left = await p.partitions(conn)
    assert len(dropped) > 20 and holding not in dropped
    # ...except the one holding a message still in the send queue.
    assert [x.name for x in left if x.upper <= cutoff] == [holding]
    assert left[-1].upper.date() == p.month_start(future, p.MONTHS_AHEAD + 1)
    await conn.execute("DELETE FROM send_queue WHERE message_id = $1", queued.id)
    assert await p.drop_expired(conn, 13, today=future) == [holding]
    assert await p.drop_expired(conn, 0, today=future) == []


async def _empty_db(pg_url: str, name: str) -> str:
    admin = await asyncpg.connect(pg_url)
    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    await admin.execute(f"CREATE DATABASE {name}")
    await admin.close()
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


async def test_an_existing_database_converts_in_place(pg_url, tmp_path: Path):
    """A database migrated before 0700, with messages, queue rows and a cascade trigger,
    is partitioned by the migration without losing a row or a rule."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name < "0700":
            shutil.copy(path, earlier / path.name)
    url = await _empty_db(pg_url, "herald_partition_convert")
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn, earlier)
        await seed_system_owner(conn, admin_email="a@herald.test", admin_password="x" * 12)
        owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
        now = datetime.now(UTC)
        msgs = [m.NewMessage(partner_id=owner, origin="api", sender="Herald", destination=f"3579900{i:04d}",
                             id=m.new_message_id(int((now - timedelta(days=20 * i)).timestamp() * 1000)),
                             created_at=now - timedelta(days=20 * i), cost=Decimal("0.01"))
                for i in range(8)]
        await m.insert_messages(conn, msgs)
        await conn.execute("INSERT INTO send_queue (message_id, route, vendor_id) VALUES ($1, '{1}', 1)",
                           msgs[0].id)
        assert await conn.fetchval(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'messages'::regclass") == 0

        await migrate(conn)

        assert await conn.fetchval("SELECT count(*) FROM messages") == 8
        assert {r["id"] for r in await conn.fetch("SELECT id FROM messages")} == {x.id for x in msgs}
        first = (await p.partitions(conn))[0]
        assert await conn.fetchval(
            f'SELECT count(*) FROM "{first.name}"') == 8  # the old table, attached as it was
        # indexes on the parent, foreign keys both ways, the row trigger moved to the parent
        indexes = {r["indexname"] for r in await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'messages'")}
        assert {"messages_pkey", "messages_partner_created", "messages_vendor_keys",
                "messages_destination_sender", "messages_campaign"} <= indexes
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("INSERT INTO send_queue (message_id, route, vendor_id) VALUES ($1, '{1}', 1)",
                               m.new_message_id())
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await m.insert_messages(conn, [m.NewMessage(partner_id=999_999, origin="api", sender="H",
                                                        destination="1")])
        viber = m.NewMessage(partner_id=owner, origin="api", sender="Herald", destination="35799000099",
                             channel="viber", fallback_channel="sms", fallback_ttl=60, status=m.Status.BILLED)
        await m.insert_messages(conn, [viber])
        assert await conn.fetchval("SELECT count(*) FROM viber_cascade_due WHERE viber_message_id = $1",
                                   viber.id) == 1
    finally:
        await conn.close()
        await drop_database(pg_url, url)


async def test_housekeeping_keeps_the_months(pool):
    from gateway.runtime.housekeeping import Housekeeping

    done = await Housekeeping(pool, retention_months=13).maintain_partitions()
    assert done == {"created": [], "dropped": []}  # the migration made them already


def test_receipts_look_back_to_the_start_of_a_month_at_least_62_days_ago():
    assert m.receipts_since(datetime(2026, 5, 10, 8, tzinfo=UTC)) == m.uuid7_floor(
        datetime(2026, 3, 1, tzinfo=UTC))
    assert m.receipts_since(datetime(2026, 3, 3, tzinfo=UTC)) == m.uuid7_floor(
        datetime(2025, 12, 1, tzinfo=UTC))


async def test_a_receipt_finds_recent_messages_and_leaves_the_months_before_its_window(conn):
    owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    long_ago = datetime.now(UTC) - timedelta(days=130)
    old = m.NewMessage(partner_id=owner, origin="api", sender="Herald", destination="35799000003",
                       id=m.new_message_id(int(long_ago.timestamp() * 1000)), created_at=long_ago,
                       status=m.Status.BILLED)
    recent = m.NewMessage(partner_id=owner, origin="api", sender="Herald", destination="35799000004",
                          status=m.Status.BILLED)
    await m.insert_messages(conn, [old, recent])
    await m.mark_sent_many(conn, [m.SentUpdate(old.id, 5, "aa01"), m.SentUpdate(recent.id, 5, "bb02")])
    assert await m.find_by_vendor_id(conn, 5, "aa01") is None
    assert (await m.find_by_vendor_id(conn, 5, "bb02")).id == recent.id
    moved = await m.apply_receipts(conn, [m.ReceiptUpdate(5, "aa01", m.Event.DELIVERED),
                                          m.ReceiptUpdate(5, "bb02", m.Event.DELIVERED)])
    assert moved[0] is None and moved[1].status is m.Status.DELIVERED
    # a batch spanning months still updates each of its messages (ids bound the months read)
    both = await m.apply_events(conn, [m.EventUpdate(old.id, m.Event.DELIVERED),
                                       m.EventUpdate(recent.id, m.Event.SEEN)])
    assert [x.status for x in both] == [m.Status.DELIVERED, m.Status.SEEN]
