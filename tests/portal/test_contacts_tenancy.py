"""Contacts screens: a user of partner A gets 404 for every route naming partner B's objects,
and hostile text typed by a partner is shown escaped on every screen."""

from __future__ import annotations

import pytest_asyncio

from contacts import contacts, groups, stoplist
from tests.portal.conftest import page, post, sign_in, token_for
from tests.portal.contacts_world import make_world

HOSTILE = '<script>alert("x")</script>{{ 7*7 }}%(num)s\u202e'


@pytest_asyncio.fixture(loop_scope="session")
async def two(client, db):
    mine = await make_world(db, "ada@client.test", "Acme Ltd")
    theirs = await make_world(db, "bob@rival.test", "Rival Ltd", name="Bob", phone="447700900124")
    await sign_in(client, mine.email)
    return mine, theirs


def get_routes(b) -> list[str]:
    return [
        f"/contacts/{b.contact_id}/edit",
        f"/contacts/action/add-group?ids={b.contact_id}", f"/contacts/action/remove-group?ids={b.contact_id}",
        f"/contacts/action/move-group?ids={b.contact_id}", f"/contacts/action/stop?ids={b.contact_id}",
        f"/contacts/action/delete?ids={b.contact_id}", f"/contacts/export?ids={b.contact_id}",
        f"/contacts/groups/{b.group_id}/edit", f"/contacts/groups/{b.group_id}/move",
        f"/contacts/groups/{b.group_id}/delete", f"/contacts/groups/{b.group_id}/export",
        f"/contacts/groups/{b.stop_group_id}/export",
        f"/contacts/stop-list/{b.msisdn}/remove", f"/contacts/stop-list/{b.msisdn}/export",
        f"/contacts/imports/{b.import_id}", f"/contacts/imports/{b.import_id}/progress",
        f"/contacts/imports/{b.import_id}/file", f"/contacts/imports/{b.import_id}/rejects",
        f"/contacts/import/{b.import_id}/file", f"/contacts/import/{b.import_id}/mapping",
        f"/contacts/import/{b.import_id}/group",
    ]


def post_routes(b) -> list[tuple[str, list]]:
    ids = [("ids", str(b.contact_id))]
    return [
        (f"/contacts/{b.contact_id}", [("phone", "+447700900555"), ("groups", str(b.group_id))]),
        ("/contacts/action/delete", ids), ("/contacts/action/stop", [*ids, ("senders", "*")]),
        ("/contacts/action/add-group", [*ids, ("group", str(b.group_id))]),
        ("/contacts/action/move-group", [*ids, ("group", str(b.group_id))]),
        ("/contacts/bulk/delete", ids), ("/contacts/bulk/stop", ids), ("/contacts/bulk/export", ids),
        (f"/contacts/groups/{b.group_id}", [("name", "Mine now"), ("description", ""), ("parent_id", "")]),
        (f"/contacts/groups/{b.group_id}/move", [("parent_id", "")]),
        ("/contacts/groups/delete", [("ids", str(b.group_id))]),
        ("/contacts/groups/bulk/delete", [("ids", str(b.group_id))]),
        ("/contacts/groups/bulk/export", [("ids", str(b.group_id))]),
        ("/contacts/stop-list/remove", [("ids", b.msisdn), ("senders", "Herald")]),
        ("/contacts/stop-list/bulk/remove", [("ids", b.msisdn)]),
        ("/contacts/stop-list/bulk/export", [("ids", b.msisdn)]),
        (f"/contacts/import/{b.import_id}/mapping", [("map", "phone"), ("mode", "add_update"), ("stop_mode", "exclude")]),
        (f"/contacts/import/{b.import_id}/group", [("group", str(b.group_id))]),
        ("/contacts/imports/bulk/export", [("ids", str(b.import_id))]),
        (f"/contacts/fields/{b.field_key}/delete", []),
    ]


async def test_every_route_is_404_for_another_partners_ids(client, db, two):
    _mine, theirs = two
    for path in get_routes(theirs):
        status, _ = await page(client, path)
        assert status == 404, path
    token = await token_for(client, "/contacts")
    for path, form in post_routes(theirs):
        response = await post(client, path, form, token=token)
        assert response.status == 404, (path, response.status)
    # and nothing of theirs moved
    contact = await contacts.get(db, theirs.partner_id, theirs.contact_id)
    assert contact.group_ids == [theirs.group_id] and contact.first_name == "Bob"
    assert await stoplist.senders_of(db, theirs.partner_id, theirs.msisdn) == ["Herald"]
    assert (await groups.get(db, theirs.partner_id, theirs.group_id)).name == "Rival Ltd customers"
    status, html = await page(client, "/contacts")
    assert "Ada" in html and "Bob" not in html and "Rival" not in html
    status, html = await page(client, "/contacts/stop-list")
    assert "Bob" not in html


async def test_own_field_key_of_another_partner_is_404(client, db, two):
    mine, theirs = two
    assert mine.field_key != theirs.field_key
    status, _ = await page(client, f"/contacts/fields/{theirs.field_key}/delete")
    assert status == 404


