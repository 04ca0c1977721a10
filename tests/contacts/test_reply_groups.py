"""Reply templates move the subscriber's contact between the partner's groups (gateway.report.mo)."""

from __future__ import annotations

import asyncpg

from contacts import contacts, groups, stoplist
from contacts.contacts import ContactInput
from gateway.report.mo import MoHandler
from gateway.store.messages import new_message_id
from tests.contacts.conftest import new_partner

SUBSCRIBER = "447700900321"
SENDER = "Herald"


async def _mt(pool: asyncpg.Pool, partner_id: int) -> None:
    await pool.execute(
        """INSERT INTO messages (id, partner_id, origin, sender, destination)
           VALUES ($1, $2, 'api', $3, $4)""", new_message_id(), partner_id, SENDER, SUBSCRIBER)


async def test_subscribe_and_unsubscribe_move_the_contact(pool):
    async with pool.acquire() as conn:
        partner_id, _ = await new_partner(conn, "Shop")
        joined = await groups.create(conn, partner_id, name="Subscribers")
        left = await groups.create(conn, partner_id, name="Former subscribers")
        await conn.execute(
            """INSERT INTO reply_templates (partner_id, keywords, action, subscribe_group_id)
               VALUES ($1, 'join', 'subscribe', $2)""", partner_id, joined.id)
        await conn.execute(
            """INSERT INTO reply_templates (partner_id, keywords, action, unsubscribe_group_id)
               VALUES ($1, 'leave', 'unsubscribe', $2)""", partner_id, left.id)
    await _mt(pool, partner_id)
    handler = MoHandler(pool, None)

    await handler.receive(1, SUBSCRIBER, SENDER, "JOIN please")
    contact = await contacts.for_phone(pool, partner_id, SUBSCRIBER)
    assert contact is not None and contact.group_ids == [joined.id]

    await handler.receive(1, SUBSCRIBER, SENDER, "leave")
    contact = await contacts.for_phone(pool, partner_id, SUBSCRIBER)
    assert contact.group_ids == [left.id]
    assert await stoplist.senders_of(pool, partner_id, SUBSCRIBER) == [SENDER]
    assert (await groups.get(pool, partner_id, joined.id)).member_count == 0
    assert (await groups.get(pool, partner_id, left.id)).member_count == 1


async def test_unsubscribe_does_not_create_a_contact_and_keeps_other_contacts(pool):
    async with pool.acquire() as conn:
        partner_id, user_id = await new_partner(conn, "Cafe")
        left = await groups.create(conn, partner_id, name="Gone")
        kept = await groups.create(conn, partner_id, name="Kept")
        await contacts.create(conn, partner_id, ContactInput("447700900999", (kept.id,)), user_id=user_id)
        await conn.execute(
            """INSERT INTO reply_templates (partner_id, keywords, action, unsubscribe_group_id)
               VALUES ($1, 'leave', 'unsubscribe', $2)""", partner_id, left.id)
    await _mt(pool, partner_id)
    await MoHandler(pool, None).receive(1, SUBSCRIBER, SENDER, "leave")
    assert await contacts.for_phone(pool, partner_id, SUBSCRIBER) is None
    assert (await contacts.for_phone(pool, partner_id, "447700900999")).group_ids == [kept.id]
