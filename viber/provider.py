"""The provider contract as pure functions: no I/O, no Herald database (see :mod:`viber`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from config.errors import HeraldError

TRAFFIC_TYPES = ("transaction", "promotion")
STATUSES = ("delivered", "seen", "undelivered", "expired", "failed")
# Viber keeps a business message for 30 s to 14 days.
MIN_TTL = 30
MAX_TTL = 14 * 86400
MAX_ID = 200  # longest provider message id taken (it is stored and indexed)


class ProviderError(HeraldError):
    """The provider did not take a message. ``code`` is its own error code, if given."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Throttled(ProviderError):
    """429: too fast. ``retry_after`` seconds when the provider said (Retry-After)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class Temporary(ProviderError):
    """5xx, timeout, dropped connection, an answer we cannot read: try again later."""


class Permanent(ProviderError):
    """Any other 4xx: this provider will not take this message."""


class BadReport(HeraldError):
    """A status report that does not follow the contract (answered 400)."""


@dataclass(frozen=True, slots=True)
class ViberMessage:
    """What a provider needs to send one Viber business message."""

    sender: str
    phone: str                       # E.164 digits, no '+'
    text: str
    traffic_type: str = "promotion"  # 'transaction' | 'promotion'
    image_url: str | None = None
    button_url: str | None = None
    button_caption: str | None = None
    ttl: int | None = None           # seconds; None: the provider's default
    reference: str | None = None     # Herald's message id, for the provider's logs


@dataclass(frozen=True, slots=True)
class StatusReport:
    message_id: str
    status: str                # one of STATUSES
    at: datetime | None        # None: the report gave no time
    error: str | None = None


def clamp_ttl(seconds: float) -> int:
    """A TTL Viber accepts: whole seconds within [MIN_TTL, MAX_TTL]."""
    return int(min(MAX_TTL, max(MIN_TTL, seconds)))


def build_request(message: ViberMessage) -> dict:
    """The JSON body of ``POST /messages`` for ``message``.

    A button needs both its URL and its caption; given only one, it is left out
    rather than sent half-made (the provider would refuse the whole message).
    """
    if message.traffic_type not in TRAFFIC_TYPES:
        raise ValueError(f"traffic type must be one of {TRAFFIC_TYPES}")
    body: dict = {"sender": message.sender, "phone": message.phone, "text": message.text,
                  "traffic_type": message.traffic_type}
    if message.image_url:
        body["image_url"] = message.image_url
    if message.button_url and message.button_caption:
        body["button"] = {"url": message.button_url, "caption": message.button_caption}
    if message.ttl is not None:
        body["ttl"] = clamp_ttl(message.ttl)
    if message.reference:
        body["reference"] = message.reference
    return body


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    value = (headers or {}).get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare enough to fall back on our own backoff


def _error_of(body: bytes) -> tuple[str, str | None]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:200].decode("utf-8", "replace"), None
    if not isinstance(data, dict):
        return str(data)[:200], None
    code = data.get("code")
    return str(data.get("error") or "")[:200], None if code is None else str(code)[:50]


def parse_send_answer(
    status: int, body: bytes, headers: Mapping[str, str] | None = None,
) -> str:
    """The provider's message id from its answer to ``POST /messages``; raises
    :class:`Throttled`, :class:`Temporary` or :class:`Permanent` otherwise."""
    if status in (200, 201, 202):
        try:
            data = json.loads(body)
            message_id = str(data["message_id"]).strip()
        except (ValueError, UnicodeDecodeError, KeyError, TypeError):
            # Taken or not? We cannot tell: sending again risks a duplicate, not a loss.
            raise Temporary(f"unreadable answer to an accepted send: {body[:100]!r}",
                            status=status) from None
        if not message_id or len(message_id) > MAX_ID:
            raise Temporary(f"accepted without a usable message id: {message_id[:100]!r}",
                            status=status)
        return message_id
    error, code = _error_of(body)
    text = f"HTTP {status}" + (f": {error}" if error else "")
    if status == 429:
        raise Throttled(text, status=status, code=code, retry_after=_retry_after(headers))
    if status >= 500 or status < 400:
        raise Temporary(text, status=status, code=code)
    raise Permanent(text, status=status, code=code)


def parse_time(value: object) -> datetime | None:
    """A report's ``timestamp``: ISO 8601 (a naive one is UTC) or unix seconds; None if absent."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadReport("timestamp must be ISO 8601 or unix seconds")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise BadReport(f"timestamp {value[:40]!r} is not ISO 8601") from None
        return at if at.tzinfo else at.replace(tzinfo=UTC)
    raise BadReport("timestamp must be ISO 8601 or unix seconds")


def parse_status_report(body: bytes | str | dict) -> StatusReport:
    """A status report pushed by the provider (see :mod:`viber`); raises :class:`BadReport`."""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise BadReport("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadReport("the body must be a JSON object")
    message_id = body.get("message_id")
    if not isinstance(message_id, str | int) or not str(message_id).strip():
        raise BadReport("message_id is missing")
    message_id = str(message_id).strip()
    if len(message_id) > MAX_ID:
        raise BadReport("message_id is too long")
    status = str(body.get("status", "")).lower()
    if status not in STATUSES:
        raise BadReport(f"status must be one of {', '.join(STATUSES)}")
    error = body.get("error")
    return StatusReport(message_id, status, parse_time(body.get("timestamp")),
                        None if error in (None, "") else str(error)[:200])


def build_status_report(message_id: str, status: str, at: datetime,
                        error: str | None = None) -> dict:
    """The JSON body of a status report (what the simulator and a provider adapter send)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    body = {"message_id": message_id, "status": status,
            "timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds")}
    if error:
        body["error"] = error
    return body
