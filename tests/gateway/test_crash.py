"""Crash safety: SIGKILL ``herald serve`` under SMPP load, again and again; nothing is lost.

One Herald process at a time runs against the test PostgreSQL and Redis (a
fresh cloned database) with its vendor pointing at an in-test carrier
simulator. An SMPP client submits without pause while Herald is killed at
random moments and restarted; meanwhile an HTTP client sends through
``/api/send_sms`` with an API key whose callback URL is a receiver in the test.
At the end:

* every acknowledged message is stored, and either reached the simulator or
  ended FAILED with its charge refunded — none lost;
* messages sent twice are only those in flight at a kill (bounded by what one
  process can hold claimed: rounds × claim batch);
* every charge is taken once and the balance adds up;
* every acknowledged message's receipt reached the SMPP client;
* every message the HTTP API acknowledged had its final delivery report POSTed
  to the callback URL at least once (repeats are allowed: callbacks are sent at
  least once, and a process killed mid-POST sends again after the lease).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.base.app import open_pool
from gateway.base.embedded import free_port
from gateway.intake import apikeys
from gateway.intake.smpp_accounts import create_account
from smpp.client import ClientConfig, SmppClient
from smpp.pdu import SubmitSm, Tag
from smpp.results import Outcome
from smpp.session import SessionConfig
from smpp.simulator import CarrierSimulator, SimConfig
from tests.gateway.smpp_stack import Esme, eventually
from tests.gateway.world import RU_MOBILE, SENDER, make_world

pytestmark = pytest.mark.slow

ROUNDS = 10
CLAIM_BATCH = 40  # VendorConnector claims max(20, 2 × window) rows at a time; window is 20


class HeraldProcess:
    def __init__(self, db_url: str, redis_url: str, var_dir: Path) -> None:
        self.http_port = free_port()
        self.smpp_port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        self.env.update(
            DATABASE_URL=db_url, REDIS_URL=redis_url, HERALD_VAR_DIR=str(var_dir),
            HERALD_HTTP_PORT=str(self.http_port), HERALD_SMPP_PORT=str(self.smpp_port),
            HERALD_ADMIN_PASSWORD="crash-admin-pw", HERALD_VENDOR_LEASE="3",
            HERALD_VENDOR_TIMEOUT="2", HERALD_SHUTDOWN_TIMEOUT="4", HERALD_CALLBACK_LEASE="3",
        )
        self.log_path = var_dir / "herald.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("a")
        try:
            log.write(f"\n===== start {self.starts} =====\n")
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway.runtime.cli", "serve", env=self.env, stdout=log, stderr=log)
        finally:
            log.close()

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return self.proc.returncode


class Load:
    """SMPP submits without pause from ``workers`` concurrent loops; remembers what was acknowledged."""

    def __init__(self, client: SmppClient, workers: int = 8) -> None:
        self.client = client
        self.workers = workers
        self.acked: dict[str, str] = {}   # Herald message id → text
        self.unknown = 0
        self.refused: Counter = Counter()
        self._n = 0
        self._running = True
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.workers)]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self) -> None:
        while self._running:
            self._n += 1
            text = f"crash-{self._n}"
            result = await self.client.submit(SubmitSm(
                source_addr=SENDER, destination_addr=RU_MOBILE, short_message=text.encode(),
                registered_delivery=1))
            if result.outcome is Outcome.ACCEPTED:
                self.acked[result.message_id] = text
            elif result.outcome is Outcome.UNKNOWN:
                self.unknown += 1   # may or may not be stored: not acknowledged, not counted
            else:
                self.refused[result.status] += 1
                await asyncio.sleep(0.05)


class HttpLoad:
    """``/api/send_sms`` one recipient at a time from ``workers`` loops; remembers what was acknowledged."""

    def __init__(self, port: int, key: str, workers: int = 2) -> None:
        self.url = f"http://127.0.0.1:{port}/api/send_sms"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.workers = workers
        self.acked: dict[str, str] = {}
        self.failed = 0
        self._n = 0
        self._running = True
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.workers)]

    async def stop(self) -> None:
        self._running = False
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while self._running:
                self._n += 1
                text = f"http-{self._n}"
                body = {"channels": ["SMS"], "from": SENDER, "to": [RU_MOBILE], "message": text}
                try:
                    async with session.post(self.url, json=body, headers=self.headers) as resp:
                        answer = await resp.json() if resp.status == 200 else None
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    answer = None   # Herald is down or died mid-request: not acknowledged
                line = (answer or {}).get("results", [""])[0]
                mid = line.rpartition(": ")[2]
                try:
                    self.acked[str(uuid.UUID(mid))] = text
                except ValueError:
                    self.failed += 1
                    await asyncio.sleep(0.1)


class CallbackReceiver:
    """The client's HTTP endpoint: records every delivery report POSTed to it."""

    def __init__(self) -> None:
        self.reports: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.port = free_port()

    async def _dlr(self, request: web.Request) -> web.Response:
        self.reports.append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/dlr", self._dlr)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def finals(self) -> set[str]:
        return {r["transactionID"] for r in self.reports if r.get("status") in FINAL_STATUSES}


