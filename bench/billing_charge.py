"""Charging throughput: messages priced and charged per second, in batches.

Starts an embedded PostgreSQL (fsync off, as in tests) in a temporary folder
unless ``BENCH_DATABASE_URL`` names a server, migrates a fresh database,
builds a partner tree (clients directly under the owner and clients of a
reseller, so half the messages carry a two-level margin chain), gives every
payer a plan of ~1,000 network rates, and charges ``--messages`` messages
in batches of ``--batch`` from ``--workers`` connections. Prints messages/s
for pricing alone (pure) and for price-and-charge end to end.

Batches that share a payer serialize on that payer's row lock (held until
commit), so extra connections only add throughput for disjoint payers
(``--shard``); clients of one reseller always share the reseller.

Usage: ``.venv/bin/python -m bench.billing_charge [--messages 200000] [--batch 1000] [--workers 1]
[--shard] [--networks 1000]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import asyncpg
import psutil

from accounts.partners import NewPartner, create_partner
from accounts.tenancy import load_scope, owner_scope
from billing import ledger, plans
from billing.charging import Charger
from billing.pricing import ChargeRequest, price_batch
from billing.rates import RateRow
from gateway.base.app import open_pool
from gateway.base.embedded import EmbeddedPostgres
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner

MCCS = [f"{m}" for m in range(200, 750, 1)][:250]


def _rates(rng: random.Random) -> list[RateRow]:
    rows = []
    for mcc in MCCS:
        rows.append(RateRow(mcc, "*", Decimal(rng.randint(10, 900)) / 10000))
        for mnc in ("01", "02", "03"):
            rows.append(RateRow(mcc, mnc, Decimal(rng.randint(10, 900)) / 10000))
    return rows


async def _build(conn: asyncpg.Connection, clients: int, rng: random.Random) -> list[int]:
    owner = await owner_scope(conn)
    rates = _rates(rng)
    reseller = await create_partner(conn, owner, owner.partner_id, NewPartner(kind="reseller", name="R"))
    await ledger.adjust_balance(conn, owner, reseller.id, Decimal("1000000000"))
    rscope = await load_scope(conn, reseller.id)
    rplan, _ = await plans.create_plan(conn, owner, plans.NewPlan("R plan", "sms", for_resellers=True), rates)
    await plans.offer_plan(conn, owner, rplan.id, reseller.id)
    await plans.subscribe(conn, owner, reseller.id, rplan.id)
    oplan, _ = await plans.create_plan(conn, owner, plans.NewPlan("C plan", "sms", public=True), rates)
    marked_up = [RateRow(r.mcc, r.mnc, r.price * 2) for r in rates]
    cplan, _ = await plans.create_plan(conn, rscope, plans.NewPlan("RC plan", "sms", public=True,
                                                                   base_plan_id=rplan.id), marked_up)
    ids = []
    for i in range(clients):
        seller, parent, plan = (owner, owner.partner_id, oplan) if i % 2 == 0 else (rscope, reseller.id, cplan)
        client = await create_partner(conn, seller, parent, NewPartner(kind="client", name=f"C{i}"))
        await ledger.adjust_balance(conn, owner, client.id, Decimal("1000000000"))
        await plans.subscribe(conn, seller, client.id, plan.id)
        ids.append(client.id)
    return ids


def _requests(clients: list[int], n: int, rng: random.Random, networks: int = 1000) -> list[ChargeRequest]:
    """Messages from random senders to ``networks`` distinct MCC/MNCs drawn uniformly.

    Many networks is the ledger's worst case: nearly every message of a batch
    gets its own per-MCCMNC ledger line.
    """
    pool = [(mcc, mnc) for mcc in MCCS for mnc in ("01", "02", "03", "99")]
    rng.shuffle(pool)
    pool = pool[:networks]
    out = []
    for i in range(n):
        mcc, mnc = rng.choice(pool)
        out.append(ChargeRequest(rng.choice(clients), None, "sms", mcc + mnc, rng.choice((1, 1, 1, 2)),
                                 None, "api", f"msg-{i}"))
    return out


async def run(url: str, messages: int, batch: int, workers: int, clients: int, networks: int,
              shard: bool) -> None:
    rng = random.Random(1)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await seed_system_owner(conn, admin_email="bench@herald.test", admin_password="bench-password")
    client_ids = await _build(conn, clients, rng)
    await conn.close()
    pool = await open_pool(url, workers + 1)
    charger = Charger()
    requests = _requests(client_ids, messages, rng, networks)

    # pure pricing, from a snapshot loaded once
    async with pool.acquire() as c, c.transaction():
        snap = await charger._snapshot(c, sorted(set(client_ids)))
    started = time.perf_counter()
    for i in range(0, len(requests), batch):
        price_batch(snap, requests[i:i + batch])
    pure = len(requests) / (time.perf_counter() - started)

    queues: list[asyncio.Queue] = [asyncio.Queue() for _ in range(workers)]
    if shard:  # each connection charges only its own senders
        for w in range(workers):
            mine = [r for r in requests if client_ids.index(r.partner_id) % workers == w]
            for i in range(0, len(mine), batch):
                queues[w].put_nowait(mine[i:i + batch])
    else:
        for n, i in enumerate(range(0, len(requests), batch)):
            queues[n % workers].put_nowait(requests[i:i + batch])
    accepted = 0

    async def worker(queue: asyncio.Queue) -> None:
        nonlocal accepted
        async with pool.acquire() as c:
            while not queue.empty():
                results = await charger.charge(c, queue.get_nowait())
                accepted += sum(r.ok for r in results)

    async with pool.acquire() as c:
        backends = [psutil.Process(r["pid"]) for r in await c.fetch(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend'")]
    pg_before = sum(p.cpu_times().user + p.cpu_times().system for p in backends)
    started, cpu_started = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(q) for q in queues))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    pg_cpu = sum(p.cpu_times().user + p.cpu_times().system for p in backends) - pg_before
    async with pool.acquire() as c:
        rows = await c.fetchval("SELECT count(*) FROM charges")
        tx = await c.fetchval("SELECT count(*) FROM transactions")
    await pool.close()
    print(f"pricing only (pure)           : {pure:12,.0f} messages/s")
    print(f"price + charge, end to end    : {messages / elapsed:12,.0f} messages/s "
          f"({messages:,} messages, batches of {batch}, {workers} connection(s){', sharded' if shard else ''}, "
          f"{elapsed:.2f} s)")
    print(f"  CPU per message: Python {cpu / messages * 1e6:.1f} µs, PostgreSQL backends "
          f"{pg_cpu / messages * 1e6:.1f} µs; wall {elapsed / messages * 1e6:.1f} µs; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"  accepted {accepted:,}; charge rows {rows:,}; ledger rows {tx:,}; "
          f"{clients} senders (half under a reseller), {networks} destination networks")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1,
                        help="connections; batches sharing a payer serialize on its row lock")
    parser.add_argument("--shard", action="store_true",
                        help="give each connection its own senders (as a pipeline sharding by partner would)")
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--networks", type=int, default=1000, help="distinct destination MCC/MNCs")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL")
    server = None
    tmp = None
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="herald-bench-"))
        server = EmbeddedPostgres(tmp / "pg", fast=True)
        base = server.start()
        url = base.rsplit("/", 1)[0] + "/bench"

        async def create() -> None:
            admin = await asyncpg.connect(base)
            await admin.execute("CREATE DATABASE bench")
            await admin.close()

        asyncio.run(create())
    try:
        asyncio.run(run(url, args.messages, args.batch, args.workers, args.clients, args.networks, args.shard))
    finally:
        if server:
            server.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
