"""Receipts and MO to SMPP clients: the dispatcher that sends ``smpp_outbox`` rows to the
receivers bound to this process, deleting a row only once answered OK."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from gateway.base.tasks import PollLoop
from gateway.report.receipts_out import OutboxRow
from gateway.store import queue
from smpp.pdu import (
    DeliverSm,
    Tag,
)
from smpp.results import Outcome
from smpp.server import (
    SmppServer,
)

log = logging.getLogger("herald.smpp")


class OutboxDispatcher(PollLoop):
    """Pushes ``smpp_outbox`` rows to bound receivers of their accounts."""

    name = "smpp-outbox"

    def __init__(self, pool: asyncpg.Pool, server: SmppServer, *, batch: int = 200,
                 poll_interval: float = 0.25, lease: float = 30.0, retry_after: float = 2.0) -> None:
        super().__init__(batch=batch, poll_interval=poll_interval)
        self.pool = pool
        self.server = server
        self.lease = lease
        self.retry_after = retry_after
        self.worker_id = queue.new_worker_id()
        self._handed: list[tuple[int, OutboxRow]] = []  # committed, claimed by us, not sent yet
        self._poll_now = True   # notified of unclaimed rows, or a poll is due
        self._next_poll = 0.0

    def notify(self, _account_id: int | None = None) -> None:
        self._poll_now = True
        super().notify()

    def takes(self, account_id: int) -> bool:
        """A receiver of the account is bound here (rows for it may be handed over)."""
        return not self._stopping and any(s.can_deliver for s in self.server.sessions(account_id))

    def hand_over(self, rows: list[tuple[int, OutboxRow]]) -> None:
        """Send rows already committed claimed by this dispatcher (:mod:`gateway.report.status`).

        They join the next batch of the dispatcher's loop: rows handed over while a
        batch is on the wire go out together, and are deleted together.
        """
        self._handed += rows
        self._wake.set()

    def has_more(self) -> bool:
        return bool(self._handed)

    async def stop(self) -> None:
        await super().stop()
        if self._handed:
            # The server is closed: these fail to send and are freed for any process.
            rows, self._handed = self._handed, []
            await self._settle(rows)

    def _receivers(self) -> list[int]:
        keys = {s.account_key for s in self.server.connections if s.can_deliver}
        return [k for k in keys if isinstance(k, int)]

    async def run_once(self) -> int:
        """Send one batch: rows handed over, then (when notified or every
        ``poll_interval``) rows claimed from the table; the number of rows."""
        handed, self._handed = self._handed[:self.batch], self._handed[self.batch:]
        loop = asyncio.get_running_loop()
        polled: list[tuple[int, OutboxRow]] = []
        room = self.batch - len(handed)
        if room > 0 and (not handed or self._poll_now or loop.time() >= self._next_poll):
            self._poll_now = False
            self._next_poll = loop.time() + self.poll_interval
            polled = await self._claim(room)
        rows = handed + polled
        if rows:
            await self._settle(rows)
        return len(rows)

    async def _claim(self, limit: int) -> list[tuple[int, OutboxRow]]:
        accounts = self._receivers()
        if not accounts:
            return []
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                """WITH picked AS (
                       SELECT id FROM smpp_outbox
                       WHERE smpp_account_id = ANY($1::bigint[]) AND next_attempt_at <= now()
                       ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                   UPDATE smpp_outbox o SET claimed_by = $3, attempts = o.attempts + 1,
                          next_attempt_at = now() + make_interval(secs => $4)
                   FROM picked WHERE o.id = picked.id
                   RETURNING o.id, o.smpp_account_id, o.kind, o.source_addr, o.destination_addr,
                             o.esm_class, o.data_coding, o.short_message, o.receipted_message_id,
                             o.message_state""",
                accounts, limit, self.worker_id, float(self.lease),
            )
        return [(r[0], OutboxRow(*r[1:])) for r in rows]

    async def _settle(self, rows: list[tuple[int, OutboxRow]]) -> None:
        """Send claimed rows; delete the answered ones, free the others for a later try."""
        # Written one after the other (each waits for a window slot only when none is
        # free), answers awaited together: no task per row.
        futures = []
        for _, row in rows:
            try:
                futures.append(await self.server.start_deliver(
                    row.smpp_account_id, deliver_pdu(row), window_timeout=5.0))
            except Exception:
                log.exception("event=smpp_outbox_send_failed account=%s", row.smpp_account_id)
                futures.append(None)
        await asyncio.gather(*(f for f in futures if f is not None))
        ok = [f is not None and f.result().outcome is Outcome.ACCEPTED for f in futures]
        done = [i for (i, _), sent in zip(rows, ok, strict=True) if sent]
        again = [i for (i, _), sent in zip(rows, ok, strict=True) if not sent]
        async with self.pool.acquire() as conn:
            if done:
                await conn.execute("DELETE FROM smpp_outbox WHERE id = ANY($1::bigint[]) AND claimed_by = $2",
                                   done, self.worker_id)
            if again:
                await conn.execute(
                    """UPDATE smpp_outbox SET claimed_by = NULL,
                           next_attempt_at = now() + make_interval(secs => $2)
                       WHERE id = ANY($1::bigint[]) AND claimed_by = $3""",
                    again, float(self.retry_after), self.worker_id)


def deliver_pdu(row: OutboxRow) -> DeliverSm:
    """The ``deliver_sm`` an outbox row stands for. Pure."""
    data = bytes(row.short_message)
    pdu = DeliverSm(source_addr=row.source_addr, destination_addr=row.destination_addr,
                    esm_class=row.esm_class, data_coding=row.data_coding)
    if len(data) > 254:
        pdu.tlvs[Tag.MESSAGE_PAYLOAD] = data  # SMPP 3.4 §5.3.2.32: beyond short_message's limit
    else:
        pdu.short_message = data
    if row.receipted_message_id:
        pdu.tlvs[Tag.RECEIPTED_MESSAGE_ID] = row.receipted_message_id
    if row.message_state is not None:
        pdu.tlvs[Tag.MESSAGE_STATE] = row.message_state
    return pdu


