"""The contacts schema and its SQL modules against a real PostgreSQL (rolled back per test)."""

from __future__ import annotations

import asyncpg
import pytest

from config.errors import Conflict, Forbidden, Invalid, NotFound
from contacts import contacts, fields, groups, stoplist
from contacts.contacts import ContactFilter, ContactInput
from gateway.accept import stoplist as pipeline_stoplist


async def test_every_partner_has_a_stop_list_group(conn, tenant):
    partner_id, _ = tenant
    group = await groups.stop_list_group(conn, partner_id)
    assert group.is_stop_list and group.name == "Stop List" and group.member_count == 0
    with pytest.raises(Forbidden):
        await groups.update(conn, partner_id, group.id, name="Mine", description="")
    with pytest.raises(Forbidden):
        await groups.delete(conn, partner_id, [group.id])


async def test_group_names_are_unique_whatever_the_case(conn, tenant, other):
    partner_id, user_id = tenant
    await groups.create(conn, partner_id, name="Customers", user_id=user_id)
    with pytest.raises(Conflict) as err:
        await groups.create(conn, partner_id, name="  customers ")
    assert err.value.field == "name"
    # another partner may use the name
    await groups.create(conn, other[0], name="Customers")


async def test_member_counts_follow_every_write(conn, tenant):
    partner_id, user_id = tenant
    a = await groups.create(conn, partner_id, name="A")
    b = await groups.create(conn, partner_id, name="B")
    one = await contacts.create(conn, partner_id, ContactInput("447700900001", (a.id,)), user_id=user_id)
    two = await contacts.create(conn, partner_id, ContactInput("447700900002", (a.id, b.id)), user_id=user_id)
    assert [(await groups.get(conn, partner_id, g.id)).member_count for g in (a, b)] == [2, 1]
    assert await contacts.add_to_group(conn, partner_id, [one.id, two.id], b.id, user_id=user_id) == 1
    assert (await groups.get(conn, partner_id, b.id)).member_count == 2
    # one.id is only in A and B now; removing from A leaves it in B
    assert await contacts.remove_from_group(conn, partner_id, [one.id], a.id, user_id=user_id) == 1
    # two cannot leave its last group
    assert await contacts.move_to_group(conn, partner_id, [two.id], b.id, user_id=user_id) == 1
    assert await contacts.remove_from_group(conn, partner_id, [two.id], b.id, user_id=user_id) == 0
    assert [(await groups.get(conn, partner_id, g.id)).member_count for g in (a, b)] == [0, 2]
    assert await contacts.delete(conn, partner_id, [one.id]) == 1
    assert (await groups.get(conn, partner_id, b.id)).member_count == 1
    recount = await conn.fetchval(
        "SELECT count(*) FROM contacts WHERE partner_id = $1 AND group_ids @> ARRAY[$2::bigint]",
        partner_id, b.id)
    assert recount == 1


async def test_a_contact_is_always_in_a_group(conn, tenant):
    partner_id, _ = tenant
    with pytest.raises(asyncpg.CheckViolationError):
        await conn.execute(
            "INSERT INTO contacts (partner_id, phone, group_ids) VALUES ($1, '447700900001', '{}')",
            partner_id)


async def test_phone_unique_per_partner_with_a_clear_error(conn, tenant, other):
    partner_id, user_id = tenant
    group = await groups.create(conn, partner_id, name="G")
    await contacts.create(conn, partner_id, ContactInput("447700900001", (group.id,)), user_id=user_id)
    with pytest.raises(Conflict) as err:
        await contacts.create(conn, partner_id, ContactInput("447700900001", (group.id,)), user_id=user_id)
    assert err.value.field == "phone"
    other_group = await groups.create(conn, other[0], name="G")
    await contacts.create(conn, other[0], ContactInput("447700900001", (other_group.id,)), user_id=None)


async def test_other_partners_groups_are_refused(conn, tenant, other):
    partner_id, user_id = tenant
    theirs = await groups.create(conn, other[0], name="Theirs")
    with pytest.raises(Invalid):
        await contacts.create(conn, partner_id, ContactInput("447700900001", (theirs.id,)), user_id=user_id)
    with pytest.raises(NotFound):
        await groups.get(conn, partner_id, theirs.id)
    with pytest.raises(NotFound):
        await groups.delete(conn, partner_id, [theirs.id])
    mine = await groups.create(conn, partner_id, name="Mine")
    contact = await contacts.create(conn, partner_id, ContactInput("447700900001", (mine.id,)), user_id=user_id)
    with pytest.raises(NotFound):
        await contacts.get(conn, other[0], contact.id)
    with pytest.raises(NotFound):
        await contacts.add_to_group(conn, partner_id, [contact.id], theirs.id, user_id=user_id)
    assert await contacts.delete(conn, other[0], [contact.id]) == 0


