"""End to end over SMPP: load client → ``herald serve`` → carrier simulator → receipts back.

Three parties share the machine: this process (the load client,
:mod:`bench.loadgen`: pre-encoded ``submit_sm``, many PDUs per write, no
per-message objects), Herald (a ``herald serve`` subprocess on an embedded
PostgreSQL and Redis started here, or on ``DATABASE_URL`` / ``REDIS_URL`` when
set — a fresh database per configuration is created on that server), and the
carrier simulator (:class:`smpp.simulator.CarrierSimulator` in a child
process, receipts 0.5 s after the submit). Every message asks for a delivery
receipt; every one is stored, charged, sent and its receipt passed back.

One run prints, headed by the build's git hash and the machine's load:

1. the harness's ceiling: the load client straight to the simulator (4 binds x
   window 100): the most this bench can show for Herald on this machine;
2. for each configuration (``--configs``: ``single`` = one Herald process,
   ``roles`` = ``--roles ingress,egress``, an ingress and an egress worker),
   on a Herald started afresh and warmed up (``--warm-up`` messages, then
   ``ANALYZE``, as autovacuum does on a server that has run a while):

   * ``1x10`` and ``1x50``: one bind with a window of 10 and of 50, flooding:
     submit_sm_resp p50 / p99, submits answered per second, and end to end
     msg/s (messages ÷ first submit to last receipt back, less the simulator's
     0.5 s receipt delay, which is the carrier's time, not Herald's);
   * ``flood``: 4 binds x window 100 (``--connections`` / ``--window``), the
     same figures;
   * for each of these, CPU per message over the case (first submit to last
     receipt back, read from /proc): Herald µs / PostgreSQL µs (its backends
     that ended meanwhile included) / Redis µs / harness µs (this process and
     the simulator), what the rest of the machine used meanwhile, and the
     statements PostgreSQL ran per message (``pg_stat_statements``);
   * ``paced R``: submit_sm_resp p50 / p99 at steady rates (``--paced``,
     default 1,000 and 2,000 msg/s) over the 4 binds;
3. with ``--flame`` (the default) a py-spy flame graph of Herald during one
   more flood, written to ``--artefacts`` (default ``var/bench``) with a JSON
   file of every figure and the top statements of each case.

``pg_stat_statements``: the PostgreSQL of the ``pgserver`` wheel does not ship
it, so when Debian's PostgreSQL is installed (``apt-get install
postgresql``) the bench runs its embedded cluster on those binaries instead,
with the extension preloaded; without it the statement figures are left out.
py-spy is a bench dependency (``pip install -e '.[bench]'``, ``make bench``).
Compare builds in alternating runs: wall-clock figures move with whatever
else runs; CPU per message and statements per message are the steady ones.

Usage: ``.venv/bin/python -m bench.e2e_smpp [--configs single,roles] [--messages 20000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import glob
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import asyncpg
import psutil

from bench.loadgen import open_load
from gateway.base.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner

CONNECTIONS = 4
WINDOW = 100
RECEIPT_DELAY = 0.5        # the simulator's, subtracted from end-to-end times
PACED = "1000,2000"
ROLES = {"single": "", "roles": "ingress,egress"}
HERE = Path(__file__).resolve().parent


# -- the machine: CPU read from /proc -----------------------------------------------------


def _sim_process(port_out, stop_in, counts_out) -> None:
    from smpp.simulator import CarrierSimulator, SimConfig

    async def run() -> None:
        sim = CarrierSimulator(SimConfig(receipt_delay=RECEIPT_DELAY, window=200))
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


def _tree_cpu(root: psutil.Process | None, *, reaped: bool = False) -> float:
    """CPU seconds of ``root`` and its live descendants; with ``reaped``, also of the
    children it has waited for (PostgreSQL's backends that ended)."""
    if root is None:
        return 0.0
    total = 0.0
    try:
        own = root.cpu_times()
        total = own.user + own.system
        if reaped:
            total += own.children_user + own.children_system
        kids = root.children(recursive=True)
    except psutil.Error:
        return total
    for p in kids:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Parties:
    herald: psutil.Process | None = None
    postgres: psutil.Process | None = None
    redis: psutil.Process | None = None
    harness: list[psutil.Process] = field(default_factory=list)

    def read(self) -> dict[str, float]:
        harness = 0.0
        for p in self.harness:
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                harness += t.user + t.system
        return {"herald": _tree_cpu(self.herald), "postgres": _tree_cpu(self.postgres, reaped=True),
                "redis": _tree_cpu(self.redis), "harness": harness, "machine": _machine_busy(),
                "clock": time.perf_counter()}


def _spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    d = {k: after[k] - before[k] for k in before}
    ours = d["herald"] + d["postgres"] + d["redis"] + d["harness"]
    d["others"] = max(0.0, d["machine"] - ours)   # everything else that ran meanwhile
    return d


# -- PostgreSQL: where the server comes from, and its statement counts ---------------------


def _debian_postgres() -> Path | None:
    """bin/ of an installed Debian PostgreSQL that ships pg_stat_statements, newest first."""
    for lib in sorted(glob.glob("/usr/lib/postgresql/*/lib/pg_stat_statements.so"), reverse=True):
        bin_dir = Path(lib).parent.parent / "bin"
        if (bin_dir / "postgres").exists():
            return bin_dir
    return None


async def _statements_reset(conn: asyncpg.Connection | None) -> None:
    if conn is not None:
        await conn.execute("SELECT pg_stat_statements_reset()")


async def _statements(conn: asyncpg.Connection | None, db: str) -> list[dict]:
    """Statements run in database ``db`` since the reset, most total time first."""
    if conn is None:
        return []
    rows = await conn.fetch(
        "SELECT calls, rows, total_exec_time, query FROM pg_stat_statements s "
        "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1 "
        "AND query NOT LIKE '%pg_stat_statements%' ORDER BY total_exec_time DESC", db)
    return [{"calls": r["calls"], "rows": r["rows"], "ms": round(r["total_exec_time"], 1),
             "query": " ".join(r["query"].split())[:300]} for r in rows]


# -- Herald -------------------------------------------------------------------------------


async def _prepare(db_url: str, sim_port: int, binds: int) -> None:
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


def _start_herald(env: dict, log_path: Path) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen([sys.executable, "-m", "gateway.runtime.cli", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _start_py_spy(pid: int, out: Path) -> subprocess.Popen | None:
    """py-spy recording ``pid`` and its children (stopped by SIGINT), or None without it."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "200",
         "--output", str(out), "--format", "flamegraph"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _git_build() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True,
                              text=True).stdout.strip()
    head = git("rev-parse", "--short=10", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# -- one run ------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = Path(tempfile.mkdtemp(prefix="herald-bench-"))
        self.parties = Parties(harness=[psutil.Process()])
        self.report: dict = {"build": _git_build(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                             "configs": {}}
        self.stats_conn: asyncpg.Connection | None = None
        self.offset = 0

    def say(self, text: str) -> None:
        print(text, flush=True)

    async def case(self, label: str, db: str, binds: int, window: int, n: int) -> dict:
        """A flood of ``n`` over ``binds`` x ``window``, until every receipt is back."""
        async with open_load("127.0.0.1", self.smpp_port, "bench", "benchpw", binds=binds,
                             window=window) as load:
            await _statements_reset(self.stats_conn)
            before = self.parties.read()
            run = await load.flood(n, offset=self.offset)
            self.offset += n + 1000
            answered = time.perf_counter()
            receipts = await load.wait_receipts(run.accepted, self.args.receipt_wait)
            after = self.parties.read()
            statements = await _statements(self.stats_conn, db)
        spent = _spent(before, after)
        ok = max(run.accepted, 1)
        end_to_end = spent["clock"] - RECEIPT_DELAY
        calls = sum(s["calls"] for s in statements)
        result = {
            "binds": binds, "window": window, "messages": n, "accepted": run.accepted,
            "submit_rate": round(run.rate), "p50_ms": round(run.percentile(0.5), 2),
            "p99_ms": round(run.percentile(0.99), 2), "receipts": receipts,
            "receipts_trail_s": round(after["clock"] - answered, 2),
            "end_to_end_rate": round(run.accepted / end_to_end) if receipts >= run.accepted else None,
            "cpu_us": {k: round(spent[k] / ok * 1e6) for k in ("herald", "postgres", "redis", "harness")},
            "others_cores": round(spent["others"] / spent["clock"], 2),
            "statements_per_message": round(calls / ok, 3) if self.stats_conn else None,
            "top_statements": statements[:15],
        }
        cpu = result["cpu_us"]
        stmts = (f", {result['statements_per_message']} statements/msg"
                 if self.stats_conn else "")
        e2e = (f"{result['end_to_end_rate']:,} msg/s end to end" if result["end_to_end_rate"]
               else f"receipts {receipts}/{run.accepted} only")
        self.say(f"  {label:<6} {binds} bind(s) x window {window}: submit_sm_resp p50 "
                 f"{result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms; "
                 f"{result['submit_rate']:,} msg/s answered, {e2e} "
                 f"(receipts trail {result['receipts_trail_s']:.1f} s)")
        self.say(f"         CPU per message: Herald {cpu['herald']} µs / PostgreSQL "
                 f"{cpu['postgres']} µs / Redis {cpu['redis']} µs / harness {cpu['harness']} µs"
                 f"{stmts}; the rest of the machine used {result['others_cores']} cores")
        return result

    async def paced(self, rate: float, seconds: float) -> dict:
        async with open_load("127.0.0.1", self.smpp_port, "bench", "benchpw",
                             binds=self.args.connections, window=self.args.window) as load:
            before = self.parties.read()
            run = await load.paced(rate, seconds, offset=self.offset)
            self.offset += run.sent + 1000
            receipts = await load.wait_receipts(run.accepted, self.args.receipt_wait)
            spent = _spent(before, self.parties.read())
        result = {"offered": rate, "achieved": round(run.offered_rate), "accepted": run.accepted,
                  "p50_ms": round(run.percentile(0.5), 2), "p99_ms": round(run.percentile(0.99), 2),
                  "max_ms": round(max(run.latencies or [0.0]) * 1000, 1), "receipts": receipts,
                  "busy_cores": round((spent["machine"]) / spent["clock"], 2)}
        self.say(f"  paced {rate:,.0f} msg/s for {seconds:.0f} s: achieved {result['achieved']:,}, "
                 f"p50 {result['p50_ms']:.1f} ms p99 {result['p99_ms']:.1f} ms max "
                 f"{result['max_ms']:.0f} ms; receipts {receipts}/{run.accepted}; machine busy "
                 f"{result['busy_cores']} of {os.cpu_count()} cores")
        return result

    async def warm_up(self, db_url: str) -> None:
        """A first flood, then ANALYZE, as autovacuum would have done on a server that has
        run for a while: on a fresh database's empty statistics the receipt lookup takes
        the primary key's range with its GIN probe and costs ~1 ms a receipt, not ~5 µs."""
        async with open_load("127.0.0.1", self.smpp_port, "bench", "benchpw",
                             binds=self.args.connections, window=self.args.window) as load:
            run = await load.flood(self.args.warm_up, offset=self.offset)
            self.offset += self.args.warm_up + 1000
            await load.wait_receipts(run.accepted, self.args.receipt_wait)
        conn = await asyncpg.connect(db_url)
        try:
            await conn.execute("ANALYZE")
        finally:
            await conn.close()

    async def flame(self, name: str) -> str | None:
        """One more flood with py-spy recording Herald (all its processes)."""
        out = Path(self.args.artefacts) / f"{self.report['build']}-{name}-flame.svg"
        spy_proc = _start_py_spy(self.parties.herald.pid, out)
        if spy_proc is None:
            self.say("  flame graph: py-spy not installed (pip install -e '.[bench]')")
            return None
        await asyncio.sleep(1.0)
        async with open_load("127.0.0.1", self.smpp_port, "bench", "benchpw",
                             binds=self.args.connections, window=self.args.window) as load:
            run = await load.flood(self.args.messages // 2, offset=self.offset)
            self.offset += self.args.messages
            await load.wait_receipts(run.accepted, self.args.receipt_wait)
        spy_proc.send_signal(signal.SIGINT)
        try:
            _, err = await asyncio.to_thread(spy_proc.communicate, timeout=60)
        except subprocess.TimeoutExpired:
            spy_proc.kill()
            err = b"timed out"
        if not out.exists():
            self.say(f"  flame graph: py-spy wrote nothing ({err.decode(errors='replace')[-300:]})")
            return None
        self.say(f"  flame graph of Herald during a flood: {out}")
        return str(out)

    async def config(self, name: str, roles: str, db_root: str, redis_url: str, sim_port: int) -> None:
        args = self.args
        db = f"herald_bench_{name}_{int(time.time())}"
        admin = await asyncpg.connect(db_root)
        try:
            await admin.execute(f"CREATE DATABASE {db}")
        finally:
            await admin.close()
        db_url = db_root.rsplit("/", 1)[0] + "/" + db
        await _prepare(db_url, sim_port, args.connections)
        self.http_port, self.smpp_port = free_port(), free_port()
        workers = len(roles.split(",")) if roles else 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url, HERALD_HTTP_PORT=str(self.http_port),
                   HERALD_SMPP_PORT=str(self.smpp_port), HERALD_VAR_DIR=str(self.tmp / "var"),
                   HERALD_ADMIN_PASSWORD="bench-pw-1", HERALD_DB_POOL_SIZE="20",
                   HERALD_WORKERS=str(workers), HERALD_WORKER_ROLES=roles,
                   # info shows each writer's batch sizes at shutdown (with --keep: in the log)
                   HERALD_LOG_LEVEL=os.environ.get("BENCH_HERALD_LOG_LEVEL", "warning"))
        log_path = self.tmp / f"herald-{name}.log"
        herald = _start_herald(env, log_path)
        out: dict = {"roles": roles or "all (one process)"}
        self.report["configs"][name] = out
        try:
            await asyncio.to_thread(_wait_healthy, herald, self.http_port, self.smpp_port, log_path)
            self.parties.herald = psutil.Process(herald.pid)
            self.say(f"{name}: Herald {'with roles ' + roles if roles else 'in one process'}")
            await self.warm_up(db_url)
            for label, binds, window, n in (("1x10", 1, 10, args.small),
                                            ("1x50", 1, 50, args.small),
                                            ("flood", args.connections, args.window, args.messages)):
                out[label] = await self.case(label, db, binds, window, n)
            out["paced"] = [await self.paced(float(r), args.paced_seconds)
                            for r in args.paced.split(",") if r]
            rss = sum(p.memory_info().rss for p in [self.parties.herald,
                                                    *self.parties.herald.children(recursive=True)])
            out["rss_mb"] = round(rss / 2**20)
            if args.flame:
                out["flame"] = await self.flame(name)
            conn = await asyncpg.connect(db_url)
            try:
                out["database"] = await _books(conn)
            finally:
                await conn.close()
            self.say(f"  RSS {out['rss_mb']} MB; database: {out['database']}")
        finally:
            herald.send_signal(signal.SIGTERM)
            try:
                herald.wait(30)
            except subprocess.TimeoutExpired:
                herald.kill()
            self.parties.herald = None

    async def main(self) -> None:
        args = self.args
        tmp = self.tmp
        pg = redis = None
        db_root = os.environ.get("DATABASE_URL", "")
        redis_url = os.environ.get("REDIS_URL", "")
        server = "DATABASE_URL"
        if not db_root:
            debian = _debian_postgres() if args.statements else None
            settings = {"shared_preload_libraries": "pg_stat_statements",
                        "pg_stat_statements.track_utility": "on"} if debian else None
            pg = EmbeddedPostgres(tmp / "pg", fast=args.fast_pg, binaries=debian, settings=settings)
            db_root = await asyncio.to_thread(pg.start)
            server = f"embedded, {'binaries of ' + str(debian) if debian else 'the pgserver wheel'}"
            self.parties.postgres = psutil.Process(pg.pid())
        if not redis_url:
            redis = EmbeddedRedis(tmp / "redis")
            redis_url = await asyncio.to_thread(redis.start)
            self.parties.redis = psutil.Process(redis.pid())
        with contextlib.suppress(Exception):
            self.stats_conn = await asyncpg.connect(db_root)
            await self.stats_conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if self.stats_conn is not None and not await self.stats_conn.fetchval(
                "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'"):
            await self.stats_conn.close()
            self.stats_conn = None
        version = "?"
        with contextlib.suppress(Exception):
            conn = await asyncpg.connect(db_root)
            version = await conn.fetchval("SHOW server_version")
            await conn.close()
        self.report.update(postgres=f"{version} ({server})", load_average=os.getloadavg())
        self.say(f"build {self.report['build']}, {self.report['started']}, load average "
                 f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, {os.cpu_count()} cores; "
                 f"PostgreSQL {version} ({server}); statements per message "
                 f"{'from pg_stat_statements' if self.stats_conn else 'not counted'}")

        ctx = multiprocessing.get_context("spawn")
        port_q, stop_q, counts_q = ctx.Queue(), ctx.Queue(), ctx.Queue()
        sim = ctx.Process(target=_sim_process, args=(port_q, stop_q, counts_q), daemon=True)
        sim.start()
        sim_port = port_q.get(timeout=30)
        self.parties.harness.append(psutil.Process(sim.pid))
        try:
            async with open_load("127.0.0.1", sim_port, "bench", "x", binds=args.connections,
                                 window=args.window) as load:
                run = await load.flood(args.messages)
                # Receipts drain before the binds go, so none is left for Herald's binds.
                receipts = await load.wait_receipts(run.accepted, args.receipt_wait)
            self.report["harness_ceiling"] = round(run.rate)
            self.say(f"harness ceiling (client → simulator, {args.connections} x {args.window}): "
                     f"{run.rate:,.0f} msg/s (p99 {run.percentile(0.99):.1f} ms, "
                     f"receipts {receipts}/{run.accepted})")
            for name in args.configs.split(","):
                await self.config(name, ROLES[name], db_root, redis_url, sim_port)
            self.report["load_average_after"] = os.getloadavg()
            self.say(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        finally:
            stop_q.put(True)
            try:
                accepted, receipts, retries = counts_q.get(timeout=10)
                self.say(f"simulator: {accepted} accepted, {receipts} receipts acknowledged "
                         f"({retries} receipt retries)")
            except Exception:
                pass
            sim.join(10)
            if self.stats_conn is not None:
                await self.stats_conn.close()
            if redis is not None:
                await asyncio.to_thread(redis.stop)
            if pg is not None:
                await asyncio.to_thread(pg.stop)
            out = Path(args.artefacts) / f"{self.report['build']}-e2e-{int(time.time())}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(self.report, indent=1, default=str))
            self.say(f"figures: {out}")
            if args.keep:
                self.say(f"kept {tmp} (Herald's logs: {tmp}/herald-*.log)")
            else:
                shutil.rmtree(tmp, ignore_errors=True)


async def _books(conn: asyncpg.Connection) -> dict:
    """Stored, charged and spent: every accepted message must be stored and charged once."""
    stored = await conn.fetchval("SELECT count(*) FROM messages")
    charged = await conn.fetchval("SELECT count(*) FROM messages WHERE cost IS NOT NULL")
    spent = await conn.fetchval("SELECT sum(cost) FROM messages") or Decimal(0)
    by_status = dict(await conn.fetch("SELECT status, count(*) FROM messages GROUP BY 1"))
    return {"messages": stored, "charged": charged, "spent": str(spent), "statuses": by_status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="single,roles",
                        help="comma-separated: single (one process), roles (ingress,egress)")
    parser.add_argument("--messages", type=int, default=20_000, help="messages of the flood case")
    parser.add_argument("--small", type=int, default=5_000,
                        help="messages of each one-bind case (window 10, window 50)")
    parser.add_argument("--warm-up", type=int, default=3_000,
                        help="messages flooded before the cases (then ANALYZE)")
    parser.add_argument("--paced", default=PACED, help="comma-separated paced rates, msg/s")
    parser.add_argument("--paced-seconds", type=float, default=8.0)
    parser.add_argument("--receipt-wait", type=float, default=90.0)
    parser.add_argument("--connections", type=int, default=CONNECTIONS,
                        help="binds of the flood and paced cases")
    parser.add_argument("--window", type=int, default=WINDOW, help="their window")
    parser.add_argument("--no-flame", dest="flame", action="store_false",
                        help="skip the py-spy flame graph")
    parser.add_argument("--no-statements", dest="statements", action="store_false",
                        help="run the wheel's PostgreSQL even when Debian's is installed")
    parser.add_argument("--artefacts", default=str(HERE.parent / "var" / "bench"),
                        help="folder for the flame graphs and the JSON of figures")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder and logs")
    parser.add_argument("--fast-pg", action="store_true", help="embedded PostgreSQL without fsync")
    args = parser.parse_args()
    for name in args.configs.split(","):
        if name not in ROLES:
            parser.error(f"unknown configuration {name!r}: one of {', '.join(ROLES)}")
    _loop_run(Bench(args).main())


if __name__ == "__main__":
    main()
