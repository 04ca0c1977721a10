"""Callback outbox and dispatcher against a real local HTTP server."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime

import pytest
from aiohttp import web

from config.errors import NotFound
from config.settings import load_settings
from gateway.base import secretbox
from gateway.base.app import DB, SETTINGS
from gateway.intake import apikeys
from gateway.report import callbacks as cb
from gateway.runtime.services import callback_key_resolver, signing_key
from gateway.store import messages as m
from gateway.store.messages import Event, NewMessage, Status

KEY = b"partner-secret"


class Receiver:
    """A local HTTP server that records every callback and fails the first ``fail_first``."""

    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.fail_first = fail_first
        self.status = status
        self.calls: list[dict] = []     # every attempt
        self.accepted: list[dict] = []  # the ones answered 200
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        call = {"body": json.loads(body), "raw": body,
                "signature": request.headers.get(cb.SIGNATURE_HEADER, "")}
        self.calls.append(call)
        if len(self.calls) <= self.fail_first:
            return web.Response(status=self.status)
        self.accepted.append(call)
        return web.Response(text="ok")

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/cb", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/cb"
        return self

    async def __aexit__(self, *exc) -> None:
        await self.runner.cleanup()


async def _key_for(job: cb.CallbackJob) -> bytes:
    return KEY


async def _message(conn, url: str, **kw):
    pid = await conn.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
    msg = NewMessage(partner_id=pid, origin="api", sender="S", destination="35799000001",
                     status=Status.BILLED, callback_url=url, **kw)
    await m.insert_messages(conn, [msg])
    return msg


async def _transition(conn, msg_id, event):
    async with conn.transaction():
        changed = await m.apply_event(conn, msg_id, event)
        if changed:
            await cb.enqueue_dlr(conn, changed)
    return changed


def test_signature_round_trip_and_rejections():
    body = b'{"a":1}'
    header = cb.sign(KEY, body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert cb.verify(KEY, header, body, now=1_700_000_010)
    assert not cb.verify(KEY, header, body + b" ", now=1_700_000_010)   # body changed
    assert not cb.verify(b"other", header, body, now=1_700_000_010)     # wrong key
    assert not cb.verify(KEY, header, body, now=1_700_001_000)          # too old
    assert not cb.verify(KEY, "garbage", body, now=1_700_000_000)


def test_event_time_format():
    at = datetime(2026, 11, 25, 11, 47, 45, 123456, tzinfo=UTC)
    assert cb.format_event_time(at) == "2026-11-25T11:47:45.123+00:00"


async def test_enqueue_commits_with_the_status_change(conn):
    msg = await _message(conn, "http://127.0.0.1:9/cb")
    sp = conn.transaction()
    await sp.start()
    changed = await m.apply_event(conn, msg.id, Event.SENT)
    await cb.enqueue_dlr(conn, changed)
    await sp.rollback()
    assert await conn.fetchval("SELECT count(*) FROM callback_outbox") == 0
    assert (await m.get_message(conn, msg.id)).status is Status.BILLED
    changed = await _transition(conn, msg.id, Event.SENT)
    row = await conn.fetchrow("SELECT * FROM callback_outbox")
    body = json.loads(row["body"])
    assert body == {"transactionID": str(msg.id), "dnis": "35799000001", "status": "SENT",
                    "eventTime": cb.format_event_time(changed.updated_at), "channel": "SMS"}
    no_url = await _message(conn, None)
    assert await cb.enqueue_dlr(conn, await m.apply_event(conn, no_url.id, Event.SENT)) is None


async def test_dispatcher_retries_keeps_order_and_signs(pool):
    async with Receiver(fail_first=3) as rx:
        async with pool.acquire() as conn:
            first = await _message(conn, rx.url)
            second = await _message(conn, rx.url, channel="viber")
            await _transition(conn, first.id, Event.SENT)
            await _transition(conn, second.id, Event.SENT)
            await _transition(conn, first.id, Event.DELIVERED)
            await _transition(conn, second.id, Event.DELIVERED)
            await _transition(conn, second.id, Event.SEEN)
            await cb.enqueue_mo(conn, url=rx.url, transaction_id=str(first.id),
                                dnis="35799000001", text="STOP", channel="sms",
                                partner_id=first.partner_id)
        dispatcher = cb.CallbackDispatcher(pool, _key_for, base_delay=0.02, max_delay=0.1,
                                           poll_interval=0.02, rand=lambda: 1.0)
        await dispatcher.start()
        try:
            async with asyncio.timeout(10):
                # Done when the dispatcher has recorded every row as delivered.
                while True:
                    left = await pool.fetchval(
                        "SELECT count(*) FROM callback_outbox WHERE state <> 'delivered'")
                    if not left:
                        break
                    await asyncio.sleep(0.02)
        finally:
            await dispatcher.stop()
    assert len(rx.calls) == 6 + 3        # three failures were retried
    for call in rx.calls:
        assert cb.verify(KEY, call["signature"], call["raw"])
    by_message: dict[str, list[str]] = {}
    for call in rx.accepted:
        body = call["body"]
        by_message.setdefault(body["transactionID"], []).append(
            body["status"] + (":" + body["message"] if "message" in body else ""))
    assert by_message[str(first.id)] == ["SENT", "DELIVERED", "DELIVERED:STOP"]
    assert by_message[str(second.id)] == ["SENT", "DELIVERED", "SEEN"]
    assert {c["body"]["channel"] for c in rx.accepted} == {"SMS", "VIBER"}
    states = await pool.fetch("SELECT state, attempts FROM callback_outbox ORDER BY id")
    assert all(s["state"] == "delivered" for s in states)
    assert sum(s["attempts"] for s in states) == 9


async def test_later_event_waits_for_earlier_one(pool):
    async with pool.acquire() as conn:
        msg = await _message(conn, "http://127.0.0.1:9/never")
        await _transition(conn, msg.id, Event.SENT)
        await _transition(conn, msg.id, Event.DELIVERED)
        jobs = await cb.claim(conn, "w1", 10)
        assert [json.loads(j.body)["status"] for j in jobs] == ["SENT"]
        assert await cb.claim(conn, "w2", 10) == []   # DELIVERED waits behind the leased SENT


async def test_gives_up_after_max_age_then_next_event_goes(pool):
    async with Receiver(fail_first=10**6, status=503) as rx:
        async with pool.acquire() as conn:
            msg = await _message(conn, rx.url)
            await _transition(conn, msg.id, Event.SENT)
        dispatcher = cb.CallbackDispatcher(pool, _key_for, base_delay=0.02, max_age=0.3,
                                           rand=lambda: 1.0)
        # Drive it by hand: no background task, no sleeps beyond the backoff.
        started = time.monotonic()
        while await pool.fetchval("SELECT state FROM callback_outbox") == "pending":
            await dispatcher.run_once()
            await asyncio.sleep(0.01)
            assert time.monotonic() - started < 10
        row = await pool.fetchrow("SELECT * FROM callback_outbox")
        assert row["state"] == "gave_up" and row["last_status"] == 503
        assert row["attempts"] >= 2 and row["last_error"] == "HTTP 503"
        rx.fail_first = 0
        async with pool.acquire() as conn:
            await _transition(conn, msg.id, Event.DELIVERED)
        assert await dispatcher.run_once() == 1
        assert rx.accepted[-1]["body"]["status"] == "DELIVERED"


async def test_unreachable_url_is_retried_not_lost(pool):
    async with pool.acquire() as conn:
        msg = await _message(conn, "http://127.0.0.1:1/cb")   # nobody listens on port 1
        await _transition(conn, msg.id, Event.SENT)
    dispatcher = cb.CallbackDispatcher(pool, _key_for, base_delay=30, rand=lambda: 1.0)
    assert await dispatcher.run_once() == 1
    row = await pool.fetchrow("SELECT * FROM callback_outbox")
    assert row["state"] == "pending" and row["attempts"] == 1
    assert "Connect" in row["last_error"]
    assert await dispatcher.run_once() == 0    # backing off


async def test_two_dispatchers_deliver_each_event_once_in_order(db_url):
    from gateway.base.app import open_pool

    pools = [await open_pool(db_url, 4), await open_pool(db_url, 4)]
    try:
        async with Receiver(fail_first=5) as rx:
            async with pools[0].acquire() as conn:
                msgs = [await _message(conn, rx.url) for _ in range(15)]
                for event in (Event.SENT, Event.DELIVERED, Event.SEEN):
                    for msg in msgs:
                        await _transition(conn, msg.id, event)
            dispatchers = [
                cb.CallbackDispatcher(p, _key_for, batch=4, base_delay=0.01, max_delay=0.05,
                                      poll_interval=0.01, rand=lambda: 1.0)
                for p in pools
            ]
            for d in dispatchers:
                await d.start()
            try:
                async with asyncio.timeout(20):
                    while True:
                        left = await pools[0].fetchval(
                            "SELECT count(*) FROM callback_outbox WHERE state <> 'delivered'")
                        if not left:
                            break
                        await asyncio.sleep(0.02)
            finally:
                for d in dispatchers:
                    await d.stop()
        per_message: dict[str, list[str]] = {}
        for call in rx.accepted:
            per_message.setdefault(call["body"]["transactionID"], []).append(
                call["body"]["status"])
        assert len(rx.accepted) == 45                  # each event once
        assert all(v == ["SENT", "DELIVERED", "SEEN"] for v in per_message.values())
        workers = {r["claimed_by"] for r in await pools[0].fetch(
            "SELECT claimed_by FROM callback_outbox")}
        assert workers == {None}                       # every lease released
    finally:
        for p in pools:
            await p.close()


# Per-key signing secrets (migration 0380): what Herald's own resolver signs with.

APP_SECRET = "app-secret-for-sealing-" + "y" * 30


def _herald(pool, app_secret: str = APP_SECRET) -> web.Application:
    """The two application slots the resolver reads."""
    app = web.Application()
    app[DB] = pool
    app[SETTINGS] = load_settings({}).replace(secret_key=app_secret)
    return app


async def _owner(pool) -> int:
    return await pool.fetchval("SELECT id FROM partners WHERE kind = 'owner'")


async def _report(pool, url: str, key_id: int, event: Event = Event.SENT, msg=None):
    async with pool.acquire() as conn:
        msg = msg or await _message(conn, url, api_key_id=key_id)
        await _transition(conn, msg.id, event)
    return msg


async def test_receiver_verifies_with_the_secret_shown_at_creation_and_rotation(pool):
    partner = await _owner(pool)
    async with Receiver() as rx:
        new = await apikeys.create_with_secret(pool, app_secret=APP_SECRET, partner_id=partner,
                                               created_by=None, name="Shop", callback_url=rx.url)
        assert new.signing_secret.startswith("hrs_") and new.signing_secret != new.plain
        row = await pool.fetchrow("SELECT * FROM api_keys WHERE id = $1", new.key.id)
        # Nothing in the row is (or contains) the secret in clear.
        token = new.signing_secret.removeprefix("hrs_").encode()
        assert all(token not in (v if isinstance(v, bytes) else str(v).encode())
                   for v in row.values() if v is not None)
        with pytest.raises(secretbox.Unreadable):  # the database alone does not open it
            apikeys.open_signing_secret("another-secret-key", row["key_hash"], row["signing_secret"])

        dispatcher = cb.CallbackDispatcher(pool, callback_key_resolver(_herald(pool)))
        msg = await _report(pool, rx.url, new.key.id)
        assert await dispatcher.run_once() == 1
        (first,) = rx.accepted
        assert cb.verify(signing_key(new.signing_secret), first["signature"], first["raw"])
        # The old scheme (the key's SHA-256, stored in the row) no longer verifies.
        assert not cb.verify(bytes(row["key_hash"]), first["signature"], first["raw"])
        assert not cb.verify(apikeys.hash_key(new.plain), first["signature"], first["raw"])

        key, rotated = await apikeys.rotate_signing_secret(pool, partner, new.key.id, APP_SECRET)
        assert key.id == new.key.id and rotated != new.signing_secret
        await _report(pool, rx.url, new.key.id, Event.DELIVERED, msg)
        assert await dispatcher.run_once() == 1
        second = rx.accepted[1]
        assert second["body"]["status"] == "DELIVERED"
        assert cb.verify(signing_key(rotated), second["signature"], second["raw"])
        assert not cb.verify(signing_key(new.signing_secret), second["signature"], second["raw"])


async def test_rotation_is_refused_for_other_partners_and_removed_keys(pool):
    partner = await _owner(pool)
    new = await apikeys.create_with_secret(pool, app_secret=APP_SECRET, partner_id=partner,
                                           created_by=None, name="Shop")
    with pytest.raises(NotFound):
        await apikeys.rotate_signing_secret(pool, partner + 999, new.key.id, APP_SECRET)
    await apikeys.remove_one(pool, partner, new.key.id)
    with pytest.raises(NotFound):
        await apikeys.rotate_signing_secret(pool, partner, new.key.id, APP_SECRET)
    # Its messages' reports still get signed, with the secret it had.
    assert await apikeys.callback_signing_key(pool, new.key.id, APP_SECRET) == \
        new.signing_secret.encode()


async def test_key_without_a_secret_gets_one_on_first_use(pool):
    """Keys from before migration 0380: one secret, issued once, even under a race."""
    partner = await _owner(pool)
    key, _plain = await apikeys.create(pool, partner_id=partner, created_by=None, name="Old")
    assert await pool.fetchval("SELECT signing_secret FROM api_keys WHERE id = $1", key.id) is None
    first, second = await asyncio.gather(
        apikeys.callback_signing_key(pool, key.id, APP_SECRET),
        apikeys.callback_signing_key(pool, key.id, APP_SECRET))
    assert first == second and first.startswith(b"hrs_")
    assert await apikeys.callback_signing_key(pool, key.id, APP_SECRET) == first
    assert await apikeys.callback_signing_key(pool, key.id + 1000, APP_SECRET) is None
    # The owner learns it by rotating it.
    _, shown = await apikeys.rotate_signing_secret(pool, partner, key.id, APP_SECRET)
    assert await apikeys.callback_signing_key(pool, key.id, APP_SECRET) == shown.encode()


async def test_a_secret_sealed_under_another_secret_key_fails_the_attempt_until_rotated(pool):
    partner = await _owner(pool)
    async with Receiver() as rx:
        new = await apikeys.create_with_secret(pool, app_secret=APP_SECRET, partner_id=partner,
                                               created_by=None, name="Shop", callback_url=rx.url)
        changed = "the-operator-changed-the-secret-key-" + "z" * 20
        dispatcher = cb.CallbackDispatcher(pool, callback_key_resolver(_herald(pool, changed)),
                                           base_delay=0.0, rand=lambda: 0.0)
        await _report(pool, rx.url, new.key.id)
        assert await dispatcher.run_once() == 1
        assert rx.calls == []  # never sent unsigned
        row = await pool.fetchrow("SELECT state, last_error FROM callback_outbox")
        assert row["state"] == "pending" and "Unreadable" in row["last_error"]
        _, secret = await apikeys.rotate_signing_secret(pool, partner, new.key.id, changed)
        assert await dispatcher.run_once() == 1
        (call,) = rx.accepted
        assert cb.verify(signing_key(secret), call["signature"], call["raw"])
