"""``python -m contacts.worker IMPORT_ID``: run one claimed import (started by the runner).

The database comes from ``HERALD_IMPORT_DATABASE_URL``. Exit status 0 when the
import ended (done, or failed with its reason recorded), 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys

from contacts import imports

log = logging.getLogger("herald.contacts.worker")


async def _renew(pool, import_id: int) -> None:
    # the merge writes no progress for a while: keep the lease meanwhile
    while True:
        await asyncio.sleep(imports.LEASE_SECONDS / 4)
        with contextlib.suppress(Exception):
            await imports.renew(pool, import_id)


async def main(import_id: int, database_url: str) -> int:
    from gateway.base.app import open_pool

    pool = await open_pool(database_url, 3)
    renewer = asyncio.create_task(_renew(pool, import_id))
    try:
        job = await imports.run_import(pool, import_id)
        log.info("event=contact_import_ended id=%s status=%s added=%s updated=%s skipped=%s rejected=%s",
                 job.id, job.status, job.added, job.updated, job.skipped, job.rejected)
        return 0
    except Exception:
        log.exception("event=contact_import_error id=%s", import_id)
        with contextlib.suppress(Exception):
            await imports.fail(pool, import_id, "The import could not be finished.")
        return 0
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
        await pool.close()


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("HERALD_IMPORT_LOG_LEVEL", "INFO").upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m contacts.worker IMPORT_ID")
    sys.exit(asyncio.run(main(int(sys.argv[1]), os.environ["HERALD_IMPORT_DATABASE_URL"])))
