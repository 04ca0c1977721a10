"""What a status change causes besides the message row, in one function called in the
transaction that moved the messages: callbacks, money, SMPP receipts (handed over after
the commit to a client bound here), the cascade (``gateway/report/README.md``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

import asyncpg

from billing.charging import refund, settle_delivered
from gateway.report import callbacks, fallback
from gateway.report.receipts_out import OutboxRow, add_to_outbox, claim_in_outbox, receipt_row
from gateway.store.messages import Message, Status


class LocalOutbox(Protocol):
    """This process's SMPP outbox dispatcher (:class:`gateway.report.smpp_outbox.OutboxDispatcher`)."""

    worker_id: str
    lease: float

    def takes(self, account_id: int) -> bool:
        """A receiver of the account is bound here and can take a ``deliver_sm`` now."""
        ...

    def hand_over(self, rows: list[tuple[int, OutboxRow]]) -> None:
        """Send committed rows (id, row) that were written claimed by this dispatcher."""
        ...

    def notify(self, account_id: int | None = None) -> None:
        """Rows for the account were written: look at the outbox now."""
        ...


# Delivered for billing: a Viber provider may report "seen" without "delivered" first (a
# charge already settled by DELIVERED is left alone: only open charges are touched).
_REACHED = (Status.DELIVERED, Status.SEEN)


async def status_changed(
    conn: asyncpg.Connection, messages: Sequence[Message], *,
    outbox: LocalOutbox | None = None, after_commit: list[Callable[[], None]] | None = None,
) -> None:
    """The effects of ``messages``' new statuses, in the caller's transaction, in this order.

    ``outbox``: this process's SMPP outbox dispatcher, if it runs one;
    ``after_commit``: steps the caller runs once its transaction committed (and
    never after a rollback), e.g. a :class:`~gateway.store.commit.GroupCommit`'s.
    One statement per kind of effect, whatever the number of messages.
    """
    if not messages:
        return
    # 1. The HTTP callback of each change, queued in the order of the changes.
    await callbacks.enqueue_dlrs(conn, messages)

    # 2. Money. FAILED: no vendor took it, every level gets back what it paid.
    #    DELIVERED / SEEN keep the charge; UNDELIVERED gives back the by-delivered part.
    failed = [m.charge_ref for m in messages if m.charge_ref and m.status == Status.FAILED]
    reached = [m.charge_ref for m in messages if m.charge_ref and m.status in _REACHED]
    missed = [m.charge_ref for m in messages if m.charge_ref and m.status == Status.UNDELIVERED]
    if failed:
        await refund(conn, failed)
    if reached:
        await settle_delivered(conn, reached, True)
    if missed:
        await settle_delivered(conn, missed, False)

    # 3. The receipt an SMPP client asked for (a deliver_sm row in smpp_outbox). A client
    #    bound to this process gets its rows written claimed by our dispatcher and handed to
    #    it once committed, without the dispatcher's claim; the others wait for a poll.
    rows = [row for row in map(receipt_row, messages) if row is not None]
    if rows and outbox is not None and after_commit is not None:
        here = {a for a in {r.smpp_account_id for r in rows} if outbox.takes(a)}
        mine = [r for r in rows if r.smpp_account_id in here]
        if mine:
            rows = [r for r in rows if r.smpp_account_id not in here]
            ids = await claim_in_outbox(conn, mine, outbox.worker_id, outbox.lease)
            after_commit.append(partial(outbox.hand_over, list(zip(ids, mine, strict=True))))
    if rows:
        await add_to_outbox(conn, rows)
        if outbox is not None:
            for account_id in {r.smpp_account_id for r in rows}:
                outbox.notify(account_id)

    # 4. Viber→SMS cascades: due now when the Viber message ended undelivered or failed,
    #    off the list once it was delivered or seen.
    await fallback.mark_due(conn, messages)
