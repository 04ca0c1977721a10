"""The one write of the message path: charge a batch of accepted messages and store it.

:class:`MessageWriter` writes the pipeline's messages a batch at a time;
:meth:`MessageWriter.write` is the whole story of one batch (price unlocked;
store, record and debit in one transaction; once more under the lock if a payer
moved). Why it is written so: ``gateway/accept/README.md``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from billing.charging import Charger, ChargeResult, Priced
from billing.errors import StaleSnapshot
from billing.pricing import ChargeRequest
from gateway.store import queue
from gateway.store.commit import GroupCommit
from gateway.store.messages import NewMessage, Status

log = logging.getLogger("herald.writer")

# One per message: stored and charged, or billing's refusal (ok=False, code, reason).
Outcome = NewMessage | ChargeResult


class MessageWriter(GroupCommit[NewMessage, Outcome]):
    """Charges and stores the messages producers hand to :meth:`persist`, in batches."""

    def __init__(self, pool: asyncpg.Pool, charger: Charger, *, max_delay: float = 0.003,
                 max_rows: int = 1000, flushers: int = 2, max_pending_rows: int = 20000) -> None:
        super().__init__(pool, self.write, max_delay=max_delay, max_rows=max_rows,
                         flushers=flushers, max_pending_rows=max_pending_rows,
                         name="message-writer", own_transaction=True)
        self.charger = charger

    async def persist(self, msgs: Sequence[NewMessage]) -> list[Outcome]:
        """Write ``msgs`` in the next batch; one outcome per message, once committed."""
        return await self.submit(msgs)

    async def write(self, conn: asyncpg.Connection, msgs: Sequence[NewMessage]) -> list[Outcome]:
        """Charge and store one batch on ``conn`` (outside a transaction: it opens its own)."""
        # The ledger's source is the message's origin (api, smpp, campaign); its ref, the id.
        requests = [ChargeRequest(m.partner_id, m.user_id, m.channel, m.mccmnc or "", m.parts,
                                  m.traffic_type, m.origin, str(m.id), m.label) for m in msgs]
        # 1. Price without locking the payers: billing reads their balances, plans and
        #    packs and prices every message in memory. Nothing is written yet.
        priced = await self.charger.price(conn, requests)
        try:
            # 2. In one transaction: the messages and their queue rows, then billing's
            #    ledger and charge rows and the guarded debit, last, so that the payers'
            #    row locks are held from there to the commit only.
            async with conn.transaction():
                return await _store(conn, msgs, priced)
        except StaleSnapshot as exc:
            # 3. A payer moved since the read (funds spent by a concurrent batch, a pack
            #    used up, a partner blocked): nothing of 2 stayed. Once more, priced under
            #    the payers' lock this time, so the debit cannot go stale again.
            self.stats.retried_batches += 1
            log.info("event=batch_charged_again rows=%d reason=%r", len(msgs), str(exc))
            async with conn.transaction():
                priced = await self.charger.price(conn, requests, lock=True)
                return await _store(conn, msgs, priced)


async def _store(conn: asyncpg.Connection, msgs: Sequence[NewMessage], priced: Priced
                 ) -> list[Outcome]:
    """Store and queue the messages billing accepted, then record their charges."""
    now = datetime.now(UTC)
    outcomes: list[Outcome] = []
    accepted: list[NewMessage] = []
    for msg, result in zip(msgs, priced.results(), strict=True):
        if result.ok:
            msg.status = Status.BILLED
            msg.cost = result.amount
            msg.currency = result.currency or None
            msg.charge_ref = result.ref
            msg.billed_at = now
            accepted.append(msg)
            outcomes.append(msg)
        else:
            outcomes.append(result)
    await queue.insert_and_enqueue(conn, accepted)
    await priced.record(conn)
    return outcomes
