"""The HTTP API on the full application: send_sms, tokens, keys, callbacks, OpenAPI."""

from __future__ import annotations

import asyncio
import base64
import uuid
from decimal import Decimal

import pytest
import pytest_asyncio
from aiohttp import web

from gateway.accept.keys import PIPELINE
from gateway.accept.pipeline import Pipeline
from gateway.base.app import SETTINGS
from gateway.intake import apikeys
from gateway.report import callbacks
from gateway.runtime.main import build_app
from gateway.runtime.services import build_services, signing_key
from gateway.send.delivery import record_receipt
from gateway.store.messages import get_message, mark_sent
from tests.gateway.world import PASSWORD, RU_MOBILE, SENDER, balance, make_world


@pytest_asyncio.fixture(loop_scope="session")
async def client(settings, make_client):
    return await make_client(build_app(settings))


async def new_key(pool, world, *, callback_url="", ttl="30d", name="main"):
    key, plain = await apikeys.create(pool, partner_id=world.partner_id, created_by=world.user_id,
                                      name=name, callback_url=callback_url, ttl=ttl)
    return key, plain


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def basic(email: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{email}:{password}".encode()).decode()}


def body(**kw) -> dict:
    base = {"channels": ["SMS"], "from": SENDER, "to": [RU_MOBILE], "message": "Hello"}
    base.update(kw)
    return base


def split(line: str) -> tuple[str, str]:
    number, _, rest = line.partition(": ")
    return number, rest


async def test_send_sms_happy_path_and_duplicates_ignored(client, pool):
    world = await make_world(pool)
    key, plain = await new_key(pool, world, callback_url="http://127.0.0.1:9/cb")
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body(
        to=[RU_MOBILE, "79160000001", "+7 916 123 45 67", RU_MOBILE], label="promo"))
    assert resp.status == 200, await resp.text()
    lines = (await resp.json())["results"]
    assert [split(line)[0] for line in lines] == [RU_MOBILE, "79160000001"]
    ids = [uuid.UUID(split(line)[1]) for line in lines]
    async with pool.acquire() as conn:
        msg = await get_message(conn, ids[0])
        queued = await conn.fetchval("SELECT count(*) FROM send_queue")
        used = await conn.fetchval("SELECT last_used_at FROM api_keys WHERE id = $1", key.id)
    assert (msg.status, msg.origin, msg.label, msg.api_key_id) == ("BILLED", "api", "promo", key.id)
    assert msg.callback_url == "http://127.0.0.1:9/cb" and msg.registered_delivery == 1
    assert queued == 2 and used is not None
    assert await balance(pool, world.partner_id) == Decimal("99.90")


async def test_get_with_query_parameters_and_default_label(client, pool):
    world = await make_world(pool)
    _, plain = await new_key(pool, world)
    resp = await client.get("/api/send_sms", headers=bearer(plain), params={
        "channels": "SMS", "from": SENDER, "to": f"{RU_MOBILE},79160000001", "message": "Hi"})
    assert resp.status == 200
    lines = (await resp.json())["results"]
    assert len(lines) == 2
    label = await pool.fetchval("SELECT DISTINCT label FROM messages")
    assert len(label) == 10 and label[4] == "-"  # yyyy-MM-dd


async def test_per_recipient_errors(client, pool):
    world = await make_world(pool, balance="0.05")
    _, plain = await new_key(pool, world)
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body() | {"from": "Nobody"})
    assert (await resp.json())["results"] == [f"{RU_MOBILE}: For message: can't validate sender Nobody"]
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body(
        to=[RU_MOBILE, "12345", "79160000001"]))
    lines = (await resp.json())["results"]
    assert split(lines[0])[1].count("-") == 4          # a transaction id
    assert lines[1] == "12345: For message: invalid destination number '12345'"
    assert lines[2] == "79160000001: For message: insufficient balance"


@pytest.mark.parametrize(("payload", "field"), [
    ({"message": None}, "message"),
    ({"message": "  "}, "message"),
    ({"from": ""}, "from"),
    ({"to": []}, "to"),
    ({"channels": ["SMS", "Viber"]}, "channels"),
    ({"channels": ["Fax"]}, "channels"),
    ({"isFlashed": True, "channels": ["Viber"]}, "isFlashed"),
    ({"trafficType": "SPAM"}, "trafficType"),
    ({"fallbackTtl": "soon"}, "fallbackTtl"),
])
async def test_request_errors_name_the_field(client, pool, payload, field):
    world = await make_world(pool)
    _, plain = await new_key(pool, world)
    data = {k: v for k, v in (body() | payload).items() if v is not None}
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=data)
    assert resp.status == 400
    answer = await resp.json()
    assert answer["field"] == field and answer["error"]


