"""What a status change owes outside the message row: billing, and the SMPP client's receipt.

:func:`on_status_change` is the ``on_change`` hook of :class:`gateway.send.delivery.SendWorker`
and :class:`gateway.send.delivery.ReceiptWriter`: it runs inside the transaction that
moved the message (beside the HTTP callback row that :mod:`gateway.send.delivery`
writes itself), so the money, the receipt owed and the status commit together.

* FAILED (no vendor took it): :func:`billing.charging.refund` gives every level
  back what it paid.
* DELIVERED / UNDELIVERED: :func:`billing.charging.settle_delivered` keeps or
  returns the by-delivered part of the charge.
* A message that came over SMPP and asked for a receipt (``registered_delivery``,
  SMPP 3.4 §5.2.17: bit 0 always, bit 1 on failure only) gets a row in
  ``smpp_outbox``: a ``deliver_sm`` with the Appendix B receipt text and the
  ``receipted_message_id`` / ``message_state`` TLVs, which
  :class:`gateway.report.smpp_outbox.OutboxDispatcher` pushes to the client when one of
  its receivers is bound — now or after it comes back.

Public API::

    await on_status_change(conn, message, notify=None)
    receipt_row(message) -> OutboxRow | None      # pure: the deliver_sm owed, if any
    add_to_outbox(conn, rows) -> None
    claim_in_outbox(conn, rows, worker_id, lease) -> list[int]   # rows written already claimed
    await on_status_changes(conn, messages, notify=None, outbox=None, after_commit=None)
    status_hook(notify=None) -> on_change hook
    status_many_hook(notify=None, outbox=None) -> on_change_many

Receipts for a client bound in this process skip the outbox's claim: with an
``outbox`` (:class:`LocalOutbox`, the process's dispatcher) and an ``after_commit``
list, their rows are written already claimed by that dispatcher (lease included)
and handed to it once the transaction committed. The list is the group commit's
(:class:`gateway.store.commit.GroupCommit` ``with_after_commit``): the engine runs what
is appended to it after that transaction's commit, never after a rollback.
:class:`gateway.send.delivery.ReceiptWriter` hands it to its ``on_change_many`` hook
when the hook has ``takes_after_commit`` (as :func:`status_many_hook`'s has); the
send workers do not, so their receipts go through the outbox's claim. A crash
before the handed rows are answered leaves them claimed until the lease ends, as
a crash during any dispatch does; then any process sends them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Protocol

import asyncpg

from billing.charging import refund, settle_delivered
from gateway.store.messages import Message, Status
from smpp.pdu import EsmClass, MessageState, RegisteredDelivery
from smpp.receipts import build_receipt

_STATE = {
    Status.DELIVERED: MessageState.DELIVERED,
    Status.UNDELIVERED: MessageState.UNDELIVERABLE,
    Status.FAILED: MessageState.REJECTED,
    Status.SEEN: MessageState.DELIVERED,
}


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One ``deliver_sm`` owed to an SMPP account."""

    smpp_account_id: int
    kind: str                      # 'receipt' | 'mo'
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None = None
    message_state: int | None = None


def receipt_state(message: Message) -> MessageState:
    """The final ``message_state`` of a message (SMPP 3.4 §5.2.28): one that ended
    undelivered once its validity period was over is EXPIRED."""
    if (message.status == Status.UNDELIVERED and message.valid_until is not None
            and message.done_at is not None and message.done_at >= message.valid_until):
        return MessageState.EXPIRED
    return _STATE[message.status]


def receipt_row(message: Message) -> OutboxRow | None:
    """The receipt an SMPP client asked for on this status, or None."""
    if message.smpp_account_id is None or message.status not in _STATE:
        return None
    wanted = message.registered_delivery & RegisteredDelivery.RECEIPT_MASK
    if wanted == RegisteredDelivery.NO_RECEIPT:
        return None
    if wanted == RegisteredDelivery.RECEIPT_ON_FAILURE and message.status in (
        Status.DELIVERED, Status.SEEN,
    ):
        return None
    state = receipt_state(message)
    done = message.done_at or datetime.now(UTC)
    message_id = str(message.id)
    text = build_receipt(
        message_id, state, submit_date=message.created_at.astimezone(UTC),
        done_date=done.astimezone(UTC), submitted=1,
        error=0 if state == MessageState.DELIVERED else (message.error_code or "001")[-3:],
        text="" if message.encoding == "binary" else message.text,
    )
    return OutboxRow(
        message.smpp_account_id, "receipt", message.destination, message.sender,
        EsmClass.TYPE_DELIVERY_RECEIPT, 0, text.encode("utf-8"), message_id, int(state),
    )


_OUTBOX_COLUMNS = ("smpp_account_id", "kind", "source_addr", "destination_addr", "esm_class",
                   "data_coding", "short_message", "receipted_message_id", "message_state")


async def add_to_outbox(conn: asyncpg.Connection, rows: Sequence[OutboxRow]) -> None:
    """Write ``deliver_sm`` rows owed to SMPP accounts (one COPY; the caller's transaction)."""
    if not rows:
        return
    await conn.copy_records_to_table(
        "smpp_outbox", columns=_OUTBOX_COLUMNS,
        records=[(r.smpp_account_id, r.kind, r.source_addr, r.destination_addr, r.esm_class,
                  r.data_coding, r.short_message, r.receipted_message_id, r.message_state)
                 for r in rows],
    )


