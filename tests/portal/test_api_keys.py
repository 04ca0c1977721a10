"""API keys: the domain (gateway.intake.apikeys) and the API Connections pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from config.errors import Conflict, Invalid, NotFound
from gateway.base import secretbox
from gateway.base.app import SETTINGS
from gateway.intake import apikeys
from gateway.report import callbacks
from gateway.runtime.services import signing_key
from portal.pages.api_connections import last_used_text
from tests.portal.conftest import make_client_user, page, post, sign_in


@pytest.fixture
async def partner(conn):
    owner = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    portal = await conn.fetchval("SELECT id FROM portals WHERE is_default")
    return await conn.fetchval(
        "INSERT INTO partners (parent_id, kind, name, portal_id) VALUES ($1, 'client', 'K', $2) RETURNING id",
        owner, portal,
    )


# Domain

async def test_key_is_shown_once_and_stored_hashed(conn, partner):
    key, plain = await apikeys.create(conn, partner_id=partner, created_by=None, name="CRM", ttl="7d")
    assert plain.startswith("hrd_") and len(plain) > 40
    stored = await conn.fetchrow("SELECT key_hash, key_prefix FROM api_keys WHERE id = $1", key.id)
    assert stored["key_hash"] == apikeys.hash_key(plain) and plain not in stored["key_prefix"] + "x"
    assert plain.startswith(stored["key_prefix"])
    assert timedelta(days=6, hours=23) < key.expires_at - key.created_at <= timedelta(days=7)
    found = await apikeys.verify(conn, plain)
    assert found.id == key.id and found.partner_id == partner


async def test_verify_refuses_unknown_expired_and_removed(conn, partner):
    key, plain = await apikeys.create(conn, partner_id=partner, created_by=None, name="CRM", ttl="1d")
    for bad in ("", "hrd_nope", plain + "x", "Bearer " + plain):
        with pytest.raises(apikeys.InvalidApiKey):
            await apikeys.verify(conn, bad)
    await conn.execute("UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = $1", key.id)
    with pytest.raises(apikeys.InvalidApiKey):
        await apikeys.verify(conn, plain)
    refreshed = await apikeys.refresh(conn, partner, key.id)
    assert refreshed.expires_at > datetime.now(UTC) + timedelta(hours=23)
    assert (await apikeys.verify(conn, plain)).id == key.id
    await apikeys.remove_one(conn, partner, key.id)
    with pytest.raises(apikeys.InvalidApiKey):
        await apikeys.verify(conn, plain)
    assert apikeys.InvalidApiKey.http_status == 401


async def test_last_used_is_touched_at_most_once_a_minute(conn, partner):
    key, plain = await apikeys.create(conn, partner_id=partner, created_by=None, name="CRM", ttl="never")
    assert key.expires_at is None
    await apikeys.verify(conn, plain)
    first = await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key.id)
    assert first is not None
    await conn.execute("UPDATE api_keys SET last_used_at = now() - interval '30 seconds' WHERE id = $1", key.id)
    before = await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key.id)
    await apikeys.verify(conn, plain)
    assert await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key.id) == before
    await conn.execute("UPDATE api_keys SET last_used_at = now() - interval '2 minutes' WHERE id = $1", key.id)
    await apikeys.verify(conn, plain)
    assert await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key.id) > before


async def test_names_unique_per_partner_and_validated(conn, partner):
    await apikeys.create(conn, partner_id=partner, created_by=None, name="CRM")
    with pytest.raises(Conflict) as exc:
        await apikeys.create(conn, partner_id=partner, created_by=None, name="crm")
    assert exc.value.field == "name"
    with pytest.raises(Invalid):
        await apikeys.create(conn, partner_id=partner, created_by=None, name="x" * 61)
    with pytest.raises(Invalid):
        await apikeys.create(conn, partner_id=partner, created_by=None, name="ok", callback_url="ftp://x")
    with pytest.raises(Invalid):
        await apikeys.create(conn, partner_id=partner, created_by=None, name="ok", ttl="2d")
    # A removed key frees its name.
    key = (await apikeys.list_page(conn, partner))[0]
    await apikeys.remove_one(conn, partner, key.id)
    await apikeys.create(conn, partner_id=partner, created_by=None, name="CRM")


async def test_other_partners_keys_are_not_found(conn, partner):
    key, _ = await apikeys.create(conn, partner_id=partner, created_by=None, name="CRM")
    stranger = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    with pytest.raises(NotFound):
        await apikeys.get(conn, stranger, key.id)
    with pytest.raises(NotFound):
        await apikeys.refresh(conn, stranger, key.id)
    with pytest.raises(NotFound):
        await apikeys.remove_one(conn, stranger, key.id)
    assert await apikeys.remove(conn, stranger, [key.id]) == []


async def test_keyset_pages(conn, partner):
    for index in range(7):
        await apikeys.create(conn, partner_id=partner, created_by=None, name=f"k{index}")
    first = await apikeys.list_page(conn, partner, limit=3)
    assert [k.name for k in first] == ["k6", "k5", "k4"]
    second = await apikeys.list_page(conn, partner, after=(first[-1].created_at, first[-1].id), limit=3)
    assert [k.name for k in second] == ["k3", "k2", "k1"]
    back = await apikeys.list_page(conn, partner, before=(second[0].created_at, second[0].id), limit=3)
    assert [k.name for k in back] == ["k6", "k5", "k4"]
    assert [k.name for k in await apikeys.list_page(conn, partner, search="k1")] == ["k1"]
    assert await apikeys.list_page(conn, partner, search="%") == []


APP_SECRET = "portal-test-app-secret-" + "q" * 30


async def test_signing_secret_is_shown_once_and_stored_sealed(conn, partner):
    new = await apikeys.create_with_secret(conn, app_secret=APP_SECRET, partner_id=partner,
                                           created_by=None, name="CRM")
    assert new.signing_secret.startswith("hrs_") and len(new.signing_secret) > 40
    row = await conn.fetchrow("SELECT key_hash, signing_secret, signing_secret_at FROM api_keys"
                              " WHERE id = $1", new.key.id)
    assert row["signing_secret_at"] is not None
    assert new.signing_secret.encode() not in row["signing_secret"]
    assert new.signing_secret.removeprefix("hrs_").encode() not in row["signing_secret"]
    assert apikeys.open_signing_secret(APP_SECRET, row["key_hash"], row["signing_secret"]) \
        == new.signing_secret
    with pytest.raises(secretbox.Unreadable):      # another secret key does not open it
        apikeys.open_signing_secret(APP_SECRET + "x", row["key_hash"], row["signing_secret"])
    with pytest.raises(secretbox.Unreadable):      # nor does the sealed value on another row
        apikeys.open_signing_secret(APP_SECRET, b"\x00" * 32, row["signing_secret"])
    # The key itself (what authenticates) is unrelated to the signing secret.
    assert (await apikeys.verify(conn, new.plain)).id == new.key.id
    with pytest.raises(apikeys.InvalidApiKey):
        await apikeys.verify(conn, new.signing_secret)


def test_last_used_wording():
    now = datetime(2025, 6, 1, tzinfo=UTC)
    assert last_used_text(None, now) == "Never used"
    assert last_used_text(now - timedelta(minutes=5), now) == "Last used within the past hour"
    assert last_used_text(now - timedelta(hours=5), now) == "Last used within the past day"
    assert last_used_text(now - timedelta(days=3), now) == "Last used within the past week"
    assert last_used_text(now - timedelta(days=20), now) == "Last used within the past month"
    assert last_used_text(now - timedelta(days=100), now) == "Last used within the past 4 months"


# Pages

async def test_create_key_shows_it_once(client, db, signed_in):
    status, html = await page(client, "/api-connections/keys")
    assert status == 200 and "You have no API keys yet" in html
    status, html = await page(client, "/api-connections/keys/new")
    assert status == 200 and 'name="ttl"' in html and "Never expires" in html
    response = await post(client, "/api-connections/keys", {
        "name": "Shop", "callback_url": "https://shop.test/dlr", "ttl": "3m"})
    assert response.status == 303 and response.headers["Location"] == "/api-connections/keys"
    status, html = await page(client, "/api-connections/keys")
    shown = re.search(r'id="new-key-value"[^>]*>(hrd_[^<]+)<', html).group(1)
    assert "This is the only time the key will ever be displayed" in html
    key = await apikeys.verify(db, shown)
    assert key.partner_id == signed_in["partner_id"] and key.ttl == "3m"
    status, html = await page(client, "/api-connections/keys")
    assert shown not in html and "new-key-value" not in html
    assert "Shop" in html and "Active" in html
    assert "Last used within the past hour" in html  # verify() above used it


async def test_new_key_shows_its_signing_secret_once_and_it_verifies_callbacks(
        client, db, signed_in):
    response = await post(client, "/api-connections/keys", {
        "name": "Shop", "callback_url": "https://shop.test/dlr", "ttl": "3m"})
    assert response.status == 303
    _status, html = await page(client, "/api-connections/keys")
    plain = re.search(r'id="new-key-value"[^>]*>(hrd_[^<]+)<', html).group(1)
    secret = re.search(r'id="new-signing-secret"[^>]*>(hrs_[^<]+)<', html).group(1)
    assert "Signing secret" in html and "X-Herald-Signature" in html
    key = await apikeys.verify(db, plain)
    # What Herald signs a callback with is what a receiver holding the shown secret checks.
    app_secret = client.app[SETTINGS].secret_key
    herald_key = await apikeys.callback_signing_key(db, key.id, app_secret)
    body = b'{"transactionID":"x","status":"DELIVERED"}'
    header = callbacks.sign(herald_key, body, 1_800_000_000)
    assert callbacks.verify(signing_key(secret), header, body, now=1_800_000_000)
    _status, html = await page(client, "/api-connections/keys")
    assert secret not in html and "new-signing-secret" not in html

    # Rotation: a new secret, shown once (without the key), and the old one stops verifying.
    response = await post(client, f"/api-connections/keys/{key.id}/signing-secret", {})
    assert response.status == 303 and response.headers["Location"] == "/api-connections/keys"
    _status, html = await page(client, "/api-connections/keys")
    rotated = re.search(r'id="new-signing-secret"[^>]*>(hrs_[^<]+)<', html).group(1)
    assert rotated != secret and "new-key-value" not in html
    assert "Here is the new signing secret" in html
    header = callbacks.sign(await apikeys.callback_signing_key(db, key.id, app_secret), body,
                            1_800_000_000)
    assert callbacks.verify(signing_key(rotated), header, body, now=1_800_000_000)
    assert not callbacks.verify(signing_key(secret), header, body, now=1_800_000_000)
    _status, html = await page(client, "/api-connections/keys")
    assert rotated not in html


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"name": "", "ttl": "30d"}, "name", "This field is required."),
    ({"name": "x" * 61, "ttl": "30d"}, "name", "Use at most 60 characters."),
    ({"name": "Shop", "ttl": "forever"}, "ttl", "Choose one of the options."),
    ({"name": "Shop", "ttl": "30d", "callback_url": "shop.test"}, "callback_url",
     "Enter a full http:// or https:// address."),
    ({"name": "Dup", "ttl": "30d"}, "name", "A key with this name already exists."),
])
async def test_create_key_errors(client, db, signed_in, data, field, message):
    await apikeys.create(db, partner_id=signed_in["partner_id"], created_by=None, name="Dup")
    response = await post(client, "/api-connections/keys", data)
    assert response.status == 400
    html = await response.text()
    assert re.search(rf'id="{field}-error">[^<]*{re.escape(message)}', html), html[-3000:]
    if data["name"] and field != "name":
        assert f'value="{data["name"]}"' in html
    assert await db.fetchval("SELECT count(*) FROM api_keys") == 1


async def test_create_key_needs_csrf(client, signed_in):
    response = await post(client, "/api-connections/keys", {"name": "Shop", "ttl": "1d"}, csrf=False)
    assert response.status == 403


async def test_refresh_remove_and_bulk_remove(client, db, signed_in):
    partner = signed_in["partner_id"]
    keys = [(await apikeys.create(db, partner_id=partner, created_by=None, name=f"k{i}", ttl="1d"))[0]
            for i in range(4)]
    await db.execute("UPDATE api_keys SET expires_at = now() - interval '1 hour' WHERE id = $1", keys[0].id)
    _status, html = await page(client, "/api-connections/keys?status=expired")
    assert "k0" in html and "k1" not in html
    response = await post(client, f"/api-connections/keys/{keys[0].id}/refresh", {})
    assert response.status == 303
    assert (await apikeys.get(db, partner, keys[0].id)).expires_at > datetime.now(UTC)
    response = await post(client, f"/api-connections/keys/{keys[1].id}/remove", {})
    assert response.status == 303
    response = await post(client, "/api-connections/keys/bulk-remove",
                          [("ids", str(keys[2].id)), ("ids", str(keys[3].id)), ("ids", "junk")])
    assert response.status == 303
    _status, html = await page(client, "/api-connections/keys")
    assert "2 keys removed." in html
    assert await db.fetchval("SELECT count(*) FROM api_keys WHERE removed_at IS NULL") == 1


async def test_other_partners_keys_are_404(client, db, signed_in):
    other_partner, _ = await make_client_user(db, "bob@other.test", company="Other Co")
    theirs, _ = await apikeys.create(db, partner_id=other_partner, created_by=None, name="Theirs")
    for action in ("refresh", "signing-secret", "remove"):
        response = await post(client, f"/api-connections/keys/{theirs.id}/{action}", {})
        assert response.status == 404, action
        assert "Page not found" in await response.text()
    response = await post(client, "/api-connections/keys/bulk-remove", {"ids": str(theirs.id)})
    assert response.status == 303
    assert (await apikeys.get(db, other_partner, theirs.id)).name == "Theirs"
    _status, html = await page(client, "/api-connections/keys")
    assert "Theirs" not in html


async def test_keys_table_pages_and_columns(client, db, signed_in):
    partner = signed_in["partner_id"]
    for index in range(30):
        await apikeys.create(db, partner_id=partner, created_by=None, name=f"key-{index:02d}")
    _status, html = await page(client, "/api-connections/keys")
    names = re.findall(r'<span class="strong">(key-\d\d)</span>', html)
    assert names == [f"key-{i:02d}" for i in range(29, 4, -1)]
    next_url = re.search(r'href="([^"]+)" rel="next"', html).group(1).replace("&amp;", "&")
    _status, html = await page(client, next_url)
    assert re.findall(r'<span class="strong">(key-\d\d)</span>', html) == [f"key-{i:02d}" for i in range(4, -1, -1)]
    assert 'rel="next"' not in html
    prev_url = re.search(r'href="([^"]+)" rel="prev"', html).group(1).replace("&amp;", "&")
    _status, html = await page(client, prev_url)
    assert re.findall(r'<span class="strong">(key-\d\d)</span>', html)[0] == "key-29"
    assert 'rel="prev"' not in html

    # Column settings: hide "Created", show "Callback URL" first; remembered for the user.
    assert '<th scope="col" class="col-created">' in html and "col-callback" not in html
    response = await post(client, "/prefs/table/api_keys", [
        ("order", "callback"), ("order", "name"), ("order", "status"), ("order", "expires"),
        ("order", "last_used"), ("order", "created"), ("order", "prefix"),
        ("visible", "callback"), ("visible", "name"), ("visible", "status"),
        ("next", "/api-connections/keys"),
    ])
    assert response.status == 303 and response.headers["Location"] == "/api-connections/keys"
    prefs = await db.fetchval("SELECT ui_prefs FROM users WHERE id = $1", signed_in["id"])
    assert prefs["tables"]["api_keys"]["hidden"] == ["expires", "last_used", "created", "prefix"]
    _status, html = await page(client, "/api-connections/keys")
    headers = re.findall(r'<th scope="col" class="col-(\w+)', html)
    assert headers == ["callback", "name", "status"]
    await post(client, "/prefs/table/api_keys", {"reset": "1"})
    _status, html = await page(client, "/api-connections/keys")
    assert re.findall(r'<th scope="col" class="col-(\w+)', html) == ["name", "status", "expires", "last_used", "created"]


async def test_search_filter(client, db, signed_in):
    for name in ("Shop", "Warehouse", "Shopify sync"):
        await apikeys.create(db, partner_id=signed_in["partner_id"], created_by=None, name=name)
    _status, html = await page(client, "/api-connections/keys?q=shop")
    assert re.findall(r'<span class="strong">([^<]+)</span>', html) == ["Shopify sync", "Shop"]
    _status, html = await page(client, "/api-connections/keys?q=zzz")
    assert "Nothing matches these filters." in html


async def test_methods_help(client, signed_in):
    status, html = await page(client, "/api-connections/methods")
    assert status == 200
    for part in ("Prerequisites", "Limitations", "/api/send_sms", "Authorization: Bearer",
                 "cURL", "Python", "Java", "JavaScript", "PHP", "fallbackTtl", "buttonCaption",
                 "700", 'href="/api-connections/keys/new"'):
        assert part in html, part


async def test_another_users_session_does_not_see_keys(client, app, make_client, db, signed_in):
    await apikeys.create(db, partner_id=signed_in["partner_id"], created_by=None, name="Mine")
    await make_client_user(db, "eve@other.test", company="Eve Co")
    eve = await make_client(app)
    await sign_in(eve, "eve@other.test")
    status, html = await page(eve, "/api-connections/keys")
    assert status == 200 and "Mine" not in html
