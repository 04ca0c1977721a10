"""``POST /api/send_sms`` end to end: recipients per second through a whole Herald.

Starts an in-process Herald (embedded PostgreSQL with fsync ON unless
``--no-fsync``, embedded Redis, migrations, the HTTP server on a loopback
port), creates a client partner with a balance, a rate plan, a sender ID, a
vendor with a default route and an API key, then runs ``--clients``
concurrent HTTP clients, each POSTing requests of ``--recipients`` numbers
(700, the API's maximum) for ``--seconds``. Every recipient goes the whole
way: number check, sender and stop-list check, MCCMNC, segments, routing,
charging (ledger + charge rows), the EDR row and the send-queue row, committed
before the answer. The load generator shares the process and its event loop
with Herald (the machine has two cores; the database server has the other).

Prints recipients/s, requests/s and request latency percentiles.

With ``--workers N`` Herald runs instead as ``herald serve`` with N worker
processes (its own embedded servers started here), and its CPU is reported
apart from the load generator's.

Usage: ``.venv/bin/python -m bench.api_send_sms [--seconds 10] [--clients 4] [--workers N] [--no-fsync]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import aiohttp
import psutil

from accounts import senders
from accounts.partners import NewPartner, create_partner
from accounts.tenancy import load_scope, owner_scope
from billing import ledger, plans
from billing.rates import RateRow
from billing.vendors import NewVendor, create_vendor
from config.settings import load_settings
from gateway.accept import routing
from gateway.base.app import open_pool
from gateway.base.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from gateway.intake import apikeys
from gateway.runtime.main import Herald


async def _world(url: str) -> str:
    """Partner, plan, sender ID, vendor, route and API key; returns the key."""
    pool = await open_pool(url, 2)
    try:
        async with pool.acquire() as conn, conn.transaction():
            owner = await owner_scope(conn)
            partner = await create_partner(conn, owner, owner.partner_id,
                                           NewPartner(kind="client", name="Bench"))
            await ledger.adjust_balance(conn, owner, partner.id, Decimal("100000000"))
            plan, _ = await plans.create_plan(conn, owner, plans.NewPlan(name="bench", traffic="sms"),
                                              [RateRow("250", "*", Decimal("0.01"))])
            await plans.offer_plan(conn, owner, plan.id, partner.id)
            await plans.subscribe(conn, owner, partner.id, plan.id)
            scope = await load_scope(conn, partner.id)
            sid = await senders.request_sender_id(conn, scope, channel="sms", sender="Herald")
            await senders.approve(conn, owner, sid.id)
            vendor = await create_vendor(conn, owner, NewVendor(
                name="carrier", smpp_host="127.0.0.1", smpp_port=2775, system_id="bench"))
            await routing.add_route(conn, routing.Route("sms", vendor.id))
            await conn.execute(
                "INSERT INTO number_prefixes (prefix, mcc, mnc, country) VALUES ('7916', '250', '01', 'RU')"
                " ON CONFLICT DO NOTHING")
            await conn.execute("UPDATE refbook_state SET revision = revision + 1")
            _, plain = await apikeys.create(conn, partner_id=partner.id, created_by=None,
                                            name="bench", ttl="never")
    finally:
        await pool.close()
    return plain


def _bodies(recipients: int, count: int = 16) -> list[bytes]:
    bodies = []
    for b in range(count):
        numbers = [f"7916{(b * recipients + i) % 10_000_000:07d}" for i in range(recipients)]
        bodies.append(json.dumps({"channels": ["SMS"], "from": "Herald", "to": numbers,
                                  "message": "Your code is 123456", "label": "bench"}).encode())
    return bodies


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


async def _postgres_processes(url: str) -> list[psutil.Process]:
    """Every process of the PostgreSQL server (it runs on this machine)."""
    pool = await open_pool(url, 2)
    try:
        pid = await pool.fetchval("SELECT pg_backend_pid()")
        postmaster = psutil.Process(pid).parent()
    finally:
        await pool.close()
    return [postmaster, *postmaster.children()]


async def _load(base: str, key: str, args: argparse.Namespace, db_url: str,
                herald: psutil.Process | None = None) -> None:
    """Drive the load; ``herald``: a separate ``herald serve`` whose CPU (all its workers)
    is reported apart from this process's (then only the load generator's)."""
    bodies = _bodies(args.recipients)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    sent = 0
    errors = 0
    async with aiohttp.ClientSession(base_url=base) as session:
        # warm-up: caches, prepared statements, the world reference table
        async with session.post("/api/send_sms", data=bodies[0], headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()
        pg = await _postgres_processes(db_url)
        served = [herald, *herald.children(recursive=True)] if herald else []
        pg_before, cpu_before, served_before = _cpu(pg), time.process_time(), _cpu(served)
        stop = time.monotonic() + args.seconds
        started = time.monotonic()

        async def client(n: int) -> None:
            nonlocal sent, errors
            i = n
            while time.monotonic() < stop:
                t0 = time.perf_counter()
                async with session.post("/api/send_sms", data=bodies[i % len(bodies)],
                                        headers=headers) as resp:
                    answer = await resp.json()
                latencies.append(time.perf_counter() - t0)
                if resp.status != 200:
                    errors += 1
                else:
                    ok = sum(1 for line in answer["results"] if line.count("-") == 4)
                    sent += ok
                    errors += len(answer["results"]) - ok
                i += args.clients

        await asyncio.gather(*(client(n) for n in range(args.clients)))
        elapsed = time.monotonic() - started
        # the backends serving this run: the pool's, so re-read the children
        pg_cpu = _cpu(pg) - pg_before
        cpu = time.process_time() - cpu_before
        served_cpu = _cpu(served) - served_before
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
    print(f"{args.clients} clients x {args.recipients} recipients/request, {elapsed:.1f} s:")
    print(f"  recipients accepted: {sent}  ({sent / elapsed:,.0f} recipients/s)")
    print(f"  requests: {len(latencies)}  ({len(latencies) / elapsed:.1f}/s);"
          f" refused recipients: {errors}")
    print(f"  request latency ms: p50 {q[49] * 1000:.0f}  p90 {q[89] * 1000:.0f}"
          f"  p99 {q[98] * 1000:.0f}  max {latencies[-1] * 1000:.0f}")
    if sent and herald:
        print(f"  CPU per recipient: Herald ({args.workers} worker(s)) {served_cpu / sent * 1e6:.1f} µs,"
              f" load generator {cpu / sent * 1e6:.1f} µs, PostgreSQL {pg_cpu / sent * 1e6:.1f} µs;"
              f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    elif sent:
        print(f"  CPU per recipient: Herald process (server and load generator) "
              f"{cpu / sent * 1e6:.1f} µs, PostgreSQL {pg_cpu / sent * 1e6:.1f} µs;"
              f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


async def _main_served(args: argparse.Namespace) -> None:
    """Herald as ``herald serve`` with ``--workers`` processes; this process only loads it."""
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-api-"))
    pg = EmbeddedPostgres(tmp / "pg", fast=args.no_fsync)
    redis = EmbeddedRedis(tmp / "redis")
    proc = None
    try:
        db_url = await asyncio.to_thread(pg.start)
        redis_url = await asyncio.to_thread(redis.start)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, HERALD_HTTP_PORT=str(port),
                   HERALD_SMPP_PORT=str(free_port()), HERALD_VAR_DIR=str(tmp / "var"),
                   HERALD_ADMIN_PASSWORD="bench-password-1", HERALD_API_TPS="0",
                   HERALD_LOG_LEVEL=os.environ.get("BENCH_HERALD_LOG_LEVEL", "warning"),
                   HERALD_DB_POOL_SIZE="20",
                   HERALD_WORKERS=str(args.workers))
        proc = await asyncio.to_thread(
            subprocess.Popen, [sys.executable, "-m", "gateway.runtime.cli", "serve"], env=env)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            for _ in range(300):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{base}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.2)
        key = await _world(db_url)
        await asyncio.sleep(6)  # every worker's pipeline re-reads senders, routes, prefixes
        print(f"Herald on {base} ({args.workers} worker process(es)); PostgreSQL fsync "
              f"{'off' if args.no_fsync else 'on'}")
        await _load(base, key, args, db_url, psutil.Process(proc.pid))
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(tmp, ignore_errors=True)


async def main(args: argparse.Namespace) -> None:
    if args.workers:
        await _main_served(args)
        return
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-api-"))
    port = free_port()
    settings = load_settings({}).replace(
        var_dir=tmp, http_port=port, smpp_port=free_port(), embedded_pg_fast=args.no_fsync,
        admin_email="bench@herald.test", admin_password="bench-password-1", api_tps=0,
        log_level="warning", db_pool_size=20,
    )
    herald = Herald(settings)
    try:
        await herald.start()
        key = await _world(herald.settings.database_url)
        print(f"Herald on http://127.0.0.1:{port}; PostgreSQL fsync "
              f"{'off' if args.no_fsync else 'on'}")
        await _load(f"http://127.0.0.1:{port}", key, args, herald.settings.database_url)
    finally:
        await herald.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--recipients", type=int, default=700)
    parser.add_argument("--no-fsync", action="store_true")
    parser.add_argument("--workers", type=int, default=0,
                        help="run Herald as `herald serve` with this many worker processes"
                             " (0: in this process, beside the load generator)")
    parsed = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(parsed))