async def test_documented_mo_errors(client, pool):
    world = await make_world(pool)
    _, plain = await new_key(pool, world)
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body(acceptMO=True))
    assert resp.status == 400
    assert (await resp.json())["error"] == "Partner's MO messages mode is off!"
    resp = await client.post("/api/send_sms", headers=bearer(plain),
                             json=body(acceptMO=True, isFlashed=True))
    assert resp.status == 400
    assert (await resp.json())["error"] == "MO messages are not supported in FlashMessages!"
    await pool.execute("UPDATE partners SET mo_enabled = true WHERE id = $1", world.partner_id)
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body(acceptMO=True))
    assert resp.status == 200
    assert await pool.fetchval("SELECT accept_mo FROM messages") is True


async def test_700_recipients_then_the_tps_limit(client, pool):
    world = await make_world(pool, balance="1000")
    _, plain = await new_key(pool, world)
    await pool.execute("UPDATE partners SET api_tps = 1 WHERE id = $1", world.partner_id)
    numbers = [f"7916{i:07d}" for i in range(701)]
    # repeats do not count; past 700 only the first 700 are sent, the rest named
    resp = await client.post("/api/send_sms", headers=bearer(plain),
                             json=body(to=numbers[:5] + numbers))
    assert resp.status == 200
    results = (await resp.json())["results"]
    assert len(results) == 701
    assert all(":" in r and "not sent" not in r for r in results[:700])
    assert results[700] == f"{numbers[700]}: not sent: only the first 700 recipients of a request are sent"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 700
    assert await pool.fetchval(
        "SELECT count(*) FROM messages WHERE destination = $1", numbers[700]) == 0
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body())
    assert resp.status == 429 and "per second" in (await resp.json())["error"]


async def test_array_body_and_viber_cascade(client, pool):
    world = await make_world(pool)
    _, plain = await new_key(pool, world)
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=[
        body(channels=["Viber", "SMS"], fallbackTtl=300, trafficType="TRANSACTION"),
        body(to="79160000001", channels="Viber", imageUrl="http://127.0.0.1/a.png"),
    ])
    assert resp.status == 200
    rows = await pool.fetch("""SELECT channel, fallback_channel, fallback_ttl, traffic_type, image_url
                               FROM messages ORDER BY destination DESC""")
    assert [tuple(r) for r in rows] == [
        ("viber", "sms", 300, "transaction", None),
        ("viber", None, None, "promotion", "http://127.0.0.1/a.png"),
    ]


async def test_expired_removed_and_unknown_keys_are_refused(client, pool):
    world = await make_world(pool)
    expired, expired_plain = await new_key(pool, world, name="old", ttl="1d")
    await pool.execute("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1",
                       expired.id)
    removed, removed_plain = await new_key(pool, world, name="gone")
    await apikeys.remove_one(pool, world.partner_id, removed.id)
    for token, word in ((expired_plain, "expired"), (removed_plain, "removed"),
                        ("hrd_" + "x" * 43, "Unknown"), ("", "Bearer")):
        resp = await client.post("/api/send_sms", headers=bearer(token) if token else {},
                                  json=body())
        assert resp.status == 401
        assert word in (await resp.json())["error"]
    assert await pool.fetchval("SELECT count(*) FROM messages") == 0


async def test_token_and_key_management(client, pool):
    world = await make_world(pool)
    resp = await client.post("/api/login", headers=basic(world.email, "wrong-password"))
    assert resp.status == 401
    resp = await client.post("/api/login", headers=basic(world.email.upper(), PASSWORD))
    assert resp.status == 200
    token = (await resp.json())["token"]
    auth = bearer(token)

    resp = await client.post("/api/keys", headers=auth, json={
        "name": "shop", "callbackUrl": "http://127.0.0.1:9/dlr", "expiry": "7d"})
    assert resp.status == 201
    created = await resp.json()
    assert created["key"].startswith("hrd_") and created["status"] == "active"
    assert created["expiry"] == "7d" and created["callbackUrl"] == "http://127.0.0.1:9/dlr"
    stored = await pool.fetchval("SELECT key_hash FROM api_keys WHERE id = $1", created["id"])
    assert stored == apikeys.hash_key(created["key"])            # only the hash is kept
    secret = created["signingSecret"]
    assert secret.startswith("hrs_")
    assert await apikeys.callback_signing_key(pool, created["id"], client.app[SETTINGS].secret_key) \
        == secret.encode()
    resp = await client.post(f"/api/keys/{created['id']}/signing-secret", headers=auth)
    assert resp.status == 200
    rotated = (await resp.json())["signingSecret"]
    assert rotated.startswith("hrs_") and rotated != secret and "key" not in await resp.json()
    assert await apikeys.callback_signing_key(pool, created["id"], client.app[SETTINGS].secret_key) \
        == rotated.encode()

    resp = await client.post("/api/keys", headers=auth, json={"name": "shop", "expiry": "1y"})
    assert resp.status == 409
    resp = await client.post("/api/keys", headers=auth, json={"name": "n" * 61})
    assert resp.status == 400 and (await resp.json())["field"] == "name"
    resp = await client.post("/api/keys", headers=auth, json={"name": "x", "expiry": "2w"})
    assert resp.status == 400

    resp = await client.get("/api/keys", headers=auth)
    keys = (await resp.json())["keys"]
    assert [k["name"] for k in keys] == ["shop"] and "key" not in keys[0]
    assert "signingSecret" not in keys[0]

    resp = await client.post("/api/send_sms", headers=bearer(created["key"]), json=body())
    assert resp.status == 200

    await pool.execute("UPDATE api_keys SET expires_at = now() - interval '1 s' WHERE id = $1",
                       created["id"])
    resp = await client.post(f"/api/keys/{created['id']}/refresh", headers=auth)
    assert resp.status == 200 and (await resp.json())["status"] == "active"
    resp = await client.post("/api/send_sms", headers=bearer(created["key"]), json=body())
    assert resp.status == 200

    resp = await client.delete(f"/api/keys/{created['id']}", headers=auth)
    assert resp.status == 204
    resp = await client.post("/api/send_sms", headers=bearer(created["key"]), json=body())
    assert resp.status == 401 and "removed" in (await resp.json())["error"]

    # an API key is not a token, and a token is not an API key
    resp = await client.get("/api/keys", headers=bearer(created["key"]))
    assert resp.status == 401
    resp = await client.post("/api/send_sms", headers=auth, json=body())
    assert resp.status == 401
    resp = await client.get("/api/keys", headers=bearer(token[:-2] + "xx"))
    assert resp.status == 401


