"""A partner with contacts, groups, a custom field, blocks and an import, for the Contacts tests."""

from __future__ import annotations

from dataclasses import dataclass

from contacts import contacts, fields, groups, stoplist
from contacts.contacts import ContactInput
from tests.portal.conftest import make_client_user


@dataclass
class World:
    partner_id: int
    user_id: int
    email: str
    group_id: int
    other_group_id: int
    stop_group_id: int
    contact_id: int
    field_key: str
    import_id: int
    msisdn: str


async def make_world(db, email: str = "ada@client.test", company: str = "Acme Ltd", *,
                     name: str = "Ada", sender: str = "Herald", phone: str = "447700900123") -> World:
    partner_id, user_id = await make_client_user(db, email, company=company)
    await db.execute(
        """INSERT INTO sender_ids (partner_id, channel, sender, status, state)
           VALUES ($1, 'sms', $2, 'enabled', 'confirmed')""", partner_id, sender)
    group = await groups.create(db, partner_id, name=f"{company} customers", user_id=user_id)
    other = await groups.create(db, partner_id, name=f"{company} partners", user_id=user_id)
    stop = await groups.stop_list_group(db, partner_id)
    city = await fields.create_field(db, partner_id, name="City", data_type="text")
    contact = await contacts.create(db, partner_id, ContactInput(
        phone, (group.id,), first_name=name, fields={"city": "Leeds"}), user_id=user_id)
    await stoplist.block(db, partner_id, [phone], [sender], user_id=user_id)
    import_id = await db.fetchval(
        """INSERT INTO contact_imports (partner_id, user_id, file_name, file_kind, file_size, status,
                                        mapping, columns, group_id, rejected)
           VALUES ($1, $2, 'old.csv', 'csv', 10, 'done', '["phone"]', 1, $3, 1) RETURNING id""",
        partner_id, user_id, group.id)
    await db.execute("INSERT INTO contact_import_chunks (import_id, seq, data) VALUES ($1, 0, $2)",
                     import_id, b"phone\n123\n")
    await db.execute(
        """INSERT INTO contact_import_rejects (import_id, row_number, reason, detail, raw)
           VALUES ($1, 2, 'bad_phone', '123', '{123}')""", import_id)
    return World(partner_id, user_id, email, group.id, other.id, stop.id, contact.id, city.key,
                 import_id, phone)
