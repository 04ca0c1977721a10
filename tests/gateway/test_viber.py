"""Viber end to end: API → pipeline → send worker → provider simulator → status webhook →
status, billing and the API key's callbacks. Real PostgreSQL, Redis and sockets."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from accounts.tenancy import owner_scope
from billing.vendors import NewVendor, create_vendor
from gateway.accept import routing
from gateway.accept.keys import PIPELINE
from gateway.accept.pipeline import Accepted, Pipeline, Submission
from gateway.intake import apikeys
from gateway.intake.api import openapi_document
from gateway.report.callbacks import CallbackDispatcher
from gateway.report.status import status_changed
from gateway.runtime.main import build_app
from gateway.runtime.services import callback_key_resolver
from gateway.send.delivery import Failover, Retry
from gateway.send.viber_connector import (
    VIBER_OPTIONS,
    ViberConnectors,
    ViberOptions,
    classify,
    viber_message,
)
from gateway.store.messages import Event, apply_event, mark_sent
from tests.gateway.smpp_stack import eventually
from tests.gateway.test_callbacks import Receiver
from tests.gateway.test_connectors import _message
from tests.gateway.world import RU_MOBILE, SENDER, balance, make_world
from viber.provider import STATUSES, Permanent, Temporary, Throttled, parse_status_report
from viber.simulator import ViberSimConfig, ViberSimulator

TOKEN = "provider-token-1"
FAST = ViberOptions(request_timeout=2.0, lease=10.0, poll_interval=0.05, max_attempts=30,
                    backoff_base=0.02, backoff_cap=0.1, refresh=60.0,
                    receipt_match_retries=(0.05,))


@dataclass
class ViberStack:
    world: object
    client: object            # aiohttp TestClient of the whole application
    sim: ViberSimulator
    viber: ViberConnectors
    dispatcher: CallbackDispatcher
    rx: Receiver
    key: str                  # the plain API key
    others: list = field(default_factory=list)

    @property
    def pipeline(self):
        return self.client.app[PIPELINE]

    def webhook(self, vendor_id: int | None = None) -> str:
        return str(self.client.make_url(f"/api/viber/status/{vendor_id or self.world.viber_vendor}"))

    async def send(self, **body) -> uuid.UUID:
        payload = {"channels": ["Viber"], "from": SENDER, "to": [RU_MOBILE], "message": "Hello"}
        payload.update(body)
        resp = await self.client.post("/api/send_sms", json=payload,
                                      headers={"Authorization": f"Bearer {self.key}"})
        assert resp.status == 200, await resp.text()
        (line,) = (await resp.json())["results"]
        return uuid.UUID(line.partition(": ")[2])

    async def stop(self) -> None:
        await self.viber.stop()
        await self.dispatcher.stop()
        await self.sim.stop()
        for other in self.others:
            await other.stop()
        await self.rx.__aexit__(None, None, None)


async def viber_stack(pool, redis, settings, make_client, config: ViberSimConfig) -> ViberStack:
    world = await make_world(pool)
    app = build_app(settings)
    app[VIBER_OPTIONS] = FAST
    client = await make_client(app)
    rx = await Receiver().__aenter__()
    config.token = TOKEN
    config.webhook_url = str(client.make_url(f"/api/viber/status/{world.viber_vendor}"))
    sim = ViberSimulator(config)
    await sim.start()
    await pool.execute("UPDATE vendors SET http_base_url = $2, http_token = $3, tps = 500 "
                       "WHERE id = $1", world.viber_vendor, sim.base_url, TOKEN)
    _, plain = await apikeys.create(pool, partner_id=world.partner_id, created_by=world.user_id,
                                    name="main", callback_url=rx.url)
    viber = ViberConnectors(pool, redis, options=FAST)
    await viber.start()
    app[PIPELINE].add_listener(viber.notify)
    dispatcher = CallbackDispatcher(pool, callback_key_resolver(app), poll_interval=0.05,
                                    base_delay=0.05, max_delay=0.2)
    await dispatcher.start()
    return ViberStack(world, client, sim, viber, dispatcher, rx, plain)


async def wait_status(pool, message_id, statuses, within=10.0) -> str:
    async with asyncio.timeout(within):
        while True:
            status = await pool.fetchval("SELECT status FROM messages WHERE id = $1", message_id)
            if status in statuses:
                return status
            await asyncio.sleep(0.02)


async def wait_callbacks(rx: Receiver, transaction_id, count: int, within=10.0) -> list[dict]:
    def mine():
        return [c["body"] for c in rx.accepted if c["body"]["transactionID"] == str(transaction_id)]

    await eventually(lambda: len(mine()) >= count, within)
    return mine()


# -- pure mapping --------------------------------------------------------------------------


def test_message_fields_map_to_the_provider_request():
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    cascade = _message(channel="viber", traffic_type="transaction", fallback_channel="sms",
                       fallback_ttl=600, image_url="https://i", button_url="https://b",
                       button_caption="Go", created_at=now)
    request = viber_message(cascade, now)
    assert (request.sender, request.phone, request.text, request.traffic_type, request.ttl,
            request.image_url, request.button_url, request.button_caption, request.reference) == (
        SENDER, RU_MOBILE, "hi", "transaction", 600, "https://i", "https://b", "Go",
        str(cascade.id))
    valid = _message(channel="viber", valid_until=datetime(2026, 12, 3, 9, 0, tzinfo=UTC))
    assert viber_message(valid, now).ttl == 3600 and viber_message(valid, now).traffic_type == "promotion"
    assert viber_message(_message(channel="viber"), now).ttl is None


def test_a_cascade_sent_late_asks_the_provider_for_the_time_left():
    accepted = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    cascade = _message(channel="viber", fallback_channel="sms", fallback_ttl=600,
                       created_at=accepted)
    assert viber_message(cascade, accepted + timedelta(seconds=100)).ttl == 500
    assert viber_message(cascade, accepted + timedelta(seconds=99.5)).ttl == 501  # whole seconds, up
    assert viber_message(cascade, accepted + timedelta(seconds=599.9)).ttl == 1
    # A validity period that ends sooner is what the provider is given.
    both = replace(cascade, valid_until=accepted + timedelta(seconds=300))
    assert viber_message(both, accepted + timedelta(seconds=100)).ttl == 200
    # A schedule later than the acceptance starts the TTL.
    scheduled = replace(cascade, scheduled_for=accepted + timedelta(hours=1))
    assert viber_message(scheduled, accepted + timedelta(hours=1, seconds=10)).ttl == 590


async def test_viber_timings_come_from_the_settings(settings):
    tuned = settings.replace(viber_timeout=20.0, viber_max_attempts=8, viber_backoff_cap=60.0,
                             viber_refresh=30.0, vendor_lease=90.0)
    options = ViberOptions.from_settings(tuned)
    assert (options.request_timeout, options.max_attempts, options.backoff_cap, options.refresh,
            options.lease) == (20.0, 8, 60.0, 30.0, 90.0)
    # A lease never shorter than a request: no second worker sends while the first waits.
    slow = ViberOptions.from_settings(settings.replace(viber_timeout=100.0, vendor_lease=30.0))
    assert slow.lease == 105.0
    # The webhook's options, in an application built from the settings.
    assert build_app(tuned)[VIBER_OPTIONS] == options


def test_the_status_webhook_is_in_the_openapi_document():
    doc = openapi_document()
    hook = doc["paths"]["/api/viber/status/{vendor_id}"]["post"]
    assert hook["tags"] == ["Provider webhooks"]
    assert "Provider webhooks" in {t["name"] for t in doc["tags"]}
    assert hook["security"] == [{"vendorToken": []}]
    scheme = doc["components"]["securitySchemes"]["vendorToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert [p["name"] for p in hook["parameters"]] == ["vendor_id"]
    body = hook["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["message_id", "status"]
    assert body["properties"]["status"]["enum"] == list(STATUSES)
    # The documented example is a report the webhook takes.
    example = parse_status_report(body["example"])
    assert (example.message_id, example.status) == ("vb-5f2c91", "delivered")
    assert set(hook["responses"]) == {"200", "400", "401"}
    result = hook["responses"]["200"]["content"]["application/json"]["schema"]
    assert result["properties"]["result"]["enum"] == ["applied", "ignored", "kept"]
    # Every other operation is tagged for API users, not as a webhook.
    others = [op for path, ops in doc["paths"].items() if path != "/api/viber/status/{vendor_id}"
              for op in ops.values()]
    assert others and all(op["tags"] in (["Messages"], ["API keys"]) for op in others)


def test_provider_errors_map_to_send_results():
    assert classify(Throttled("429", status=429, retry_after=2.0)) == Retry("429", delay=2.0)
    assert classify(Temporary("HTTP 503", status=503)) == Retry("HTTP 503")
    assert classify(Permanent("HTTP 400: no", status=400, code="no_viber")) == Failover(
        "provider refused: HTTP 400: no", "no_viber")
    assert classify(Permanent("HTTP 401", status=401)).error_code == "401"


# -- end to end ----------------------------------------------------------------------------


async def test_viber_message_is_sent_delivered_seen_and_called_back(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.05, seen_delay=0.05, delivered=0, seen=1))
    try:
        mid = await stack.send(message="Sale today", imageUrl="https://img.test/a.png",
                               buttonActionUrl="https://shop.test", buttonCaption="Shop")
        assert await wait_status(pool, mid, ("SEEN",)) == "SEEN"
        (got,) = stack.sim.received
        assert got == {"sender": SENDER, "phone": RU_MOBILE, "text": "Sale today",
                       "traffic_type": "promotion", "image_url": "https://img.test/a.png",
                       "button": {"url": "https://shop.test", "caption": "Shop"},
                       "reference": str(mid), "message_id": got["message_id"]}
        row = await pool.fetchrow("SELECT vendor_id, vendor_message_id, sent_at, done_at, seen_at, "
                                  "cost FROM messages WHERE id = $1", mid)
        assert row["vendor_id"] == stack.world.viber_vendor
        assert row["vendor_message_id"] == got["message_id"]
        assert None not in (row["sent_at"], row["done_at"], row["seen_at"])
        calls = await wait_callbacks(stack.rx, mid, 3)
        assert [(c["status"], c["channel"], c["dnis"]) for c in calls] == [
            ("SENT", "VIBER", RU_MOBILE), ("DELIVERED", "VIBER", RU_MOBILE),
            ("SEEN", "VIBER", RU_MOBILE)]
        assert await balance(pool, stack.world.partner_id) == Decimal("100") - row["cost"]
        assert row["cost"] == Decimal("0.02")  # the Viber promotion rate
    finally:
        await stack.stop()


async def test_throttled_sends_are_retried_not_lost(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.02, throttle_ratio=0.5, retry_after=0.02,
                                             seed=5))
    try:
        ids = [await stack.send(message=f"m{i}", trafficType="TRANSACTION") for i in range(12)]
        for mid in ids:
            assert await wait_status(pool, mid, ("DELIVERED",)) == "DELIVERED"
        assert stack.sim.counters["throttled"] > 0
        assert sorted(r["reference"] for r in stack.sim.received) == sorted(map(str, ids))
        assert {r["traffic_type"] for r in stack.sim.received} == {"transaction"}
    finally:
        await stack.stop()


async def test_permanent_refusal_fails_over_to_the_next_viber_vendor(pool, redis, settings,
                                                                    make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delay=0.02, reject_ratio=1.0))
    backup_sim = ViberSimulator(ViberSimConfig(token="backup-token", delay=0.02))
    await backup_sim.start()
    stack.others.append(backup_sim)
    try:
        async with pool.acquire() as conn:
            owner = await owner_scope(conn)
            backup = await create_vendor(conn, owner, NewVendor(
                name="viber backup", channel="viber", protocol="http",
                http_base_url=backup_sim.base_url, http_token="backup-token"))
            await routing.add_route(conn, routing.Route("viber", backup.id, priority=200))
        backup_sim.config.webhook_url = stack.webhook(backup.id)
        stack.pipeline.invalidate()
        await stack.viber.sync()
        mid = await stack.send(message="via backup")
        assert await wait_status(pool, mid, ("DELIVERED",)) == "DELIVERED"
        assert stack.sim.counters["rejected"] == 1 and stack.sim.received == []
        assert [r["text"] for r in backup_sim.received] == ["via backup"]
        assert await pool.fetchval("SELECT vendor_id FROM messages WHERE id = $1", mid) == backup.id
    finally:
        await stack.stop()


async def test_permanent_refusal_with_no_other_vendor_fails_and_refunds(pool, redis, settings,
                                                                       make_client):
    stack = await viber_stack(pool, redis, settings, make_client, ViberSimConfig(reject_ratio=1.0))
    try:
        mid = await stack.send(message="doomed")
        assert await wait_status(pool, mid, ("FAILED",)) == "FAILED"
        assert await balance(pool, stack.world.partner_id) == Decimal("100")
        assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(mid)) == "failed"
        error = await pool.fetchval("SELECT error_text FROM messages WHERE id = $1", mid)
        assert "not a Viber user" in error
        calls = await wait_callbacks(stack.rx, mid, 1)
        assert [(c["status"], c["channel"]) for c in calls] == [("FAILED", "VIBER")]
    finally:
        await stack.stop()


async def test_webhook_checks_the_token_and_ignores_unknown_ids(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delivered=0, silent=1))
    try:
        mid = await stack.send()
        assert await wait_status(pool, mid, ("SENT",)) == "SENT"
        provider_id = stack.sim.received[0]["message_id"]
        report = {"message_id": provider_id, "status": "delivered"}
        http = stack.client
        path = f"/api/viber/status/{stack.world.viber_vendor}"
        wrong = await http.post(path, json=report, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 401
        assert (await http.post(path, json=report)).status == 401
        # Another vendor's id with this token (an SMS vendor has none): refused too.
        other = await http.post(f"/api/viber/status/{stack.world.sms_vendor}", json=report,
                                headers={"Authorization": f"Bearer {TOKEN}"})
        assert other.status == 401
        bad = await http.post(path, data=b"{", headers={"Authorization": f"Bearer {TOKEN}"})
        assert bad.status == 400
        unknown = await http.post(path, json={"message_id": "no-such-id", "status": "delivered"},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert (unknown.status, await unknown.json()) == (200, {"result": "kept"})
        assert await pool.fetchval("SELECT status FROM messages WHERE id = $1", mid) == "SENT"
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE status <> 'SENT'") == 0
        assert await pool.fetchval("SELECT receipted_id FROM early_receipts") == "no-such-id"

        assert await stack.sim.report(provider_id, "delivered") == 200
        assert await wait_status(pool, mid, ("DELIVERED",)) == "DELIVERED"
        again = await http.post(path, json=report, headers={"Authorization": f"Bearer {TOKEN}"})
        assert (await again.json()) == {"result": "ignored"}
        calls = await wait_callbacks(stack.rx, mid, 2)
        assert [c["status"] for c in calls] == ["SENT", "DELIVERED"]
    finally:
        await stack.stop()


async def test_failed_and_expired_reports(pool, redis, settings, make_client):
    stack = await viber_stack(pool, redis, settings, make_client,
                              ViberSimConfig(delivered=0, silent=1))
    try:
        failed, expired = await stack.send(message="one"), await stack.send(message="two")
        for mid in (failed, expired):
            assert await wait_status(pool, mid, ("SENT",)) == "SENT"
        by_ref = {r["reference"]: r["message_id"] for r in stack.sim.received}
        assert await stack.sim.report(by_ref[str(failed)], "failed", error="blocked") == 200
        assert await stack.sim.report(by_ref[str(expired)], "expired") == 200
        assert await wait_status(pool, failed, ("FAILED",)) == "FAILED"
        assert await wait_status(pool, expired, ("UNDELIVERED",)) == "UNDELIVERED"
        assert await pool.fetchval("SELECT error_text FROM messages WHERE id = $1", failed) == "blocked"
        # FAILED is refunded; the expired one was sent, and is charged as the plan says.
        assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1", str(failed)) == "failed"
    finally:
        await stack.stop()



async def test_the_process_services_send_viber_and_fall_back(pool, redis, settings, make_client):
    """build_services wires the Viber workers, the webhook's hook and the cascade job."""
    from gateway.report.cascade import linked_sms
    from gateway.runtime.services import build_services

    world = await make_world(pool)
    client = await make_client(build_app(settings))
    rx = await Receiver().__aenter__()
    sim = ViberSimulator(ViberSimConfig(
        token=TOKEN, delay=0.02, delivered=1, undelivered=1, seed=1,
        webhook_url=str(client.make_url(f"/api/viber/status/{world.viber_vendor}"))))
    await sim.start()
    await pool.execute("UPDATE vendors SET http_base_url = $2, http_token = $3 WHERE id = $1",
                       world.viber_vendor, sim.base_url, TOKEN)
    _, plain = await apikeys.create(pool, partner_id=world.partner_id, created_by=world.user_id,
                                    name="main", callback_url=rx.url)
    services = build_services(client.app)
    for service in services:
        await service.start()
    try:
        ids = []
        for i in range(6):
            resp = await client.post("/api/send_sms", headers={"Authorization": f"Bearer {plain}"},
                                     json={"channels": ["Viber", "SMS"], "fallbackTtl": 3600,
                                           "from": SENDER, "to": [RU_MOBILE], "message": f"m{i}"})
            ids.append(uuid.UUID((await resp.json())["results"][0].partition(": ")[2]))
        final = [await wait_status(pool, mid, ("DELIVERED", "UNDELIVERED")) for mid in ids]
        undelivered = [mid for mid, status in zip(ids, final, strict=True)
                       if status == "UNDELIVERED"]
        assert undelivered and len(undelivered) < len(ids)  # the seed gives both outcomes

        async def fell_back() -> bool:
            return all([await linked_sms(pool, mid) is not None for mid in undelivered])

        await eventually(fell_back, within=20)
        assert await pool.fetchval("SELECT count(*) FROM messages WHERE channel = 'sms'") == len(
            undelivered)
        await wait_callbacks(rx, ids[0], 2, within=20)  # SENT and the final status, as VIBER
    finally:
        for service in reversed(services):
            await service.stop()
        await sim.stop()
        await rx.__aexit__(None, None, None)


async def test_seen_without_delivered_settles_the_charge(pool, redis, settings):
    """Some providers report only "seen": the charge is settled as delivered, not left open."""
    world = await make_world(pool)
    pipeline = Pipeline(pool, redis, settings)
    await pipeline.start()
    try:
        (res,) = await pipeline.submit([Submission(
            partner_id=world.partner_id, origin="api", sender=SENDER, destination=RU_MOBILE,
            text="Sale", channel="viber")])
    finally:
        await pipeline.stop()
    assert isinstance(res, Accepted)
    async with pool.acquire() as conn, conn.transaction():
        await mark_sent(conn, res.message_id, vendor_id=world.viber_vendor, vendor_message_id="v-1")
        seen = await apply_event(conn, res.message_id, Event.SEEN)
        assert seen is not None and seen.status == "SEEN"
        await status_changed(conn, [seen])
    assert await pool.fetchval("SELECT state FROM charges WHERE ref = $1",
                               str(res.message_id)) == "delivered"
