"""End to end over SMPP: load client → ``herald serve`` → carrier simulator → receipts back.

Three processes share the machine: this one (the load client), Herald (a
``herald serve`` subprocess on the embedded PostgreSQL and Redis, or on
``DATABASE_URL`` / ``REDIS_URL`` when set — a fresh database is created on that
server), and the carrier simulator (a child process). The load client binds
with window 50 and asks for a receipt on every message.

Printed:

1. the harness's own ceiling: the same load client straight to the simulator;
2. Herald's sustained msgs/s (submit_sm to submit_sm_resp, every message
   persisted and charged: checked in the database afterwards) and how long the
   receipts took to come back; with ``--connections N`` / ``--window W`` the
   load is spread over N binds of window W each (the default, one bind of
   window 50, caps throughput at 50 / submit latency: it measures latency as
   much as capacity);
3. submit_sm_resp latency percentiles with submits paced at 2,000 msg/s;
4. Herald's peak RSS.

Usage: ``.venv/bin/python -m bench.e2e_smpp [--messages 30000] [--paced-seconds 10]``
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import asyncpg
import psutil

from gateway.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from gateway.migrate import migrate
from gateway.seed import seed_system_owner
from smpp.client import ClientConfig, ClientHandler, SmppClient
from smpp.pdu import SubmitSm
from smpp.results import Outcome
from smpp.session import SessionConfig

SENDER = "Herald"
WINDOW = 50


def _sim_process(port_out, stop_in, counts_out) -> None:
    from gateway.simulator import CarrierSimulator, SimConfig

    async def run() -> None:
        sim = CarrierSimulator(SimConfig(receipt_delay=0.5, window=200))
        await sim.start()
        port_out.put(sim.port)
        while True:
            if not stop_in.empty():
                break
            await asyncio.sleep(0.2)
        counts_out.put((sim.counters.accepted, sim.counters.receipts_acked, sim.counters.receipt_retries))
        await sim.stop()

    _loop_run(run())


def _loop_run(coro) -> None:
    try:
        import uvloop

        uvloop.run(coro)
    except ImportError:
        asyncio.run(coro)


class Receipts(ClientHandler):
    def __init__(self) -> None:
        self.count = 0

    async def receipt(self, pdu):
        self.count += 1


async def _client(port: int, system_id: str, password: str, handler: ClientHandler,
                  window: int = WINDOW) -> SmppClient:
    client = SmppClient(ClientConfig(
        "127.0.0.1", port, system_id, password,
        session=SessionConfig(window=window, enquire_link_interval=None, response_timeout=30.0)),
        handler)
    await client.start()
    await asyncio.wait_for(client.wait_bound(), 60)
    return client


def _pdu(i: int) -> SubmitSm:
    return SubmitSm(source_addr=SENDER, destination_addr=f"7916{i % 10_000_000:07d}",
                    short_message=f"Bench message {i} from Herald".encode(), registered_delivery=1)


async def _flood_all(clients: list[SmppClient], n: int) -> tuple[float, int, list[float]]:
    """Submit n spread over the clients (each as fast as its window allows)."""
    share = [n // len(clients) + (1 if i < n % len(clients) else 0) for i in range(len(clients))]
    start = time.perf_counter()
    runs = await asyncio.gather(*(_flood(c, k, offset=sum(share[:i]))
                                  for i, (c, k) in enumerate(zip(clients, share, strict=True))))
    return (time.perf_counter() - start, sum(r[1] for r in runs),
            [x for r in runs for x in r[2]])


async def _flood(client: SmppClient, n: int, offset: int = 0) -> tuple[float, int, list[float]]:
    """Submit n as fast as the window allows; (seconds, accepted, latencies)."""
    accepted = 0
    latencies: list[float] = []
    done = asyncio.Event()
    remaining = n

    def finished(fut: asyncio.Future, sent: float) -> None:
        nonlocal accepted, remaining
        latencies.append(time.perf_counter() - sent)
        if fut.result().outcome is Outcome.ACCEPTED:
            accepted += 1
        remaining -= 1
        if remaining == 0:
            done.set()

    start = time.perf_counter()
    for i in range(n):
        sent = time.perf_counter()
        fut = await client.send(_pdu(offset + i))
        fut.add_done_callback(lambda f, s=sent: finished(f, s))
    await done.wait()
    return time.perf_counter() - start, accepted, latencies


async def _paced(client: SmppClient, rate: float, seconds: float) -> list[float]:
    n = int(rate * seconds)
    latencies: list[float] = []
    futures = []
    start = time.perf_counter()
    for i in range(n):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        sent = time.perf_counter()
        fut = await client.send(_pdu(1_000_000 + i))
        fut.add_done_callback(lambda f, s=sent: latencies.append(time.perf_counter() - s))
        futures.append(fut)
    await asyncio.gather(*futures)
    achieved = n / (time.perf_counter() - start)
    print(f"paced run: offered {rate:,.0f} msg/s, achieved {achieved:,.0f} msg/s", flush=True)
    return latencies


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


async def _prepare(db_url: str, sim_port: int, binds: int = 4) -> None:
    from billing.vendors import NewVendor  # noqa: F401 - make_world uses the domain API
    from gateway.app import open_pool
    from gateway.smpp_accounts import create_account
    from tests.gateway.world import make_world

    conn = await asyncpg.connect(db_url)
    try:
        await migrate(conn)
        await seed_system_owner(conn, admin_email="bench@herald.local", admin_password="bench-pw-1")
    finally:
        await conn.close()
    pool = await open_pool(db_url, 2)
    try:
        world = await make_world(pool, balance="10000000")
        async with pool.acquire() as c:
            await c.execute("UPDATE vendors SET smpp_port = $2, tps = 1000000, window_size = 200 "
                            "WHERE id = $1", world.sms_vendor, sim_port)
            await create_account(c, world.partner_id, "bench", "benchpw", max_binds=max(4, binds))
    finally:
        await pool.close()


def _start_herald(env: dict, log_path: Path, profile_to: str) -> subprocess.Popen:
    profile = ["-m", "cProfile", "-o", profile_to] if profile_to else []
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, *profile, "-m", "gateway.cli", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _wait_healthy(herald: subprocess.Popen, http_port: int, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline or herald.poll() is not None:
                raise SystemExit(f"herald did not start: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.2)


async def _main(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    pg = redis = None
    db_url = os.environ.get("DATABASE_URL", "")
    redis_url = os.environ.get("REDIS_URL", "")
    if db_url:
        name = f"herald_bench_{int(time.time())}"
        admin = await asyncpg.connect(db_url)
        await admin.execute(f"CREATE DATABASE {name}")
        await admin.close()
        db_url = db_url.rsplit("/", 1)[0] + "/" + name
    else:
        pg = EmbeddedPostgres(tmp / "pg", fast=args.fast_pg)
        db_url = await asyncio.to_thread(pg.start)
    if not redis_url:
        redis = EmbeddedRedis(tmp / "redis")
        redis_url = await asyncio.to_thread(redis.start)

    ctx = multiprocessing.get_context("spawn")
    port_q, stop_q, counts_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
    sim = ctx.Process(target=_sim_process, args=(port_q, stop_q, counts_q), daemon=True)
    sim.start()
    sim_port = port_q.get(timeout=30)
    herald = None
    try:
        # 1. the harness's ceiling: load client straight to the simulator
        direct = Receipts()
        clients = [await _client(sim_port, "bench", "x", direct, args.window)
                   for _ in range(args.connections)]
        secs, ok, lat = await _flood_all(clients, args.messages)
        for client in clients:
            await client.close()
        shape = f"{args.connections} bind(s) x window {args.window}"
        print(f"harness ceiling (client → simulator, {shape}): {ok / secs:,.0f} msg/s "
              f"({ok} in {secs:.2f} s, p99 {_pct(lat, 0.99):.1f} ms)", flush=True)

        await _prepare(db_url, sim_port, args.connections)
        http_port, smpp_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, HERALD_HTTP_PORT=str(http_port),
                   HERALD_SMPP_PORT=str(smpp_port), HERALD_VAR_DIR=str(tmp / "var"),
                   HERALD_ADMIN_PASSWORD="bench-pw-1", HERALD_LOG_LEVEL="warning",
                   HERALD_DB_POOL_SIZE="20")
        herald = _start_herald(env, tmp / "herald.log", args.profile)
        await asyncio.to_thread(_wait_healthy, herald, http_port, tmp / "herald.log")
        proc = psutil.Process(herald.pid)
        peak_rss = 0

        async def watch_rss() -> None:
            nonlocal peak_rss
            while True:
                peak_rss = max(peak_rss, proc.memory_info().rss)
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch_rss())
        handler = Receipts()
        clients = [await _client(smpp_port, "bench", "benchpw", handler, args.window)
                   for _ in range(args.connections)]
        client = clients[0]

        # 2. sustained throughput through Herald
        cpu0 = _cpu_seconds(proc)
        secs, ok, lat = await _flood_all(clients, args.messages)
        print(f"herald sustained ({shape}): {ok / secs:,.0f} msg/s ({ok}/{args.messages} accepted in {secs:.2f} s, "
              f"p50 {_pct(lat, 0.5):.1f} ms, p99 {_pct(lat, 0.99):.1f} ms)", flush=True)
        t0 = time.perf_counter()
        while True:
            if handler.count >= ok or time.perf_counter() - t0 > args.receipt_wait:
                break
            await asyncio.sleep(0.2)
        print(f"receipts back at the client: {handler.count}/{ok} "
              f"({time.perf_counter() - t0:.1f} s after the last submit_sm_resp)", flush=True)
        if ok:
            # The whole life of each message: submit, send to the vendor, receipt in, receipt out.
            print(f"herald CPU per message (submit to receipt delivered): "
                  f"{(_cpu_seconds(proc) - cpu0) / ok * 1e6:.0f} µs", flush=True)

        # 3. latency at a steady 2,000 msg/s
        paced = await _paced(client, 2000.0, args.paced_seconds)
        print(f"paced 2,000 msg/s for {args.paced_seconds:.0f} s: p50 {_pct(paced, 0.5):.1f} ms, "
              f"p99 {_pct(paced, 0.99):.1f} ms, max {max(paced) * 1000:.1f} ms "
              f"(mean {statistics.mean(paced) * 1000:.1f} ms)", flush=True)
        for client in clients:
            await client.close()
        watcher.cancel()
        print(f"herald peak RSS: {peak_rss / 2**20:.0f} MB", flush=True)

        conn = await asyncpg.connect(db_url)
        try:
            stored = await conn.fetchval("SELECT count(*) FROM messages")
            charged = await conn.fetchval("SELECT count(*) FROM charges")
            spent = await conn.fetchval("SELECT sum(cost) FROM messages") or Decimal(0)
            by_status = dict(await conn.fetch("SELECT status, count(*) FROM messages GROUP BY 1"))
        finally:
            await conn.close()
        total = ok + len(paced)
        print(f"database: {stored} messages for {total} submitted, {charged} charges, "
              f"{spent} spent; statuses {by_status}", flush=True)
    finally:
        if herald is not None:
            herald.send_signal(signal.SIGTERM)
            try:
                herald.wait(20)
            except subprocess.TimeoutExpired:
                herald.kill()
        stop_q.put(True)
        try:
            accepted, receipts, retries = counts_q.get(timeout=10)
            print(f"simulator: {accepted} accepted, {receipts} receipts acknowledged "
                  f"({retries} receipt retries)", flush=True)
        except Exception:
            pass
        sim.join(10)
        if redis is not None:
            await asyncio.to_thread(redis.stop)
        if pg is not None:
            await asyncio.to_thread(pg.stop)
        if args.keep:
            print(f"kept {tmp} (Herald's log: {tmp / 'herald.log'})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--receipt-wait", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=1, help="binds the load is spread over")
    parser.add_argument("--window", type=int, default=WINDOW, help="window of each bind")
    parser.add_argument("--profile", default="", help="write a cProfile of Herald to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and log")
    parser.add_argument("--fast-pg", action="store_true", help="embedded PostgreSQL without fsync")
    _loop_run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
