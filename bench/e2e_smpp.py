"""End to end over SMPP: load client → ``herald serve`` → carrier simulator → receipts back.

Three processes share the machine: this one (the load client,
:mod:`bench.loadgen`: pre-encoded ``submit_sm``, many PDUs per write, no
per-message objects, so it costs a few µs a message and is never what limits
the figure), Herald (a ``herald serve`` subprocess on the embedded PostgreSQL
and Redis, or on ``DATABASE_URL`` / ``REDIS_URL`` when set — a fresh database
is created on that server), and the carrier simulator
(:class:`smpp.simulator.CarrierSimulator` in a child process, receipts after
0.5 s). The load is spread over ``--connections`` transceiver binds of
``--window`` requests in flight each (default 4 x 100), every message asking
for a delivery receipt. ``--loadgen-process`` moves the load client to a child
process of its own.

Printed:

1. the harness's own ceiling: the same load client straight to the simulator
   (submit_sm to submit_sm_resp, receipts counted as they come back): the
   highest figure this bench can show for Herald on this machine;
2. Herald's sustained msgs/s, flooding ``--messages`` submits as fast as the
   windows allow (submit_sm to submit_sm_resp, every message persisted and
   charged: checked in the database afterwards), and how long the receipts
   took to come back through Herald; with few binds or a small window the
   figure is capped at binds x window / submit latency, so it measures latency
   as much as capacity;
3. submit_sm_resp latency percentiles with submits paced at 2,000 msg/s (``--paced-rate``) over
   the same binds;
4. Herald's peak RSS (all its processes with ``--workers`` > 1), and CPU per
   message of Herald and of the embedded PostgreSQL during the flood.

Usage: ``.venv/bin/python -m bench.e2e_smpp [--messages 30000] [--connections 4] [--window 100]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import multiprocessing
import os
import shutil
import signal
import socket
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

from bench.loadgen import LoadClient, LoadProcess, RunStats, open_load
from gateway.base.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner

CONNECTIONS = 4
WINDOW = 100
PACED_RATE = 2000.0
PACED_OFFSET = 1_000_000   # message indices (and so destinations) of the paced run


def _sim_process(port_out, stop_in, counts_out) -> None:
    from smpp.simulator import CarrierSimulator, SimConfig

    async def run() -> None:
        sim = CarrierSimulator(SimConfig(receipt_delay=0.5, window=200))
        await sim.start()
        # The collector tuned as Herald tunes its own (gateway.runtime.main): the simulator
        # keeps every message it accepted, and full collections walking them all
        # would otherwise cost it a good part of its CPU under a flood.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
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


async def _paced(load: LoadClient | LoadProcess, rate: float, seconds: float) -> RunStats:
    stats = await load.paced(rate, seconds, offset=PACED_OFFSET)
    print(f"paced run: offered {rate:,.0f} msg/s, achieved {stats.offered_rate:,.0f} msg/s", flush=True)
    return stats


def _family(proc: psutil.Process) -> list[psutil.Process]:
    """``proc`` and its descendants (Herald's workers; PostgreSQL's backends)."""
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu(procs: list[psutil.Process]) -> dict[int, float]:
    """CPU seconds used so far, per pid."""
    used = {}
    for p in procs:
        try:
            times = p.cpu_times()
        except psutil.Error:
            continue
        used[p.pid] = times.user + times.system
    return used


def _cpu_since(before: dict[int, float], procs: list[psutil.Process]) -> float:
    """CPU seconds ``procs`` used since ``before`` (a process born since counts whole)."""
    return sum(now - before.get(pid, 0.0) for pid, now in _cpu(procs).items())


def _postmaster(data_dir: Path) -> psutil.Process | None:
    try:
        return psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
    except (OSError, ValueError, psutil.Error):
        return None


async def _prepare(db_url: str, sim_port: int, binds: int = 4) -> None:
    from billing.vendors import NewVendor  # noqa: F401 - make_world uses the domain API
    from gateway.base.app import open_pool
    from gateway.intake.smpp_accounts import create_account
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
        return subprocess.Popen([sys.executable, *profile, "-m", "gateway.runtime.cli", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _wait_healthy(herald: subprocess.Popen, http_port: int, smpp_port: int, log_path: Path) -> None:
    """Until /healthz answers and the SMPP port takes connections: with workers of
    different roles, the one answering on HTTP may not be the one serving SMPP."""
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/healthz", timeout=2):
                pass
            socket.create_connection(("127.0.0.1", smpp_port), timeout=2).close()
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
        shape = f"{args.connections} bind(s) x window {args.window}"
        async with open_load("127.0.0.1", sim_port, "bench", "x", binds=args.connections,
                             window=args.window, process=args.loadgen_process) as load:
            run = await load.flood(args.messages)
            # Receipts drain before the binds go, so none is left for Herald's binds.
            receipts = await load.wait_receipts(run.accepted, args.receipt_wait)
        print(f"harness ceiling (client → simulator, {shape}): {run.rate:,.0f} msg/s "
              f"({run.accepted} in {run.seconds:.2f} s, p99 {run.percentile(0.99):.1f} ms, "
              f"receipts {receipts}/{run.accepted})", flush=True)

        await _prepare(db_url, sim_port, args.connections)
        http_port, smpp_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, HERALD_HTTP_PORT=str(http_port),
                   HERALD_SMPP_PORT=str(smpp_port), HERALD_VAR_DIR=str(tmp / "var"),
                   HERALD_ADMIN_PASSWORD="bench-pw-1", HERALD_DB_POOL_SIZE="20",
                   HERALD_WORKERS=str(args.workers),
                   HERALD_WORKER_ROLES=args.roles,
                   # info shows each writer's batch sizes at shutdown (with --keep: in the log)
                   HERALD_LOG_LEVEL=os.environ.get("BENCH_HERALD_LOG_LEVEL", "warning"))
        herald = _start_herald(env, tmp / "herald.log", args.profile)
        await asyncio.to_thread(_wait_healthy, herald, http_port, smpp_port, tmp / "herald.log")
        proc = psutil.Process(herald.pid)
        postmaster = _postmaster(tmp / "pg") if pg is not None else None
        peak_rss = 0

        async def watch_rss() -> None:
            nonlocal peak_rss
            while True:
                rss = 0
                for p in _family(proc):
                    with contextlib.suppress(psutil.Error):
                        rss += p.memory_info().rss
                peak_rss = max(peak_rss, rss)
                await asyncio.sleep(0.2)

        watcher = asyncio.create_task(watch_rss())
        async with open_load("127.0.0.1", smpp_port, "bench", "benchpw", binds=args.connections,
                             window=args.window, process=args.loadgen_process) as load:
            # 2. sustained throughput through Herald
            cpu0 = _cpu(_family(proc))
            pg0 = _cpu(_family(postmaster)) if postmaster else {}
            run = await load.flood(args.messages)
            ok = run.accepted
            print(f"herald sustained ({shape}): {run.rate:,.0f} msg/s ({ok}/{args.messages} accepted "
                  f"in {run.seconds:.2f} s, p50 {run.percentile(0.5):.1f} ms, "
                  f"p99 {run.percentile(0.99):.1f} ms)", flush=True)
            t0 = time.perf_counter()
            receipts = await load.wait_receipts(ok, args.receipt_wait)
            print(f"receipts back at the client: {receipts}/{ok} "
                  f"({time.perf_counter() - t0:.1f} s after the last submit_sm_resp)", flush=True)
            if ok:
                # The whole life of each message: submit, send to the vendor, receipt in, receipt out.
                herald_cpu = _cpu_since(cpu0, _family(proc))
                pg_cpu = f", PostgreSQL {_cpu_since(pg0, _family(postmaster)) / ok * 1e6:.0f} µs" \
                    if postmaster else ""
                print(f"CPU per message (submit to receipt delivered): Herald "
                      f"{herald_cpu / ok * 1e6:.0f} µs over {args.workers} process(es){pg_cpu}",
                      flush=True)

            # 3. latency at a steady rate (2,000 msg/s unless told)
            paced = await _paced(load, args.paced_rate, args.paced_seconds)
            lat = paced.latencies or [0.0]
            print(f"paced {args.paced_rate:,.0f} msg/s for {args.paced_seconds:.0f} s: "
                  f"p50 {paced.percentile(0.5):.1f} ms, "
                  f"p99 {paced.percentile(0.99):.1f} ms, max {max(lat) * 1000:.1f} ms "
                  f"(mean {statistics.mean(lat) * 1000:.1f} ms)", flush=True)
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
        total = ok + paced.accepted
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
    parser.add_argument("--paced-rate", type=float, default=PACED_RATE,
                        help="submits per second of the latency run")
    parser.add_argument("--receipt-wait", type=float, default=60.0)
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help="binds the load is spread over")
    parser.add_argument("--window", type=int, default=WINDOW, help="requests in flight per bind")
    parser.add_argument("--loadgen-process", action="store_true",
                        help="run the load client in a child process of its own")
    parser.add_argument("--workers", type=int, default=1,
                        help="Herald worker processes (HERALD_WORKERS) sharing the SMPP port")
    parser.add_argument("--roles", default="",
                        help="one role per worker (HERALD_WORKER_ROLES), e.g. ingress,egress;"
                             " sets --workers to their number")
    parser.add_argument("--profile", default="", help="write a cProfile of Herald to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and log")
    parser.add_argument("--fast-pg", action="store_true", help="embedded PostgreSQL without fsync")
    args = parser.parse_args()
    if args.roles:
        args.workers = len(args.roles.split(","))
    _loop_run(_main(args))


if __name__ == "__main__":
    main()
