"""Contacts at a million rows: imports, the first filtered page, streamed exports.

Starts an embedded PostgreSQL (fsync off, as in tests) in a temporary folder
unless ``BENCH_DATABASE_URL`` names a server, migrates a fresh database and
makes one partner (user's country GB) with two custom fields (city: text,
tier: number) and five groups. Then, each figure printed as it is measured:

1. **CSV import**: ``--rows`` rows (phone + first name, last name, date of
   birth, city, tier), 2% bad rows (bad phone or date), 10% numbers already
   present (made beforehand), imported into one group in mode add-and-update,
   end to end: the draft stored, queued, taken by the import runner, parsed
   and merged by its worker process. Peak memory (RSS) of the worker.
2. **XLSX import**: ``--xlsx-rows`` rows the same way.
3. **First filtered page**: with the partner at a million contacts and more,
   the Contacts table's first page filtered by group + a custom field + a
   phone prefix (and each filter alone), median and worst of ``--repeat`` runs.
4. **Exports**: every contact streamed to CSV and to XLSX, with the time and
   the growth of this process's peak RSS.

Each import prints the CPU seconds of the import worker and of PostgreSQL beside
its clock time, and the load average: on a shared machine the CPU is the figure
that compares.

Usage: ``.venv/bin/python -m bench.contacts_import [--rows 1000000] [--xlsx-rows 100000]
[--repeat 15] [--skip-xlsx-export] [--skip-exports] [--explain]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import psutil

from contacts import contacts, export, fields, groups, imports
from contacts.contacts import ContactFilter
from contacts.runner import ImportRunner
from gateway.base.app import open_pool
from gateway.base.embedded import EmbeddedPostgres
from gateway.base.migrate import migrate
from gateway.base.seed import seed_system_owner

CITIES = ["London", "Leeds", "Bristol", "Glasgow", "Cardiff", "York", "Bath", "Derby", "Hull", "Perth"]
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman"]


def number(n: int) -> str:
    """The n-th valid UK mobile number, E.164 digits."""
    return f"4478{n:08d}"


def written(digits: str, rng: random.Random) -> str:
    """A number as people write it: international, with spaces, or national."""
    form = rng.random()
    if form < 0.5:
        return "+" + digits
    if form < 0.8:
        return "0" + digits[2:]  # national, trunk prefix 0: needs the user's country
    return f"+44 {digits[2:6]} {digits[6:]}"


def make_rows(total: int, present: list[int], rng: random.Random, first_new: int):
    """(cells, is_bad) rows: 2% bad, the ``present`` numbers mixed in."""
    existing = iter(present)
    fresh = first_new
    for i in range(total):
        roll = rng.random()
        if i % 10 == 0:
            digits = number(next(existing))
        else:
            digits = number(fresh)
            fresh += 1
        birth = date(1950, 1, 1) + timedelta(days=rng.randrange(20000))
        row = [written(digits, rng), rng.choice(FIRST), rng.choice(LAST), birth.isoformat(),
               rng.choice(CITIES), str(rng.randrange(1, 6))]
        if roll < 0.01:
            row[0] = "07" + "x" * 9  # bad phone
        elif roll < 0.02:
            row[3] = "31/31/1999"  # bad date
        yield row


def write_csv(path: Path, rows) -> None:
    import csv

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Phone", "First name", "Last name", "Date of birth", "City", "Tier"])
        writer.writerows(rows)


def write_xlsx(path: Path, rows) -> None:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Contacts")
    sheet.append(["Phone", "First name", "Last name", "Date of birth", "City", "Tier"])
    for row in rows:
        sheet.append([*row[:5], int(row[5])])
    book.save(path)


async def setup(conn: asyncpg.Connection) -> tuple[int, int, list[int], int]:
    owner, portal = await conn.fetchrow("SELECT id, portal_id FROM partners WHERE kind = 'owner'")
    partner_id = await conn.fetchval(
        "INSERT INTO partners (parent_id, kind, name, portal_id) VALUES ($1, 'client', 'Bench', $2) RETURNING id",
        owner, portal)
    user_id = await conn.fetchval(
        """INSERT INTO users (partner_id, portal_id, email, password_hash, role, status, country)
           VALUES ($1, $2, 'bench@herald.test', 'x', 'user', 'active', 'GB') RETURNING id""",
        partner_id, portal)
    await fields.create_field(conn, partner_id, name="City", data_type="text")
    await fields.create_field(conn, partner_id, name="Tier", data_type="number")
    made = [await groups.create(conn, partner_id, name=f"Segment {n}") for n in range(1, 6)]
    target = await groups.create(conn, partner_id, name="Imported")
    return partner_id, user_id, [g.id for g in made], target.id


async def prefill(conn: asyncpg.Connection, partner_id: int, group_ids: list[int], count: int,
                  rng: random.Random) -> None:
    """``count`` contacts by COPY (numbers 0..count-1), spread over the groups."""
    records = []
    for n in range(count):
        gids = rng.sample(group_ids, rng.choice((1, 1, 2)))
        records.append((partner_id, number(n), gids, rng.choice(FIRST), rng.choice(LAST),
                        f'{{"city": "{rng.choice(CITIES)}", "tier": {rng.randrange(1, 6)}}}'))
    await conn.execute("CREATE TEMP TABLE prefill (partner_id bigint, phone text, group_ids bigint[], "
                       "first_name text, last_name text, fields text)")
    await conn.copy_records_to_table("prefill", records=records)
    await conn.execute("""INSERT INTO contacts (partner_id, phone, group_ids, first_name, last_name, fields)
                          SELECT partner_id, phone, group_ids, first_name, last_name, fields::jsonb FROM prefill""")
    await conn.execute("DROP TABLE prefill")
    await conn.execute("""UPDATE contact_groups g SET member_count = (
                              SELECT count(*) FROM contacts c WHERE c.partner_id = g.partner_id
                                                                AND c.group_ids @> ARRAY[g.id])
                          WHERE g.partner_id = $1""", partner_id)
    await conn.execute("VACUUM ANALYZE contacts")


def pg_cpu() -> float:
    """CPU seconds used so far by the embedded PostgreSQL's processes (0 when it is not ours)."""
    if PG_PID is None:
        return 0.0
    try:
        root = psutil.Process(PG_PID)
        own = root.cpu_times()
        total = own.children_user + own.children_system  # backends that have ended already
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                continue
        return total
    except psutil.NoSuchProcess:
        return 0.0


