"""Short-link redirects: redirects a second, latency, CPU per redirect, and every click stored.

Starts embedded PostgreSQL (fsync on unless ``--no-fsync``) and Redis here,
Herald as ``herald serve`` (one process) in its own process, makes a client
partner with a short domain and ``--codes`` short links, then runs
``--clients`` keep-alive HTTP/1.1 connections (50 by default), each sending
``GET /<code>`` with the short domain's Host and waiting for the answer before
the next, for ``--seconds``. The load generator is a small asyncio protocol
on uvloop (an HTTP client library would need more CPU than Herald).

``--target short`` (default) loads the short-link port, ``--target http`` the
portal's HTTP port (the same handler behind the application's middleware).

Afterwards Herald is stopped (SIGTERM: the click writer flushes) and the
clicks in PostgreSQL are counted against the 302 answers received.

Usage: ``.venv/bin/python -m bench.redirect [--seconds 10] [--clients 50] [--target short|http]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
import psutil

from accounts.partners import NewPartner, create_partner
from accounts.tenancy import owner_scope
from gateway.base.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from shortener import domains, links

HOST = "go.bench.test"
AGENTS = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "WhatsApp/2.23.20.0 A",
)


async def _world(url: str, count: int) -> list[str]:
    """A client partner, a short domain granted to it, ``count`` links; returns their codes."""
    conn = await asyncpg.connect(url)
    try:
        owner = await owner_scope(conn)
        partner = await create_partner(conn, owner, owner.partner_id, NewPartner(kind="client", name="Bench"))
        domain = await domains.create_domain(conn, owner, HOST)
        await domains.add_grant(conn, owner, domain.id, "partner", partner.id)
        found = []
        for n in range(count):
            link = await links.create_link(conn, partner_id=partner.id, domain_id=domain.id, campaign_id=n + 1,
                                           original_url=f"https://shop.example.com/offer/{n}?utm_source=sms",
                                           name=f"Campaign {n + 1}")
            found.append(link.code)
        return found
    finally:
        await conn.close()


class _Client(asyncio.Protocol):
    """One keep-alive connection: a request, its answer, the next request."""

    def __init__(self, requests: list[bytes], deadline: float, stats: dict, done: asyncio.Future) -> None:
        self.requests, self.deadline, self.stats, self.done = requests, deadline, stats, done
        self.buffer = b""
        self.index = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        self.started = time.perf_counter()
        self.transport.write(self.requests[self.index % len(self.requests)])
        self.index += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.stats["latency"].append(time.perf_counter() - self.started)
            status = head[9:12]
            self.stats[status] = self.stats.get(status, 0) + 1
            if time.perf_counter() < self.deadline:
                self._send()
            else:
                self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def _drive(port: int, codes: list[str], clients: int, seconds: float) -> dict:
    requests = [
        (f"GET /{code} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {AGENTS[i % len(AGENTS)]}\r\n"
         "Accept-Language: en\r\n\r\n").encode()
        for i, code in enumerate(codes)
    ]
    stats: dict = {"latency": []}
    loop = asyncio.get_running_loop()
    deadline = time.perf_counter() + seconds
    waits = []
    for n in range(clients):
        done = loop.create_future()
        waits.append(done)
        own = requests[n::clients] or requests
        await loop.create_connection(lambda own=own, done=done: _Client(own, deadline, stats, done),
                                     "127.0.0.1", port)
    await asyncio.gather(*waits)
    return stats


def _cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-redirect-"))
    pg = EmbeddedPostgres(tmp / "pg", fast=args.no_fsync)
    redis = EmbeddedRedis(tmp / "redis")
    proc = None
    try:
        db_url = await asyncio.to_thread(pg.start)
        redis_url = await asyncio.to_thread(redis.start)
        http_port, short_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, HERALD_HTTP_PORT=str(http_port),
                   HERALD_SMPP_PORT=str(free_port()), HERALD_SHORT_PORT=str(short_port),
                   HERALD_SHORT_LISTENER="true",
                   HERALD_VAR_DIR=str(tmp / "var"), HERALD_ADMIN_PASSWORD="bench-password-1",
                   HERALD_LOG_LEVEL=os.environ.get("BENCH_HERALD_LOG_LEVEL", "warning"))
        proc = await asyncio.to_thread(subprocess.Popen, [sys.executable, "-m", "gateway.runtime.cli", "serve"], env=env)
        async with aiohttp.ClientSession() as session:
            for _ in range(900):  # a fresh database's migrations and reference book take a while
                if proc.poll() is not None:
                    raise SystemExit(f"herald serve exited with {proc.returncode}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"http://127.0.0.1:{http_port}/healthz") as resp:
                        if resp.status == 200:
                            break
                await asyncio.sleep(0.2)
            else:
                raise SystemExit("herald serve did not answer /healthz within 3 minutes")
            codes = await _world(db_url, args.codes)
            port = short_port if args.target == "short" else http_port
            probes = 0
            for _ in range(100):  # until Herald reads the new domain (at most its refresh period)
                async with session.get(f"http://127.0.0.1:{port}/{codes[0]}", headers={"Host": HOST},
                                       allow_redirects=False) as resp:
                    if resp.status == 302:
                        probes += 1  # a click too
                        break
                await asyncio.sleep(0.2)
        warm = await _drive(port, codes, args.clients, 1.0)  # every code once into the cache, and the JIT of habits
        herald = psutil.Process(proc.pid)
        conn = await asyncpg.connect(db_url)
        postmaster = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()")).parent()
        await conn.close()
        pg_procs = [postmaster, *postmaster.children()]
        before = (_cpu([herald]), _cpu(pg_procs), time.process_time())
        started = time.perf_counter()
        stats = await _drive(port, codes, args.clients, args.seconds)
        elapsed = time.perf_counter() - started
        herald_cpu = _cpu([herald]) - before[0]
        pg_cpu = _cpu(pg_procs) - before[1]
        load_cpu = time.process_time() - before[2]
        load_average = os.getloadavg()[0]
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)
        proc = None
        conn = await asyncpg.connect(db_url)
        stored = await conn.fetchval("SELECT count(*) FROM short_clicks")
        counted = await conn.fetchval("SELECT sum(clicks + bot_clicks) FROM short_links")
        await conn.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 30)
        await asyncio.to_thread(redis.stop)
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(tmp, ignore_errors=True)

    redirects = stats.get(b"302", 0)
    answered = probes + warm.get(b"302", 0) + redirects
    latency = sorted(stats["latency"])
    q = statistics.quantiles(latency, n=100)
    others = {k.decode(): v for k, v in stats.items() if k not in ("latency", b"302")}
    print(f"{args.clients} keep-alive clients, {len(codes)} codes, {elapsed:.1f} s on the "
          f"{'short-link' if args.target == 'short' else 'HTTP (portal)'} port;"
          f" PostgreSQL fsync {'off' if args.no_fsync else 'on'}")
    print(f"  redirects: {redirects:,} ({redirects / elapsed:,.0f}/s); other answers: {others or 'none'}")
    print(f"  latency ms: p50 {q[49] * 1000:.2f}  p90 {q[89] * 1000:.2f}  p99 {q[98] * 1000:.2f}"
          f"  max {latency[-1] * 1000:.1f}")
    print(f"  CPU per redirect: Herald {herald_cpu / redirects * 1e6:.1f} µs ({herald_cpu / elapsed:.2f} of a core),"
          f" PostgreSQL {pg_cpu / redirects * 1e6:.1f} µs, load generator {load_cpu / redirects * 1e6:.1f} µs;"
          f" load average {load_average:.2f} on {os.cpu_count()} cores")
    verdict = "every one" if stored == answered == counted else "MISSING"
    print(f"  clicks stored after a clean stop: {stored:,} rows, counters {counted:,},"
          f" for {answered:,} redirects answered ({verdict})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--codes", type=int, default=1000)
    parser.add_argument("--target", choices=("short", "http"), default="short")
    parser.add_argument("--no-fsync", action="store_true")
    parsed = parser.parse_args()
    import uvloop

    uvloop.install()
    asyncio.run(main(parsed))