async def test_hostile_text_is_escaped_on_every_screen(client, db, two):
    mine, _ = two
    token = await token_for(client, "/contacts/groups/new")
    assert (await post(client, "/contacts/groups", {"name": HOSTILE, "description": HOSTILE, "parent_id": ""},
                       token=token)).status == 303
    assert (await post(client, "/contacts/fields", {"name": "Note " + HOSTILE, "data_type": "text"},
                       token=token)).status == 303
    hostile_group = next(g for g in await groups.all_groups(db, mine.partner_id) if g.name.startswith("<script"))
    note_id = await db.fetchval(
        "SELECT id FROM contact_fields WHERE partner_id = $1 AND name LIKE 'Note%'", mine.partner_id)
    note_key = f"cf.{note_id}"
    response = await post(client, "/contacts", [
        ("phone", "+447700900777"), ("groups", str(hostile_group.id)), ("first_name", HOSTILE[:100]),
        ("comments", HOSTILE), (note_key, HOSTILE)], token=token)
    assert response.status == 303, await response.text()
    await stoplist.block(db, mine.partner_id, ["447700900777"], ['"><img src=x onerror=alert(1)>'])
    await db.execute("UPDATE contact_imports SET file_name = $2 WHERE id = $1", mine.import_id, HOSTILE)
    contact = await contacts.for_phone(db, mine.partner_id, "447700900777")
    paths = ["/contacts", f"/contacts/{contact.id}/edit", "/contacts/groups", "/contacts/settings",
             "/contacts/stop-list", f"/contacts/action/move-group?ids={contact.id}",
             f"/contacts/groups/{hostile_group.id}/delete", f"/contacts/groups/{hostile_group.id}/move",
             "/contacts/stop-list/447700900777/remove", "/contacts/imports", f"/contacts/imports/{mine.import_id}",
             "/contacts/new", f"/contacts?group={hostile_group.id}"]
    await db.execute("""UPDATE users SET ui_prefs = '{"tables": {"contacts": {"order": [], "hidden": []}}}'
                        WHERE id = $1""", mine.user_id)
    for path in paths:
        status, html = await page(client, path)
        assert status == 200, path
        assert "<script>alert" not in html, path
        assert "<img src=x" not in html, path
        assert "{{ 7*7 }}" not in html or "49" not in html.split("{{ 7*7 }}")[0][-3:], path
    status, html = await page(client, "/contacts")
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "%(num)s" in html  # shown as typed, never used as a format


async def test_crafted_input_is_4xx(client, db, two):
    mine, _ = two
    token = await token_for(client, "/contacts")
    for path in ("/contacts/99999999999999999999/edit", f"/contacts/{2**63}/edit", "/contacts/0/edit",
                 "/contacts/action/nope?ids=1", "/contacts/action/add-group?ids=x", f"/contacts/action/add-group?ids={2**64}",
                 "/contacts/imports/99999999999999999999", "/contacts/stop-list/999999999999999999999/remove",
                 "/contacts/fields/" + "x" * 100 + "/delete", "/contacts/fields/cf.99999999999999999999/delete",
                 "/contacts/fields/phone/delete"):
        status, _ = await page(client, path)
        assert status == 404, path
    for query in ("after=!!!", "before=" + "A" * 600, "after=WyJzIiwieCJd", "group=abc", "created=2020-99-99",
                  "phone=%00", "user=1%00", "cf.1=%00", "birth_date=0000-00-00"):
        status, _ = await page(client, f"/contacts?{query}")
        assert status == 200, query
    for form in ([("phone", "\x00"), ("groups", str(mine.group_id))],
                 [("phone", "+447700900888"), ("groups", str(mine.group_id)), ("first_name", "a\x00b")],
                 [("phone", "+447700900888"), ("groups", str(2**63))],
                 [("phone", "+447700900888"), ("groups", str(mine.group_id)), (mine.field_key, "x" * 5000)]):
        response = await post(client, "/contacts", form, token=token)
        assert response.status == 400, form
    response = await post(client, "/contacts/groups", {"name": "a\x00b", "description": "", "parent_id": ""},
                          token=token)
    assert response.status == 400
    response = await post(client, "/contacts/action/add-group", [("ids", str(mine.contact_id)), ("group", "x")],
                          token=token)
    assert response.status == 400
    response = await post(client, "/contacts/action/stop", [("ids", str(mine.contact_id))], token=token)
    assert response.status == 400


async def test_nul_in_names_is_a_form_error(client, two):
    token = await token_for(client, "/contacts")
    response = await post(client, "/contacts/fields", {"name": "a\x00b", "data_type": "text"}, token=token)
    assert response.status == 400
    response = await post(client, "/contacts/stop-list", [("phone", "\x00"), ("senders", "*")], token=token)
    assert response.status == 400
    status, _ = await page(client, "/contacts/groups?q=%00")
    assert status == 200
    status, _ = await page(client, "/contacts/imports?q=%00&status=%00")
    assert status == 200
    status, _ = await page(client, "/contacts/stop-list?phone=%00&sender=%00")
    assert status == 200