async def test_tenants_cannot_touch_each_others_keys(client, pool):
    a = await make_world(pool, name="Alpha")
    b = await make_world(pool, name="Beta", vendors=(a.sms_vendor, a.viber_vendor))
    a_key, _ = await new_key(pool, a)
    resp = await client.post("/api/login", headers=basic(b.email, PASSWORD))
    auth = bearer((await resp.json())["token"])
    assert (await client.post(f"/api/keys/{a_key.id}/refresh", headers=auth)).status == 404
    assert (await client.delete(f"/api/keys/{a_key.id}", headers=auth)).status == 404
    assert (await (await client.get("/api/keys", headers=auth)).json())["keys"] == []
    assert await pool.fetchval("SELECT removed_at FROM api_keys WHERE id = $1", a_key.id) is None


async def test_delivery_report_reaches_the_callback_signed(client, pool, make_client):
    received: list[tuple[dict, bytes, str]] = []
    got = asyncio.Event()

    async def receiver(request: web.Request) -> web.Response:
        raw = await request.read()
        received.append((await request.json(), raw, request.headers.get(callbacks.SIGNATURE_HEADER, "")))
        got.set()
        return web.Response(text="ok")

    hook = web.Application()
    hook.router.add_post("/dlr", receiver)
    hook_client = await make_client(hook)
    url = str(hook_client.make_url("/dlr"))

    world = await make_world(pool)
    new = await apikeys.create_with_secret(
        pool, app_secret=client.app[SETTINGS].secret_key, partner_id=world.partner_id,
        created_by=world.user_id, name="main", callback_url=url)
    plain = new.plain
    resp = await client.post("/api/send_sms", headers=bearer(plain), json=body())
    message_id = uuid.UUID(split((await resp.json())["results"][0])[1])
    async with pool.acquire() as conn:
        await mark_sent(conn, message_id, vendor_id=world.sms_vendor, vendor_message_id="abc123")
        moved = await record_receipt(conn, world.sms_vendor, "abc123", "delivered")
    assert moved is not None and moved.status == "DELIVERED"

    services = build_services(client.app)
    for service in services:
        await service.start()
    try:
        await asyncio.wait_for(got.wait(), 10)
    finally:
        for service in reversed(services):
            await service.stop()
    payload, raw, signature = received[0]
    assert payload["transactionID"] == str(message_id) and payload["status"] == "DELIVERED"
    assert payload["dnis"] == RU_MOBILE and payload["channel"] == "SMS"
    assert callbacks.verify(signing_key(new.signing_secret), signature, raw)
    assert not callbacks.verify(signing_key(new.signing_secret + "x"), signature, raw)
    # What the database holds no longer signs: neither the key hash nor the sealed secret.
    row = await pool.fetchrow("SELECT key_hash, signing_secret FROM api_keys WHERE id = $1",
                              new.key.id)
    assert not callbacks.verify(bytes(row["key_hash"]), signature, raw)
    assert new.signing_secret.encode() not in bytes(row["signing_secret"])


async def test_openapi_document(client):
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["openapi"].startswith("3.") and "/api/send_sms" in doc["paths"]
    assert {"/api/login", "/api/keys", "/api/keys/{id}/refresh", "/api/keys/{id}",
            "/api/keys/{id}/signing-secret"} <= set(doc["paths"])
    signed = doc["paths"]["/api/send_sms"]["post"]["callbacks"]["statusCallback"]
    (hook,) = signed.values()
    assert "HMAC-SHA256" in hook["post"]["description"]
    assert hook["post"]["parameters"][0]["name"] == "X-Herald-Signature"
    validate = pytest.importorskip("openapi_spec_validator").validate
    validate(doc)
    assert isinstance(client.app[PIPELINE], Pipeline)  # where the SMPP server finds it
