"""What became of a request sent over SMPP, as the asyncio adapters report it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from smpp.pdu import CommandStatus, Pdu

__all__ = ["Outcome", "RequestResult"]


class Outcome(Enum):
    """The four ways a request can end."""

    ACCEPTED = "accepted"
    """The peer answered ESME_ROK."""
    REJECTED = "rejected"
    """The peer answered with an error status (or generic_nack)."""
    UNKNOWN = "unknown"
    """The request left this side but no usable answer came back: the
    connection dropped, the response timed out, or it could not be decoded.
    The peer may or may not have acted on it; never assume either."""
    NOT_SENT = "not_sent"
    """The request never left this side (no suitable bound session, closing)."""


_RETRYABLE = frozenset({
    CommandStatus.ESME_RTHROTTLED,
    CommandStatus.ESME_RMSGQFUL,
    CommandStatus.ESME_RX_T_APPN,
    CommandStatus.ESME_RSYSERR,
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class RequestResult:
    """The end of one request: its outcome, and the response when there was one."""

    outcome: Outcome
    request: Pdu
    response: Pdu | None = None
    context: Any = None
    """Whatever the caller attached when sending (a message id, a row)."""
    reason: str = ""
    connection_id: str | None = None

    @property
    def status(self) -> int | None:
        """The peer's ``command_status``; ``None`` when there was no response."""
        return None if self.response is None else self.response.command_status

    @property
    def message_id(self) -> str | None:
        """The ``message_id`` the peer assigned, when it accepted the request."""
        if self.outcome is not Outcome.ACCEPTED or self.response is None:
            return None
        return getattr(self.response, "message_id", None)

    @property
    def retryable(self) -> bool:
        """Rejected for a reason that may pass later (throttling, full queue)."""
        return self.outcome is Outcome.REJECTED and self.status in _RETRYABLE