async def test_stop_list_group_blocks_all_senders_and_the_pipeline_sees_it(conn, tenant):
    partner_id, user_id = tenant
    group = await groups.create(conn, partner_id, name="G")
    stop = await groups.stop_list_group(conn, partner_id)
    contact = await contacts.create(conn, partner_id, ContactInput("447700900001", (group.id,)), user_id=user_id)
    await contacts.move_to_stop_list(conn, partner_id, [contact.id], ["Herald"], user_id=user_id)
    assert await pipeline_stoplist.stopped(conn, [(partner_id, "Herald", "447700900001"),
                                                  (partner_id, "Other", "447700900001")]) == {
        (partner_id, "Herald", "447700900001")}
    await contacts.move_to_stop_list(conn, partner_id, [contact.id], ["Promo"], user_id=user_id)
    assert (await contacts.get(conn, partner_id, contact.id)).blocked == ["Herald", "Promo"]
    await contacts.move_to_group(conn, partner_id, [contact.id], stop.id, user_id=user_id)
    got = await contacts.get(conn, partner_id, contact.id)
    assert got.group_ids == [stop.id] and got.blocked == ["*", "Herald", "Promo"]
    assert await pipeline_stoplist.stopped(conn, [(partner_id, "Other", "447700900001")])
    # out of the Stop List group: the all-senders block goes, single ones stay
    await contacts.move_to_group(conn, partner_id, [contact.id], group.id, user_id=user_id)
    assert (await contacts.get(conn, partner_id, contact.id)).blocked == ["Herald", "Promo"]


async def test_deleting_groups_deletes_contacts_left_without_one(conn, tenant):
    partner_id, user_id = tenant
    a = await groups.create(conn, partner_id, name="A")
    b = await groups.create(conn, partner_id, name="B")
    only_a = await contacts.create(conn, partner_id, ContactInput("447700900001", (a.id,)), user_id=user_id)
    both = await contacts.create(conn, partner_id, ContactInput("447700900002", (a.id, b.id)), user_id=user_id)
    assert await groups.contacts_only_in(conn, partner_id, [a.id]) == 1
    assert await groups.delete(conn, partner_id, [a.id]) == (1, 1)
    with pytest.raises(NotFound):
        await contacts.get(conn, partner_id, only_a.id)
    assert (await contacts.get(conn, partner_id, both.id)).group_ids == [b.id]
    assert (await groups.get(conn, partner_id, b.id)).member_count == 1


async def test_group_named_by_a_reply_template_cannot_be_deleted(conn, tenant):
    partner_id, _ = tenant
    group = await groups.create(conn, partner_id, name="Subscribers")
    await conn.execute(
        """INSERT INTO reply_templates (partner_id, keywords, action, subscribe_group_id)
           VALUES ($1, 'join', 'subscribe', $2)""", partner_id, group.id)
    with pytest.raises(Conflict):
        await groups.delete(conn, partner_id, [group.id])


async def test_nesting_never_makes_a_cycle(conn, tenant):
    partner_id, _ = tenant
    a = await groups.create(conn, partner_id, name="A")
    b = await groups.create(conn, partner_id, name="B", parent_id=a.id)
    c = await groups.create(conn, partner_id, name="C", parent_id=b.id)
    with pytest.raises(Invalid):
        await groups.nest(conn, partner_id, a.id, c.id)
    with pytest.raises(Invalid):
        await groups.nest(conn, partner_id, a.id, a.id)
    moved = await groups.nest(conn, partner_id, c.id, None)
    assert moved.parent_id is None
    await groups.delete(conn, partner_id, [a.id])
    assert (await groups.get(conn, partner_id, b.id)).parent_id is None


