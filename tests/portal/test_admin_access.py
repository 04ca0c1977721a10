"""Admin Panel access: sign-in redirect, 403 for non-admins, CSRF, and the reseller's tenancy (404)."""

from __future__ import annotations

import pytest
import pytest_asyncio

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD
from tests.portal.admin_world import (
    INSIDE_EMAIL,
    RESELLER_EMAIL,
    build_world,
    foreign_routes,
    get_routes,
    owner_only_routes,
    post_routes,
)
from tests.portal.conftest import page, post, sign_in, token_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def world(db):
    return await build_world(db)


async def test_signed_out_visitors_go_to_sign_in(client, world):
    for path in get_routes(world):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/signin?next="), path


async def test_users_of_end_user_partners_get_403(client, world):
    await sign_in(client, INSIDE_EMAIL)
    for path in get_routes(world):
        status, _ = await page(client, path)
        assert status == 403, path
    for path in post_routes(world):
        response = await post(client, path, {"name": "x"})
        assert response.status == 403, path


async def test_admin_menu_entry_only_for_admins(client, world):
    await sign_in(client, INSIDE_EMAIL)
    _, html = await page(client, "/")
    assert 'href="/admin"' not in html
    assert 'href="/sender-ids"' in html


async def test_every_admin_form_needs_the_csrf_token(client, world):
    await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for path in post_routes(world):
        response = await post(client, path, {"name": "x", "amount": "5"}, csrf=False)
        assert response.status == 403, path


async def test_owner_reaches_every_page(client, world, db):
    await sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD)
    for path in get_routes(world):
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
    _, html = await page(client, "/admin/partners")
    assert 'href="/admin/vendors"' in html and 'href="/admin/reference-book"' in html
    # the panel speaks the admin's language
    await db.execute("UPDATE users SET language = 'es' WHERE email = $1", ADMIN_EMAIL)
    _, html = await page(client, "/admin/partners")
    assert "Nuevo socio" in html and "Libro de referencia" in html and "Revendedor" in html
    await db.execute("UPDATE users SET language = 'ru' WHERE email = $1", ADMIN_EMAIL)
    _, html = await page(client, f"/admin/sender-ids/{world.outside_sender}")
    assert "Одобрить" in html and "Ожидает одобрения" in html


async def test_reseller_gets_404_for_objects_outside_its_subtree(client, world):
    await sign_in(client, RESELLER_EMAIL)
    token = None
    for method, path in foreign_routes(world):
        if method == "GET":
            status, _ = await page(client, path)
        else:
            if token is None:
                token = await token_for(client, "/admin/partners/new")
            response = await post(client, path, {"name": "x", "amount": "5", "comment": "c"}, token=token)
            status = response.status
        assert status == 404, (method, path)


async def test_reseller_gets_403_on_owner_only_screens(client, world):
    await sign_in(client, RESELLER_EMAIL)
    _, html = await page(client, "/admin/partners")
    assert 'href="/admin/vendors"' not in html
    for method, path in owner_only_routes(world):
        if method == "GET":
            status, _ = await page(client, path)
        else:
            status = (await post(client, path, {"name": "x"}, token=None)).status
        assert status == 403, (method, path)


async def test_reseller_sees_only_its_subtree(client, world, app, make_client):
    await sign_in(client, RESELLER_EMAIL)
    _, html = await page(client, "/admin/partners")
    assert "Inside" in html and "Outside" not in html
    _, html = await page(client, "/admin/users")
    assert INSIDE_EMAIL in html and "outside@client.test" not in html
    _, html = await page(client, "/admin/sender-ids?view=all")
    assert "OutBrand" not in html
    _, html = await page(client, "/admin/smpp-accounts")
    assert "outsmpp" not in html
    _, html = await page(client, "/admin/portals")
    assert "localhost" not in html
    # ... while the owner sees all of it
    owner = await make_client(app)
    await sign_in(owner, ADMIN_EMAIL, ADMIN_PASSWORD)
    _, html = await page(owner, "/admin/partners")
    assert "Inside" in html and "Outside" in html and "Resale" in html