_OUTBOX_CLAIMED = (*_OUTBOX_COLUMNS, "id", "attempts", "claimed_by", "next_attempt_at")


class LocalOutbox(Protocol):
    """The dispatcher of this process, as :func:`on_status_changes` sees it."""

    worker_id: str
    lease: float

    def takes(self, account_id: int) -> bool:
        """A receiver of the account is bound here and can take a ``deliver_sm`` now."""
        ...

    def hand_over(self, rows: list[tuple[int, OutboxRow]]) -> None:
        """Send committed rows (id, row) that were written claimed by this dispatcher."""
        ...


async def claim_in_outbox(
    conn: asyncpg.Connection, rows: Sequence[OutboxRow], worker_id: str, lease: float,
) -> list[int]:
    """Write ``rows`` already claimed by ``worker_id`` for ``lease`` seconds; their ids, in order.

    One attempt is counted, as a claim would. Saves the dispatcher's claim (an
    UPDATE of every row, and of its index entry) when the receiver is bound here.
    """
    if not rows:
        return []
    ids = [r[0] for r in await conn.fetch(
        "SELECT nextval('smpp_outbox_id_seq') FROM generate_series(1, $1)", len(rows))]
    until = datetime.now(UTC) + timedelta(seconds=lease)
    await conn.copy_records_to_table(
        "smpp_outbox", columns=_OUTBOX_CLAIMED,
        records=[(r.smpp_account_id, r.kind, r.source_addr, r.destination_addr, r.esm_class,
                  r.data_coding, r.short_message, r.receipted_message_id, r.message_state,
                  i, 1, worker_id, until)
                 for i, r in zip(ids, rows, strict=True)],
    )
    return ids


# Delivered for billing: a Viber provider may report "seen" without "delivered" first (a
# charge already settled by DELIVERED is left alone: only open charges are touched).
_REACHED = (Status.DELIVERED, Status.SEEN)


async def on_status_change(
    conn: asyncpg.Connection, message: Message, notify: Callable[[int], None] | None = None,
) -> None:
    """Billing and the SMPP receipt for a message whose status just moved (see module doc).

    ``notify(account_id)`` is told of each receipt row written (the outbox
    dispatcher of this process looks sooner; other processes find it by polling).
    """
    ref = message.charge_ref
    if ref:
        if message.status == Status.FAILED:
            await refund(conn, [ref])
        elif message.status in _REACHED:
            await settle_delivered(conn, [ref], True)
        elif message.status == Status.UNDELIVERED:
            await settle_delivered(conn, [ref], False)
    row = receipt_row(message)
    if row is not None:
        await add_to_outbox(conn, [row])
        if notify is not None:
            notify(row.smpp_account_id)


async def on_status_changes(
    conn: asyncpg.Connection, messages: Sequence[Message],
    notify: Callable[[int], None] | None = None, outbox: LocalOutbox | None = None,
    after_commit: list[Callable[[], None]] | None = None,
) -> None:
    """:func:`on_status_change` for a batch: one statement per kind, whatever its size.

    With ``outbox`` and ``after_commit``, receipts whose client is bound here are
    written claimed, and a hand-over to ``outbox`` is appended to ``after_commit``
    (the group commit runs it once the transaction committed; see the module doc).
    """
    failed = [m.charge_ref for m in messages if m.charge_ref and m.status == Status.FAILED]
    delivered = [m.charge_ref for m in messages if m.charge_ref and m.status in _REACHED]
    undelivered = [m.charge_ref for m in messages
                   if m.charge_ref and m.status == Status.UNDELIVERED]
    if failed:
        await refund(conn, failed)
    if delivered:
        await settle_delivered(conn, delivered, True)
    if undelivered:
        await settle_delivered(conn, undelivered, False)
    rows = [row for row in map(receipt_row, messages) if row is not None]
    if outbox is not None and after_commit is not None and rows:
        here = {a for a in {r.smpp_account_id for r in rows} if outbox.takes(a)}
        mine = [r for r in rows if r.smpp_account_id in here]
        if mine:
            rows = [r for r in rows if r.smpp_account_id not in here]
            ids = await claim_in_outbox(conn, mine, outbox.worker_id, outbox.lease)
            after_commit.append(partial(outbox.hand_over, list(zip(ids, mine, strict=True))))
    await add_to_outbox(conn, rows)
    if notify is not None:
        for account_id in {r.smpp_account_id for r in rows}:
            notify(account_id)


def status_many_hook(notify: Callable[[int], None] | None = None, outbox: LocalOutbox | None = None):
    """An ``on_change_many`` hook for the send workers and the receipt writer.

    ``outbox``: this process's dispatcher, handed the receipts of clients bound here
    when the caller gives ``after_commit`` (see the module doc). The hook's
    ``takes_after_commit`` attribute is how :mod:`gateway.send.delivery` (and
    :func:`gateway.report.cascade.with_cascade`, wrapping it) know to pass that list.
    """

    async def hook(conn: asyncpg.Connection, messages: list[Message],
                   after_commit: list[Callable[[], None]] | None = None) -> None:
        await on_status_changes(conn, messages, notify, outbox, after_commit)

    hook.takes_after_commit = True  # type: ignore[attr-defined]  # see gateway.send.delivery
    return hook


def status_hook(notify: Callable[[int], None] | None = None):
    """An ``on_change`` hook for the send workers and the receipt writer."""

    async def hook(conn: asyncpg.Connection, message: Message) -> None:
        await on_status_change(conn, message, notify)

    return hook
