"""Send queue and receipts: how fast stored messages go out and receipts come back.

1. N messages are stored and queued (group commit), then SendWorkers drain the
   queue with a transport that accepts at once: each message is claimed,
   marked SENT with its vendor id, completed, and its callback row written.
2. Receipts come back: half applied with ``record_receipt`` (one transaction
   each, C concurrent tasks), half through ``ReceiptWriter`` from 200
   concurrent receivers (grouped transactions). DELIVERED + a callback row each.

Prints messages/s for both. The transport is instant, so the figures are
Herald's own cost (PostgreSQL + Python), the ceiling a real bind works under.

Usage: ``.venv/bin/python bench/pipeline_delivery.py [--messages 20000] [--workers 2]``;
``DATABASE_URL`` as in ``bench/pipeline_commit.py`` (embedded server with fsync on otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.pipeline_commit import _msg, _prepare, _store
from gateway.base.app import open_pool
from gateway.base.embedded import EmbeddedPostgres
from gateway.send.delivery import Accepted, ReceiptWriter, SendWorker, record_receipt
from gateway.store.commit import GroupCommit
from gateway.store.messages import Event, ReceiptUpdate, Status


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
        pool = await open_pool(db, 16)
        pid = await pool.fetchval("SELECT id FROM partners WHERE kind = 'owner'")
        print(f"fsync={await pool.fetchval('SHOW fsync')}; {args.messages} messages,"
              f" {args.workers} send workers, {args.concurrency} receipt tasks", flush=True)

        writer = GroupCommit(pool, _store)
        await writer.start()
        batch = [_msg(pid, i, route=(1,)) for i in range(args.messages)]
        for m in batch:
            m.status, m.callback_url = Status.BILLED, "http://127.0.0.1:9/cb"
        for start in range(0, len(batch), 500):
            await writer.submit(batch[start:start + 500])
        await writer.stop()

        async def send(claim):
            return Accepted(format(claim.message.id.int & 0xFFFFFFFFFFFF, "X"))

        workers = [SendWorker(pool, send, vendor_id=1, batch=args.batch, poll_interval=0.01)
                   for _ in range(args.workers)]
        began = time.monotonic()
        for w in workers:
            await w.start()
        while True:
            if not await pool.fetchval("SELECT count(*) FROM send_queue"):
                break
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - began
        for w in workers:
            await w.stop()
        sent = await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'SENT'")
        print(f"send queue drained   {sent / elapsed:>8.0f} msg/s  ({sent} SENT in {elapsed:.1f} s)",
              flush=True)

        ids = [r["vendor_message_id"] for r in await pool.fetch(
            "SELECT vendor_message_id FROM messages WHERE vendor_id = 1")]
        queue_ids = iter(ids)

        async def receipts() -> int:
            done = 0
            async with pool.acquire() as conn:
                for vid in queue_ids:
                    if await record_receipt(conn, 1, str(int(vid, 16)), Event.DELIVERED):
                        done += 1
            return done

        half = len(ids) // 2
        queue_ids = iter(ids[:half])
        began = time.monotonic()
        counts = await asyncio.gather(*(receipts() for _ in range(args.concurrency)))
        elapsed = time.monotonic() - began
        print(f"receipts, one tx each {sum(counts) / elapsed:>7.0f} msg/s  ({sum(counts)} DELIVERED,"
              f" {args.concurrency} tasks)", flush=True)

        writer = ReceiptWriter(pool)
        await writer.start()
        rest = iter(ids[half:])

        async def bind() -> int:
            # A bind answering each deliver_sm only after its receipt is committed.
            done = 0
            for vid in rest:
                if await writer.record(ReceiptUpdate(1, str(int(vid, 16)), Event.DELIVERED)):
                    done += 1
            return done

        began = time.monotonic()
        counts = await asyncio.gather(*(bind() for _ in range(args.binds)))
        elapsed = time.monotonic() - began
        await writer.stop()
        print(f"receipts, ReceiptWriter {sum(counts) / elapsed:>5.0f} msg/s  ({sum(counts)} DELIVERED,"
              f" {args.binds} concurrent receivers, {writer.stats.batches} transactions)",
              flush=True)
        callbacks = await pool.fetchval("SELECT count(*) FROM callback_outbox")
        print(f"check: {callbacks} callback rows (= 2 x {args.messages}:"
              f" {callbacks == 2 * args.messages}); receipt ids quoted in decimal, sent in hex")
        await pool.close()
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--binds", type=int, default=200)
    parser.add_argument("--no-fsync", action="store_true")
    asyncio.run(main(parser.parse_args()))
