"""The receipts SMPP clients asked for: the ``deliver_sm`` a status change owes (SMPP 3.4
§5.2.17 and Appendix B), and its rows in ``smpp_outbox``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

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