FINAL_STATUSES = ("DELIVERED", "UNDELIVERED", "FAILED")


async def test_sigkill_under_load_loses_nothing(db_url, redis_url, redis, tmp_path):
    rng = random.Random(7)
    pool = await open_pool(db_url, 4)
    sim = CarrierSimulator(SimConfig(receipt_delay=0.2))
    await sim.start()
    world = await make_world(pool, balance="1000")
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vendors SET smpp_port = $2, tps = 2000, window_size = 20 WHERE id = $1",
                           world.sms_vendor, sim.port)
        await create_account(conn, world.partner_id, "load", "loadpw")
    receiver = CallbackReceiver()
    await receiver.start()
    _, plain_key = await apikeys.create(
        pool, partner_id=world.partner_id, created_by=world.user_id, name="crash",
        callback_url=f"http://127.0.0.1:{receiver.port}/dlr", ttl="never")
    herald = HeraldProcess(db_url, redis_url, tmp_path)
    await herald.start()
    esme = Esme()
    client = SmppClient(ClientConfig(
        "127.0.0.1", herald.smpp_port, "load", "loadpw", reconnect_base=0.05, reconnect_cap=0.3,
        session=SessionConfig(window=20, enquire_link_interval=None, response_timeout=5.0)), esme)
    await client.start()
    load = Load(client)
    http = HttpLoad(herald.http_port, plain_key)
    try:
        await asyncio.wait_for(client.wait_bound(), 30)
        load.start()
        http.start()
        for _ in range(ROUNDS):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await herald.kill()
            await herald.start()
            await asyncio.wait_for(client.wait_bound(), 30)
        await asyncio.sleep(1.0)
        await load.stop()
        await http.stop()
        assert len(load.acked) > 100, f"too little load got through: {len(load.acked)}"
        assert len(http.acked) > 10, f"too little HTTP load got through: {len(http.acked)}"
        acked = dict(load.acked) | dict(http.acked)
        ids = [uuid.UUID(m) for m in acked]

        async def settled() -> bool:
            final = await pool.fetchval(
                "SELECT count(*) FROM messages WHERE id = ANY($1::uuid[])"
                " AND status IN ('DELIVERED', 'UNDELIVERED', 'FAILED')", ids)
            return final == len(ids)

        await eventually(settled, within=45, every=0.5)
        receipted = lambda: {p.tlvs.get(Tag.RECEIPTED_MESSAGE_ID) for p in esme.receipts}  # noqa: E731
        await eventually(lambda: set(load.acked) <= receipted(), within=30, every=0.2)
        await eventually(lambda: set(http.acked) <= receiver.finals(), within=30, every=0.2)
    finally:
        await load.stop()
        await http.stop()
        await client.close(grace=1.0)
        code = await herald.stop()
        await sim.stop()
        await receiver.stop()
    assert code == 0, herald.log_path.read_text()[-3000:]

    rows = {r["id"]: r for r in await pool.fetch(
        "SELECT m.id, m.text, m.status, m.cost, c.state AS charge FROM messages m"
        " LEFT JOIN charges c ON c.ref = m.id::text")}
    at_carrier = Counter(r.text for r in sim.received)
    lost = []
    for mid, text in acked.items():
        row = rows.get(uuid.UUID(mid))
        if row is None or row["text"] != text:
            lost.append((mid, "not stored"))
        elif row["status"] == "FAILED":
            if row["charge"] != "failed":
                lost.append((mid, "failed without refund"))
        elif at_carrier[text] == 0:
            lost.append((mid, f"{row['status']} but never reached the carrier"))
    assert lost == []
    duplicates = sum(n - 1 for n in at_carrier.values() if n > 1)
    print(f"\nacked={len(acked)} http_acked={len(http.acked)} http_failed={http.failed} "
          f"callbacks={len(receiver.reports)} unknown={load.unknown} refused={dict(load.refused)} "
          f"stored={len(rows)} at_carrier={sum(at_carrier.values())} duplicates={duplicates} "
          f"herald_starts={herald.starts}")
    assert duplicates <= ROUNDS * CLAIM_BATCH
    # one charge per message, and the balance is what those charges say
    assert all(r["charge"] is not None for r in rows.values())
    kept = sum((r["cost"] for r in rows.values() if r["charge"] in ("open", "delivered")), Decimal(0))
    balance = await pool.fetchval("SELECT balance FROM partners WHERE id = $1", world.partner_id)
    assert balance == Decimal("1000") - kept
    await pool.close()