PG_PID: int | None = None


async def import_file(pool: asyncpg.Pool, url: str, partner_id: int, user_id: int, group_id: int,
                      path: Path, kind: str) -> tuple[imports.Import, float, float]:
    """Import a file end to end; returns the job, the seconds it took and the worker's peak RSS (MB)."""
    started = time.perf_counter()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    pg_before = pg_cpu()
    content = await asyncio.to_thread(path.read_bytes)
    async with pool.acquire() as conn:
        all_fields = await fields.list_fields(conn, partner_id)
        preview = await asyncio.to_thread(__import__("contacts.files").files.preview, path, kind)
        draft = await imports.create_draft(conn, partner_id, user_id, file_name=path.name, kind=kind,
                                           content=content, preview=preview, all_fields=all_fields,
                                           country="GB")
        await imports.save_mapping(conn, partner_id, draft.id, header_row=True, mapping=draft.mapping,
                                   mode="add_update", stop_mode="exclude", stop_senders=[], country="GB")
        await imports.queue(conn, partner_id, draft.id, group_id)
    del content
    runner = ImportRunner(pool, url)
    await runner.run_once()
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = after.ru_maxrss / 1024
    worker_cpu = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    print(f"  CPU: import worker {worker_cpu:.1f} s, PostgreSQL {pg_cpu() - pg_before:.1f} s "
          f"(of {elapsed:.1f} s on the clock); load average {os.getloadavg()[0]:.1f}", flush=True)
    async with pool.acquire() as conn:
        job = await imports.get(conn, partner_id, draft.id)
        reasons = await conn.fetch(
            """SELECT reason, count(*) AS n FROM contact_import_rejects WHERE import_id = $1
               GROUP BY reason ORDER BY reason""", draft.id)
    print("  rejected by reason: " + ", ".join(f"{r['reason']} {r['n']:,}" for r in reasons), flush=True)
    return job, elapsed, rss


async def first_pages(pool: asyncpg.Pool, partner_id: int, group_id: int, repeat: int,
                      explain: bool = False) -> None:
    cases = {
        "group + city + phone prefix": ContactFilter(group_ids=(group_id,), custom={"city": "leeds"},
                                                     phone="447800"),
        "group + city + phone prefix (rare)": ContactFilter(group_ids=(group_id,), custom={"city": "leeds"},
                                                            phone="44780001"),
        "group only": ContactFilter(group_ids=(group_id,)),
        "city only": ContactFilter(custom={"city": "york"}),
        "phone prefix only": ContactFilter(phone="4478021"),
        "last name contains": ContactFilter(last_name="hopp"),
        "no filter": ContactFilter(),
    }
    async with pool.acquire() as conn:
        if explain:
            clause, args = contacts.where(partner_id, cases["group + city + phone prefix"])
            plan = await conn.fetch(f"EXPLAIN ANALYZE SELECT id FROM contacts c WHERE {clause} "
                                    "ORDER BY c.id DESC LIMIT 26", *args)
            print("\n".join("    " + r[0] for r in plan))
        for label, flt in cases.items():
            times = []
            found = 0
            for _ in range(repeat):
                t0 = time.perf_counter()
                rows = await contacts.list_page(conn, partner_id, flt, limit=26)
                times.append((time.perf_counter() - t0) * 1000)
                found = len(rows)
            print(f"  first page, {label}: median {statistics.median(times):.1f} ms, "
                  f"worst {max(times):.1f} ms ({found} rows)", flush=True)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def exports(pool: asyncpg.Pool, partner_id: int, folder: Path, xlsx: bool) -> None:
    async with pool.acquire() as conn:
        all_fields = await fields.list_fields(conn, partner_id)
        names = {g.id: g.name for g in await groups.all_groups(conn, partner_id)}
        header = export.contact_header(all_fields, str)

        async def rows():
            async for contact in contacts.stream(conn, partner_id, ContactFilter()):
                yield export.contact_cells(contact, all_fields, names, {})

        before = _rss_mb()
        t0 = time.perf_counter()
        size = 0
        handle = (folder / "export.csv").open("wb")
        try:
            async for chunk in export.csv_chunks(header, rows()):
                handle.write(chunk)
                size += len(chunk)
        finally:
            handle.close()
        print(f"  export CSV: {time.perf_counter() - t0:.1f} s, {size / 1e6:.0f} MB, "
              f"peak RSS grew {_rss_mb() - before:.0f} MB", flush=True)
        if xlsx:
            before = _rss_mb()
            t0 = time.perf_counter()
            count = await export.write_xlsx(folder / "export.xlsx", header, rows())
            print(f"  export XLSX: {count:,} rows in {time.perf_counter() - t0:.1f} s, "
                  f"{(folder / 'export.xlsx').stat().st_size / 1e6:.0f} MB, "
                  f"peak RSS grew {_rss_mb() - before:.0f} MB", flush=True)


