"""Group commit against one transaction per message, with 200 concurrent producers.

Each producer stands for an SMPP bind or an HTTP request: it persists one
message at a time and waits for the commit before the next (as a
``submit_sm_resp`` waits). Prints rows/s and persist latency for:

1. one transaction per message (pool of 10 connections) — the baseline;
2. the group-commit engine storing messages only;
3. the engine storing with a billing-like step (one balance debit per partner
   per batch) and every message put in the send queue.

Usage: ``.venv/bin/python bench/pipeline_commit.py [--seconds 5] [--producers 200]``.
With ``DATABASE_URL`` set it uses that server (its database must be disposable:
the bench creates and drops ``herald_bench``); otherwise it starts an embedded
PostgreSQL with fsync ON (durable commits, as in production) in a temp folder;
``--no-fsync`` turns it off to show where the CPU limit lies.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import asyncpg

from gateway.base.app import open_pool
from gateway.base.embedded import EmbeddedPostgres
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner
from gateway.store import queue
from gateway.store.commit import GroupCommit
from gateway.store.messages import NewMessage, Status, insert_messages

PRICE = Decimal("0.010000")


async def _prepare(server_url: str) -> str:
    admin = await asyncpg.connect(server_url)
    await admin.execute("DROP DATABASE IF EXISTS herald_bench WITH (FORCE)")
    await admin.execute("CREATE DATABASE herald_bench")
    await admin.close()
    url = server_url.rsplit("/", 1)[0] + "/herald_bench"
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await seed_system_owner(conn, admin_email="bench@herald.test", admin_password="bench-pass-1")
    await conn.close()
    return url


def _msg(pid: int, i: int, route: tuple[int, ...] = ()) -> NewMessage:
    return NewMessage(partner_id=pid, origin="smpp", sender="HERALD",
                      destination=f"3579{i % 10_000_000:08d}", text="Your code is 123456",
                      route=route)


async def _store(conn: asyncpg.Connection, msgs: list[NewMessage]) -> list[NewMessage]:
    await queue.insert_and_enqueue(conn, msgs)
    return msgs


async def _charge_and_store(conn: asyncpg.Connection, msgs: list[NewMessage]) -> list[NewMessage]:
    """A stand-in for billing (one debit statement per partner in the batch), then the store."""
    totals: dict[int, Decimal] = {}
    for m in msgs:
        totals[m.partner_id] = totals.get(m.partner_id, Decimal(0)) + PRICE
        m.status, m.cost, m.charge_ref = Status.BILLED, PRICE, "bench"
    for pid, total in totals.items():
        await conn.execute("UPDATE partners SET balance = balance - $2 WHERE id = $1", pid, total)
    return await _store(conn, msgs)


async def _run_producers(persist, pid: int, producers: int, seconds: float,
                         route: tuple[int, ...] = ()) -> tuple[int, list[float], float]:
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    counter = iter(range(10**9))

    async def producer() -> int:
        done = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            await persist([_msg(pid, next(counter), route)])
            latencies.append(time.perf_counter() - started)
            done += 1
        return done

    began = time.monotonic()
    counts = await asyncio.gather(*(producer() for _ in range(producers)))
    return sum(counts), latencies, time.monotonic() - began


def _report(name: str, rows: int, lat: list[float], elapsed: float, extra: str = "") -> None:
    lat_ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(lat_ms)
    p99 = lat_ms[int(len(lat_ms) * 0.99) - 1]
    print(f"{name:<42} {rows / elapsed:>9.0f} rows/s   persist p50 {p50:6.1f} ms"
          f"  p99 {p99:6.1f} ms  {extra}", flush=True)


async def main(args: argparse.Namespace) -> None:
    tmp: Path | None = None
    server = None
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        tmp = Path(tempfile.mkdtemp(prefix="herald-bench-"))
        server = EmbeddedPostgres(tmp / "pg", fast=args.no_fsync)
        url = server.start()
    try:
        db = await _prepare(url)
        pool = await open_pool(db, 12)
        pid = await pool.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
        await pool.execute("UPDATE partners SET credit_limit = 1e12 WHERE id = $1", pid)
        fsync = await pool.fetchval("SHOW fsync")
        sync = await pool.fetchval("SHOW synchronous_commit")
        print(f"PostgreSQL fsync={fsync} synchronous_commit={sync}; {args.producers} producers,"
              f" {args.seconds:g} s per run, {os.cpu_count()} CPUs", flush=True)

        async def one_tx_each(msgs: list[NewMessage]) -> list[NewMessage]:
            async with pool.acquire() as conn, conn.transaction():
                await insert_messages(conn, msgs)
            return msgs

        rows, lat, el = await _run_producers(one_tx_each, pid, args.producers, args.seconds)
        _report("one transaction per message (pool 10)", rows, lat, el)

        writer = GroupCommit(pool, _store, max_delay=args.delay, max_rows=args.max_rows)
        await writer.start()
        rows, lat, el = await _run_producers(writer.submit, pid, args.producers, args.seconds)
        await writer.stop()
        s = writer.stats
        _report("group commit", rows, lat, el,
                f"batches {s.batches}, mean {s.rows / max(1, s.batches):.0f} rows")

        writer = GroupCommit(pool, _charge_and_store, max_delay=args.delay, max_rows=args.max_rows)
        await writer.start()
        rows, lat, el = await _run_producers(writer.submit, pid, args.producers, args.seconds,
                                             route=(1, 2))
        await writer.stop()
        s = writer.stats
        _report("group commit + debit + send queue", rows, lat, el,
                f"batches {s.batches}, mean {s.rows / max(1, s.batches):.0f} rows")
        queued = await pool.fetchval("SELECT count(*) FROM send_queue")
        total = await pool.fetchval("SELECT count(*) FROM messages")
        balance = await pool.fetchval("SELECT balance FROM partners WHERE id = $1", pid)
        print(f"check: {total} messages stored, {queued} queued, balance {balance}"
              f" (= -{PRICE} x {queued}: {balance == -PRICE * queued})")
        await pool.close()
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--producers", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.003, help="max batch delay, seconds")
    parser.add_argument("--max-rows", type=int, default=1000)
    parser.add_argument("--no-fsync", action="store_true",
                        help="embedded server without fsync: shows the CPU-bound ceiling")
    asyncio.run(main(parser.parse_args()))