async def test_custom_fields_filter_any_case_and_delete_cleans_values(conn, tenant):
    partner_id, user_id = tenant
    city = await fields.create_field(conn, partner_id, name="Home City", data_type="text")
    assert city.variable == "homecity" and city.placeholder == "{homecity}"
    tier = await fields.create_field(conn, partner_id, name="Tier", data_type="number")
    with pytest.raises(Conflict):
        await fields.create_field(conn, partner_id, name="home city!", data_type="text")
    with pytest.raises(Conflict):
        await fields.create_field(conn, partner_id, name="First Name", data_type="text")
    group = await groups.create(conn, partner_id, name="G")
    await contacts.create(conn, partner_id, ContactInput(
        "447700900001", (group.id,), fields={"homecity": "Paris", "tier": 3}), user_id=user_id)
    await contacts.create(conn, partner_id, ContactInput(
        "447700900002", (group.id,), fields={"homecity": "Москва", "tier": 2}), user_id=user_id)
    found = await contacts.list_page(conn, partner_id, ContactFilter(custom={"homecity": "PARIS"}))
    assert [c.phone for c in found] == ["447700900001"]
    found = await contacts.list_page(conn, partner_id, ContactFilter(custom={"homecity": "москва"}))
    assert [c.phone for c in found] == ["447700900002"]
    found = await contacts.list_page(conn, partner_id, ContactFilter(custom={"tier": 2}))
    assert [c.phone for c in found] == ["447700900002"]
    await fields.delete_field(conn, partner_id, tier.key)
    assert await conn.fetchval(
        "SELECT count(*) FROM contacts WHERE partner_id = $1 AND fields ? 'tier'", partner_id) == 0
    listed = [f.key for f in await fields.list_fields(conn, partner_id)]
    assert city.key in listed and tier.key not in listed


async def test_keyset_pages_and_phone_prefix(conn, tenant):
    partner_id, user_id = tenant
    group = await groups.create(conn, partner_id, name="G")
    made = []
    for n in range(7):
        made.append(await contacts.create(
            conn, partner_id, ContactInput(f"4477009000{n:02d}", (group.id,)), user_id=user_id))
    first = await contacts.list_page(conn, partner_id, ContactFilter(), limit=3)
    assert [c.id for c in first] == [c.id for c in reversed(made)][:3]
    second = await contacts.list_page(conn, partner_id, ContactFilter(), after=(first[-1].id,), limit=3)
    assert [c.id for c in second] == [c.id for c in reversed(made)][3:6]
    back = await contacts.list_page(conn, partner_id, ContactFilter(), before=(second[0].id,), limit=3)
    assert back == first
    prefixed = await contacts.list_page(conn, partner_id, ContactFilter(phone="44770090000"))
    assert len(prefixed) == 7
    assert await contacts.list_page(conn, partner_id, ContactFilter(phone="3")) == []
    # tampered positions are ignored, not errors
    assert len(await contacts.list_page(conn, partner_id, ContactFilter(), after=(2**70,))) == 7
    assert len(await contacts.list_page(conn, partner_id, ContactFilter(), after=("x",))) == 7


async def test_stop_list_screen_lists_numbers_with_and_without_contacts(conn, tenant, other):
    partner_id, user_id = tenant
    group = await groups.create(conn, partner_id, name="G")
    await contacts.create(conn, partner_id, ContactInput("447700900001", (group.id,), first_name="Ada"),
                          user_id=user_id, blocked=["Herald"])
    await pipeline_stoplist.add(conn, partner_id, "447700900009", "Promo", source="mo")
    await pipeline_stoplist.add(conn, other[0], "447700900005", "Promo", source="mo")
    page = await stoplist.list_page(conn, partner_id)
    assert [(b.msisdn, b.senders, b.first_name) for b in page] == [
        ("447700900001", ["Herald"], "Ada"), ("447700900009", ["Promo"], "")]
    assert [b.msisdn for b in await stoplist.list_page(conn, partner_id, sender="promo")] == ["447700900009"]
    assert await stoplist.unblock(conn, partner_id, ["447700900009"], ["Promo"]) == 1
    assert [b.msisdn for b in await stoplist.list_page(conn, partner_id)] == ["447700900001"]


async def test_filtered_pages_find_old_rows_past_the_near_window(conn, tenant, monkeypatch):
    """A filter whose matches are all old is served from the filters' indexes, in order."""
    partner_id, user_id = tenant
    monkeypatch.setattr(contacts, "NEAR_ROWS", 3)
    group = await groups.create(conn, partner_id, name="G")
    old = [await contacts.create(conn, partner_id, ContactInput(f"3460000000{n}", (group.id,)), user_id=user_id)
           for n in range(5)]
    for n in range(8):
        await contacts.create(conn, partner_id, ContactInput(f"4477009000{n:02d}", (group.id,)), user_id=user_id)
    flt = ContactFilter(phone="346")
    first = await contacts.list_page(conn, partner_id, flt, limit=2)
    assert [c.id for c in first] == [old[4].id, old[3].id]
    second = await contacts.list_page(conn, partner_id, flt, after=(first[-1].id,), limit=2)
    assert [c.id for c in second] == [old[2].id, old[1].id]
    back = await contacts.list_page(conn, partner_id, flt, before=(second[0].id,), limit=2)
    assert [c.id for c in back] == [c.id for c in first]
    streamed = [c.id async for c in contacts.stream(conn, partner_id, flt)]
    assert streamed == [c.id for c in reversed(old)]