async def run(url: str, args: argparse.Namespace, folder: Path) -> None:
    rng = random.Random(15)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start "
          "(other work on the machine shows here)", flush=True)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await seed_system_owner(conn, admin_email="admin@bench.test", admin_password="bench-password")
    pool = await open_pool(url, 4)
    try:
        async with pool.acquire() as c:
            partner_id, user_id, segment_ids, target = await setup(c)
        present_count = args.rows // 10
        extra = max(0, 1_000_000 - args.rows * 88 // 100 - present_count)  # a million in the end
        t0 = time.perf_counter()
        await prefill(conn, partner_id, segment_ids, present_count + extra, rng)
        print(f"prefilled {present_count + extra:,} contacts in {time.perf_counter() - t0:.1f} s", flush=True)

        csv_path = folder / "contacts.csv"
        present = rng.sample(range(present_count + extra), present_count)
        write_csv(csv_path, make_rows(args.rows, present, rng, first_new=2_000_000))
        print(f"CSV of {args.rows:,} rows: {csv_path.stat().st_size / 1e6:.1f} MB", flush=True)
        job, seconds, rss = await import_file(pool, url, partner_id, user_id, target, csv_path, "csv")
        print(f"CSV import, add and update: {seconds:.1f} s end to end, status {job.status} "
              f"(added {job.added:,}, updated {job.updated:,}, skipped {job.skipped:,}, "
              f"rejected {job.rejected:,}); worker peak RSS {rss:.0f} MB {job.error}", flush=True)

        xlsx_path = folder / "contacts.xlsx"
        xlsx_present = rng.sample(range(present_count), args.xlsx_rows // 10)
        write_xlsx(xlsx_path, make_rows(args.xlsx_rows, xlsx_present, rng, first_new=5_000_000))
        print(f"XLSX of {args.xlsx_rows:,} rows: {xlsx_path.stat().st_size / 1e6:.1f} MB", flush=True)
        job, seconds, rss = await import_file(pool, url, partner_id, user_id, target, xlsx_path, "xlsx")
        print(f"XLSX import, add and update: {seconds:.1f} s end to end, status {job.status} "
              f"(added {job.added:,}, updated {job.updated:,}, skipped {job.skipped:,}, "
              f"rejected {job.rejected:,}); worker peak RSS {rss:.0f} MB {job.error}", flush=True)

        await conn.execute("VACUUM ANALYZE contacts")
        total = await conn.fetchval("SELECT count(*) FROM contacts WHERE partner_id = $1", partner_id)
        print(f"the partner has {total:,} contacts", flush=True)
        await first_pages(pool, partner_id, target, args.repeat, args.explain)
        if not args.skip_exports:
            await exports(pool, partner_id, folder, not args.skip_xlsx_export)
    finally:
        await pool.close()
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--skip-xlsx-export", action="store_true")
    parser.add_argument("--skip-exports", action="store_true")
    parser.add_argument("--explain", action="store_true", help="print the plan of the first filtered page")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="herald-bench-contacts-"))
    url = os.environ.get("BENCH_DATABASE_URL")
    server = None
    if not url:
        server = EmbeddedPostgres(folder / "pg", fast=True)
        base = server.start()
        global PG_PID
        PG_PID = server.pid()
        url = base.rsplit("/", 1)[0] + "/bench"

        async def create() -> None:
            admin = await asyncpg.connect(base)
            await admin.execute("CREATE DATABASE bench")
            await admin.close()

        asyncio.run(create())
    try:
        asyncio.run(run(url, args, folder))
    finally:
        if server:
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
