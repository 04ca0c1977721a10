"""The Contacts screens over HTTP: every page renders, forms answer with clear errors."""

from __future__ import annotations

import pytest_asyncio

from contacts import contacts, groups, stoplist
from tests.portal.conftest import page, post, sign_in, token_for
from tests.portal.contacts_world import make_world


@pytest_asyncio.fixture(loop_scope="session")
async def world(client, db):
    made = await make_world(db)
    await sign_in(client, made.email)
    return made


PAGES = [
    "/contacts", "/contacts/new", "/contacts/settings", "/contacts/settings/new-field",
    "/contacts/groups", "/contacts/groups/new", "/contacts/stop-list", "/contacts/stop-list/new",
    "/contacts/import", "/contacts/import?to=stop-list", "/contacts/imports",
]


async def test_every_page_renders(client, world):
    for path in PAGES:
        status, html = await page(client, path)
        assert status == 200, (path, html[:2000])
    for path in (f"/contacts/{world.contact_id}/edit", f"/contacts/action/add-group?ids={world.contact_id}",
                 f"/contacts/action/stop?ids={world.contact_id}", f"/contacts/action/delete?ids={world.contact_id}",
                 f"/contacts/groups/{world.group_id}/edit", f"/contacts/groups/{world.group_id}/move",
                 f"/contacts/groups/{world.group_id}/delete", f"/contacts/stop-list/{world.msisdn}/remove",
                 f"/contacts/imports/{world.import_id}", f"/contacts/fields/{world.field_key}/delete"):
        status, html = await page(client, path)
        assert status == 200, (path, html[:2000])
    for path in ("/contacts/export?format=csv", "/contacts/export?format=xlsx",
                 f"/contacts/groups/{world.group_id}/export?format=csv", "/contacts/stop-list/export?format=csv",
                 f"/contacts/imports/{world.import_id}/file", f"/contacts/imports/{world.import_id}/rejects?format=csv",
                 f"/contacts/imports/{world.import_id}/progress"):
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
        await response.read()


async def test_add_contact_with_custom_field_and_duplicate_phone(client, db, world):
    token = await token_for(client, "/contacts/new")
    form = {"phone": "07700 900456", "country": "GB", "groups": str(world.group_id),
            "first_name": "Grace", world.field_key: "York"}
    response = await post(client, "/contacts", form, token=token)
    assert response.status == 303, await response.text()
    made = await contacts.for_phone(db, world.partner_id, "447700900456")
    assert made.first_name == "Grace" and made.fields == {"city": "York"}
    response = await post(client, "/contacts", {**form, "phone": "+44 7700 900456"}, token=token)
    assert response.status == 400
    assert "A contact with this phone number exists." in await response.text()
    response = await post(client, "/contacts", {**form, "phone": "12"}, token=token)
    assert response.status == 400
    assert "Enter a valid phone number" in await response.text()
    response = await post(client, "/contacts", {"phone": "+447700900999"}, token=token)
    assert response.status == 400
    assert "Choose at least one group." in await response.text()


async def test_group_moves_and_stop_list_actions(client, db, world):
    token = await token_for(client, "/contacts")
    response = await post(client, "/contacts/action/add-group",
                          {"ids": str(world.contact_id), "group": str(world.other_group_id)}, token=token)
    assert response.status == 303
    assert sorted((await contacts.get(db, world.partner_id, world.contact_id)).group_ids) == sorted(
        [world.group_id, world.other_group_id])
    response = await post(client, "/contacts/action/stop", [("ids", str(world.contact_id)), ("senders", "Promo")],
                          token=token)
    assert response.status == 303
    assert await stoplist.senders_of(db, world.partner_id, world.msisdn) == ["Herald", "Promo"]
    response = await post(client, "/contacts/action/move-group",
                          {"ids": str(world.contact_id), "group": str(world.stop_group_id)}, token=token)
    assert response.status == 303
    assert await stoplist.senders_of(db, world.partner_id, world.msisdn) == ["*", "Herald", "Promo"]
    response = await post(client, "/contacts/stop-list/remove", [("ids", world.msisdn), ("senders", "Promo")],
                          token=token)
    assert response.status == 303
    assert await stoplist.senders_of(db, world.partner_id, world.msisdn) == ["*", "Herald"]
    status, html = await page(client, "/contacts/stop-list")
    assert status == 200 and "+447700900123" in html


async def test_group_pages(client, db, world):
    token = await token_for(client, "/contacts/groups/new")
    response = await post(client, "/contacts/groups", {"name": "VIP", "description": "Best", "parent_id": ""},
                          token=token)
    assert response.status == 303
    response = await post(client, "/contacts/groups", {"name": "vip", "description": "", "parent_id": ""},
                          token=token)
    assert response.status == 400 and "A group with this name exists." in await response.text()
    vip = next(g for g in await groups.all_groups(db, world.partner_id) if g.name == "VIP")
    response = await post(client, f"/contacts/groups/{vip.id}/move", {"parent_id": str(world.group_id)},
                          token=token)
    assert response.status == 303
    response = await post(client, f"/contacts/groups/{world.group_id}/move", {"parent_id": str(vip.id)},
                          token=token)
    assert response.status == 400
    response = await post(client, "/contacts/groups/delete", {"ids": str(world.stop_group_id)}, token=token)
    assert response.status == 400
    assert (await groups.get(db, world.partner_id, world.stop_group_id)).is_stop_list
