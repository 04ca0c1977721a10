"""Herald's SMPP server: end users' systems bind here and submit into the pipeline.

Binds are checked against ``smpp_accounts`` (:func:`gateway.smpp_accounts.bind_verdict`:
password, enabled, allowed networks, bind count). A bound session's account is
its key on the server, so :meth:`smpp.server.SmppServer.deliver` reaches any of
the account's receivers, and the account's ``tps`` is the server's per-account
limit (excess answered ``ESME_RTHROTTLED``). Given Redis, ``max_binds`` and
``tps`` hold over all Herald processes together (:mod:`gateway.smpp_limits`:
binds counted in Redis, submits taken from a Redis token bucket); without it
each process enforces them alone.

Requests (SMPP 3.4 §4.4-§4.10):

* ``submit_sm`` and ``data_sm``: one message each. Concurrent submits are
  grouped (a few milliseconds) into one :meth:`gateway.pipeline.Pipeline.submit`
  call, and each is answered only after its row committed: ``submit_sm_resp``
  carries Herald's message id (the EDR's UUID), or the refusal's
  ``command_status``.
* Long messages: each PDU is its own message, charged as one part. A part the
  client split itself (UDHI with a concatenation element, or the SAR TLVs) is
  stored with ``parts=1``, its own text, and ``client_ref``
  ``concat:<ref>:<total>:<seq>:<wide>`` so the vendor connector sends it with
  the same concatenation header. A whole long text (``message_payload``) is
  counted and split by Herald.
* Binary data (``data_coding`` 8-bit data, compressed, pictograms…) and parts
  whose UDH holds elements other than concatenation (application ports, …)
  pass through as written: the octets are stored as they came (as hex in the
  text column, which cannot hold NUL; ``encoding`` ``binary``), charged as one
  part, and sent on with the client's ``data_coding`` and UDHI bit
  (``client_ref`` ``raw:<udhi>``).
* ``submit_multi``: one message per SME destination (distribution lists are
  refused per destination); ``submit_multi_resp`` carries the first accepted
  message's id and the refused destinations in ``unsuccess_smes``.
* ``query_sm`` / ``cancel_sm``: only for the account's own messages (others look
  unknown: ``ESME_RQUERYFAIL`` / ``ESME_RCANCELFAIL``). A message can be cancelled
  while it waits in the send queue unclaimed: it becomes FAILED and is refunded.
* ``sm_default_msg_id`` (§5.2.19, ``submit_sm``, ``submit_multi``, ``replace_sm``):
  Herald keeps no canned messages, so any value but 0 is refused with
  ``ESME_RINVDFTMSGID`` (0x00000063) rather than sent with some other text.
* ``outbind`` (§4.1.7) is not supported, in either direction: Herald never asks its
  clients to bind, and its vendor connectors always bind out (accepting a carrier's
  outbind would take a listening socket per vendor).

``replace_if_present_flag`` (§5.2.18) on ``submit_sm`` / ``submit_multi``: 1 means the
new message takes the place of the account's newest *pending* message with the same
``source_addr``, ``destination_addr`` (as normalised by the pipeline) and
``service_type`` — pending meaning BILLED and in the send queue unclaimed, the state in
which ``cancel_sm`` can still take it back. The new message is accepted as an ordinary
submit (its own message id, charged for its own parts); once it committed, the pending
one is taken back exactly as by ``cancel_sm``: FAILED ("replaced by <new id>"),
refunded, with its receipt if it asked for one. Billing therefore stays right whatever
the two texts' lengths (replace_sm, which keeps the message id, must keep the part
count instead). A refused new message replaces nothing. With no pending match it is
an ordinary submit; a match claimed by a send worker in the meantime is sent as well,
as an SMSC that had forwarded it already would. Replacing submits with the same key
are taken one at a time per process, so a client's pipelined replacements each see
the one before. Which ``service_type`` a message had is kept in ``client_ref``
(``svc:<type>``, only when not empty) for messages Herald encodes; parts the client
split itself and binary pass-through carry their own ``client_ref``, so for them the
flag is refused with ``ESME_RINVSUBREP`` (a part would also replace its sibling
part), and they are never replaced. Values above 1 are reserved:
``ESME_RINVREPFLAG``.

Times (SMPP 3.4 §7.1.1, read by :mod:`smpp.times`; relative ones count from the
moment Herald reads the PDU):

* ``validity_period`` becomes the message's ``valid_until``: a message still in
  the send queue when it passes is not sent but ends UNDELIVERED ("validity period
  expired", ``query_sm`` answers EXPIRED) with its receipt. A validity already
  past is accepted and expires so, as an SMSC would do. Herald keeps a message at
  most :data:`MAX_VALIDITY` after it became due (now, or its schedule): a longer
  validity is shortened to that, silently, as SMSCs commonly cap it. An
  unreadable value is refused with ``ESME_RINVEXPIRY``. ``data_sm`` carries
  no validity_period; its ``qos_time_to_live`` TLV (seconds, §5.3.2.9) is read
  instead.
* ``schedule_delivery_time``: the message is charged, stored and acknowledged at
  once, but its send-queue row is claimable only from that time
  (``messages.scheduled_for``, migration 0370). A time already past means now. A
  time more than :data:`MAX_SCHEDULE_AHEAD` ahead, or an unreadable one, is
  refused with ``ESME_RINVSCHED``.
* ``query_sm`` of a scheduled message not yet sent answers ENROUTE: SMPP 3.4's
  ``message_state`` (§5.2.28) has no SCHEDULED (that value, 0, came with SMPP 5.0,
  and a 3.4 client need not know it); ENROUTE is 3.4's state of a message the
  SMSC holds and has not delivered yet, which is exactly what it is.

``replace_sm`` (§4.10): the account's own message, matched on its message id and
``source_addr`` (the sender given at submit; anything else answers
``ESME_RINVMSGID``), replaced while it waits in the send queue unclaimed. The
queue row is locked (``FOR UPDATE SKIP LOCKED``) in the transaction that
rewrites the message, so a worker can neither claim it meanwhile nor be sending
it: a row leased to a worker, being claimed, already sent, or final answers
``ESME_RREPLACEFAIL``. Replaced together: the text (``short_message``, written
in the original submit's ``data_coding``, since replace_sm has none, and
encoded again by Herald), ``registered_delivery``, and, when not NULL (NULL keeps
them, §4.10.1), ``schedule_delivery_time`` (the queue row's ``not_before`` moves
with it) and ``validity_period``. The price stays the price paid: a new text
needing a different number of parts is refused with ``ESME_RREPLACEFAIL`` rather
than charged again, and so is a part the client split itself (its UDH is not
Herald's to rewrite). An empty text answers ``ESME_RINVMSGLEN``.

Receipts and MO to the client go through the persistent ``smpp_outbox``
(:mod:`gateway.receipts_out`, :mod:`gateway.mo`): :class:`OutboxDispatcher`
claims rows of the accounts with a receiver bound in this process, sends
``deliver_sm``, and deletes a row only on ``deliver_sm_resp`` OK; otherwise it
tries again later. A client away loses nothing. An MO in a binary
``data_coding`` or with a UDH of its own reaches the client as the carrier sent
it: same ``data_coding``, octets and UDHI bit (:mod:`gateway.mo`, "Binary MO").
A receipt for a client bound in this process skips the claim: its row is written
already claimed by this dispatcher and handed to it once committed
(:mod:`gateway.receipts_out`).

A plain ``submit_sm``/``data_sm`` (no Redis TPS check to wait for) is answered
through :meth:`smpp.server.ServerHandler.handle_request_soon`: the batcher's
future, no task per PDU; the answers are those of ``handle_request``.

Public API::

    SmppIngress(pool, pipeline, *, host, port, ...)     # service: start() / stop(); .port
    OutboxDispatcher(pool, server, ...)                  # started by SmppIngress
    submission_of(account, session_id, pdu, *, timing=None) -> Submission   # pure
    timing_of(pdu, now) -> Timing | int                  # pure: schedule and validity, or the refusal
    replacement(message, replace_sm, now) -> Replacement | int   # pure
    field_refusal(pdu) -> int | None                     # pure: sm_default_msg_id, replace flag
    query_state(message) -> MessageState                 # pure
    smpp_services(app) -> list[Service]                  # for gateway.services.build_services
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from billing.users import verify_password
from gateway import queue
from gateway.app import task_health
from gateway.messages import FINAL, Event, Message, Status, apply_event, get_message
from gateway.pipeline import Accepted, Pipeline, Rejected, Submission
from gateway.receipts_out import OutboxRow, on_status_change, receipt_state
from gateway.smpp_accounts import SmppAccount, bind_verdict, get_by_system_id
from gateway.smpp_limits import AccountThrottle, BindRegistry
from smpp.encoding import Encoding, alphabet_of, decode, message_class_of
from smpp.pdu import (
    CancelSm,
    CommandStatus,
    DataSm,
    DeliverSm,
    EsmClass,
    MessageState,
    Pdu,
    QuerySm,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    Tag,
    UnsuccessSme,
)
from smpp.results import Outcome
from smpp.segments import count_segments
from smpp.server import (
    BindRequest,
    BindResult,
    ServerConfig,
    ServerHandler,
    ServerSession,
    SmppServer,
)
from smpp.session import SessionConfig
from smpp.times import TimeFormatError, format_absolute, parse_time
from smpp.udh import IEI_CONCAT_8, IEI_CONCAT_16, parse_udh

log = logging.getLogger("herald.smpp")
S = CommandStatus

# Not final yet (final statuses answer as their receipt: gateway.receipts_out.receipt_state).
_QUERY_STATE = {
    Status.PREPARED: MessageState.ENROUTE,
    Status.BILLED: MessageState.ENROUTE,
    Status.SENT: MessageState.ENROUTE,
}

MAX_VALIDITY = timedelta(days=7)
"""The longest Herald keeps a message waiting to be sent, from when it became due."""
MAX_SCHEDULE_AHEAD = timedelta(days=30)
"""The furthest ahead a message may be scheduled: it is charged at today's prices."""


@dataclass(frozen=True, slots=True)
class Timing:
    """When a message may be sent (None: now) and until when (None: no limit)."""

    scheduled_for: datetime | None = None
    valid_until: datetime | None = None


def read_times(schedule: str, validity: str, now: datetime) -> tuple[datetime | None, datetime | None] | int:
    """The instants ``schedule_delivery_time`` and ``validity_period`` name (None: NULL),
    or the ``command_status`` refusing them (SMPP 3.4 §5.1.3). Pure.

    A schedule more than :data:`MAX_SCHEDULE_AHEAD` after ``now`` is refused.
    """
    try:
        scheduled = parse_time(schedule, now)
    except TimeFormatError:
        return S.ESME_RINVSCHED
    if scheduled is not None and scheduled - now > MAX_SCHEDULE_AHEAD:
        return S.ESME_RINVSCHED
    try:
        valid = parse_time(validity, now)
    except TimeFormatError:
        return S.ESME_RINVEXPIRY
    return scheduled, valid


def due(scheduled: datetime | None, now: datetime) -> datetime | None:
    """The schedule to store: None (now) for no schedule or one already past."""
    return scheduled if scheduled is not None and scheduled > now else None


def capped(valid_until: datetime | None, scheduled_for: datetime | None, now: datetime) -> datetime | None:
    """``valid_until`` shortened to :data:`MAX_VALIDITY` after the message is due."""
    if valid_until is None:
        return None
    return min(valid_until, (scheduled_for or now) + MAX_VALIDITY)


def timing_of(pdu: SubmitSm | SubmitMulti | DataSm, now: datetime) -> Timing | int:
    """A submitted message's :class:`Timing`, or the ``command_status`` refusing it. Pure."""
    if isinstance(pdu, DataSm):
        # data_sm has no time fields: qos_time_to_live is seconds from submission (§5.3.2.9).
        ttl = pdu.tlvs.get(Tag.QOS_TIME_TO_LIVE)
        return Timing(None, capped(now + timedelta(seconds=int(ttl)), None, now) if ttl else None)
    times = read_times(pdu.schedule_delivery_time, pdu.validity_period, now)
    if isinstance(times, int):
        return times
    scheduled = due(times[0], now)
    return Timing(scheduled, capped(times[1], scheduled, now))


def _split_info(pdu: SubmitSm | DataSm) -> tuple[bytes, str | None]:
    """The payload without UDH, and ``client_ref`` when the client split the message itself."""
    data = bytes(pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b"")
    if pdu.esm_class & EsmClass.UDHI and data:
        user_data = parse_udh(data)  # UdhError (a ValueError) → ESME_RINVESMCLASS by the caller
        concat = user_data.concat
        ref = None
        if concat is not None and concat.total > 1:
            wide = "1" if concat.wide_reference else "0"
            ref = f"concat:{concat.reference}:{concat.total}:{concat.sequence}:{wide}"
        return user_data.payload, ref
    total = pdu.tlvs.get(Tag.SAR_TOTAL_SEGMENTS)
    if total and int(total) > 1:
        ref = int(pdu.tlvs.get(Tag.SAR_MSG_REF_NUM) or 0)
        seq = int(pdu.tlvs.get(Tag.SAR_SEGMENT_SEQNUM) or 1)
        # SAR references are 16 bits: sent on as a 16-bit UDH reference.
        return data, f"concat:{ref}:{int(total)}:{seq}:1"
    return data, None


def passthrough_of(pdu: SubmitSm | DataSm) -> tuple[bytes, bool] | None:
    """(octets, UDHI) of a message Herald must carry exactly as written, or None. Pure.

    Binary ``data_coding`` cannot be read as text, and a UDH element Herald does
    not rebuild (anything but concatenation) would be lost by re-encoding.
    Raises :class:`~smpp.udh.UdhError` (a ValueError) on a malformed UDH.
    """
    data = bytes(pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b"")
    udhi = bool(pdu.esm_class & EsmClass.UDHI) and bool(data)
    foreign = udhi and any(e.iei not in (IEI_CONCAT_8, IEI_CONCAT_16)
                           for e in parse_udh(data).elements)
    if foreign or alphabet_of(pdu.data_coding) == Encoding.BINARY:
        return data, udhi
    return None


SERVICE_TYPE_REF = "svc:"
"""``client_ref`` prefix recording a non-empty ``service_type`` (for replace_if_present_flag)."""


def field_refusal(pdu: SubmitSm | SubmitMulti | ReplaceSm) -> int | None:
    """The ``command_status`` refusing a field Herald does not serve, or None. Pure.

    ``sm_default_msg_id`` names a canned message, and Herald has none (SMPP 3.4
    §5.2.19); ``replace_if_present_flag`` values above 1 are reserved (§5.2.18).
    """
    if pdu.sm_default_msg_id:
        return S.ESME_RINVDFTMSGID
    if getattr(pdu, "replace_if_present_flag", 0) > 1:
        return S.ESME_RINVREPFLAG
    return None


def replaceable(sub: Submission) -> bool:
    """A message Herald encodes itself: its ``service_type`` is known (module doc)."""
    return sub.client_ref is None or sub.client_ref.startswith(SERVICE_TYPE_REF)


def submission_of(
    account: SmppAccount, session_id: str, pdu: SubmitSm | DataSm, destination: str | None = None,
    *, timing: Timing | None = None,
) -> Submission:
    """The pipeline's view of a ``submit_sm``/``data_sm`` (raises ValueError on a bad UDH).

    ``timing`` (from :func:`timing_of`) sets the schedule and the validity.
    """
    flash = message_class_of(pdu.data_coding) == 0
    extra: dict[str, Any] = {}
    raw = passthrough_of(pdu)
    if raw is not None:
        data, udhi = raw
        text, client_ref = data.hex(), f"raw:{int(udhi)}"
        extra = {"parts": 1, "encoding": "binary", "data_coding": pdu.data_coding}
    else:
        payload, client_ref = _split_info(pdu)
        text = decode(payload, pdu.data_coding)
    if client_ref is not None and raw is None:
        alphabet = str(alphabet_of(pdu.data_coding))
        encoding = alphabet if alphabet in ("gsm7", "latin1", "ucs2") else "ucs2"
        extra = {"parts": 1, "encoding": encoding, "data_coding": pdu.data_coding}
    if client_ref is None and pdu.service_type:
        # Kept for replace_if_present_flag, which matches on it (§5.2.18).
        client_ref = SERVICE_TYPE_REF + pdu.service_type
    return Submission(
        partner_id=account.partner_id, origin="smpp", sender=pdu.source_addr,
        destination=destination if destination is not None else pdu.destination_addr,
        text=text, user_id=account.user_id, smpp_account_id=account.id, smpp_session=session_id,
        flash=flash, client_ref=client_ref, registered_delivery=pdu.registered_delivery,
        valid_until=timing.valid_until if timing else None,
        scheduled_for=timing.scheduled_for if timing else None,
        smpp_data_coding=pdu.data_coding, **extra,
    )


def query_state(message: Message) -> MessageState:
    """``message_state`` for ``query_sm`` (SMPP 3.4 §5.2.28).

    Waiting, scheduled or sent: ENROUTE. Final: as its receipt says
    (:func:`gateway.receipts_out.receipt_state`, EXPIRED past the validity period).
    """
    if message.status in FINAL:
        return receipt_state(message)
    return _QUERY_STATE[message.status]


@dataclass(frozen=True, slots=True)
class Replacement:
    """What a ``replace_sm`` writes over a queued message."""

    text: str
    encoding: str
    data_coding: int
    registered_delivery: int
    scheduled_for: datetime | None
    valid_until: datetime | None


def replacement(message: Message, pdu: ReplaceSm, now: datetime) -> Replacement | int:
    """The new values ``replace_sm`` gives ``message``, or the ``command_status`` refusing
    it (SMPP 3.4 §4.10; the rules are in the module doc). Pure: whether the message may
    still be replaced is the caller's question."""
    if message.client_ref and message.client_ref.startswith(("concat:", "raw:")):
        return S.ESME_RREPLACEFAIL
    times = read_times(pdu.schedule_delivery_time, pdu.validity_period, now)
    if isinstance(times, int):
        return times
    # §4.10.1: NULL keeps the original schedule / validity period.
    scheduled = message.scheduled_for if pdu.schedule_delivery_time == "" else due(times[0], now)
    valid = message.valid_until if pdu.validity_period == "" else capped(times[1], scheduled, now)
    coding = message.smpp_data_coding if message.smpp_data_coding is not None else message.data_coding
    text = decode(bytes(pdu.short_message), coding)
    if not text.strip():
        return S.ESME_RINVMSGLEN
    seg = count_segments(text, flash=message.flash)
    if seg.parts != message.parts:
        return S.ESME_RREPLACEFAIL  # charged for message.parts: not charged again
    return Replacement(text, str(seg.encoding), seg.data_coding, pdu.registered_delivery,
                       scheduled, valid)


class _Batcher:
    """Groups concurrent submissions into one pipeline call: at once when none is running,
    else after ``max_delay`` seconds or at ``max_items``."""

    def __init__(self, pipeline: Pipeline, max_delay: float = 0.002, max_items: int = 500) -> None:
        self.pipeline = pipeline
        self.max_delay = max_delay
        self.max_items = max_items
        # (submission, future, as_reply): as_reply futures get the SMPP reply, not the result
        self._items: list[tuple[Submission, asyncio.Future, bool]] = []
        self._timer: asyncio.Handle | None = None
        self._tasks: set[asyncio.Task] = set()

    async def submit(self, sub: Submission) -> Accepted | Rejected:
        return await self.enqueue(sub)

    def enqueue(self, sub: Submission, *, as_reply: bool = False) -> asyncio.Future:
        """The future of ``sub``'s pipeline result, or with ``as_reply`` of its SMPP reply
        (:func:`reply_of`; ``ESME_RSYSERR`` when the pipeline failed)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._items.append((sub, future, as_reply))
        if len(self._items) >= self.max_items:
            self._flush()
        elif self._timer is None:
            # Idle: go at the end of this turn of the loop (the rest of the burst just
            # read is already queued before it); busy: let the batch grow a little.
            self._timer = (loop.call_later(self.max_delay, self._flush) if self._tasks
                           else loop.call_soon(self._flush))
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, self._items = self._items, []
        if items:
            task = asyncio.get_running_loop().create_task(self._run(items))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[tuple[Submission, asyncio.Future, bool]]) -> None:
        try:
            results = await self.pipeline.submit([s for s, _, _ in items])
        except Exception as exc:
            if any(as_reply for _, _, as_reply in items):
                log.exception("event=smpp_pipeline_failed count=%d", len(items))
            for _, future, as_reply in items:
                if not future.done():
                    # Nothing stored: the client may send it again.
                    if as_reply:
                        future.set_result(S.ESME_RSYSERR)
                    else:
                        future.set_exception(exc)
            return
        for (_, future, as_reply), result in zip(items, results, strict=True):
            if not future.done():
                future.set_result(reply_of(result) if as_reply else result)

    async def drain(self) -> None:
        self._flush()
        if self._tasks:
            await asyncio.wait(set(self._tasks))


# The newest message replace_if_present_flag replaces: the account's, same sender,
# destination and service_type (client_ref), still BILLED in the queue unclaimed.
_PENDING_MATCH = """
SELECT m.id FROM messages m JOIN send_queue q ON q.message_id = m.id
WHERE m.destination = $3 AND m.sender = $2 AND m.smpp_account_id = $1
  AND m.client_ref IS NOT DISTINCT FROM $4 AND m.status = 'BILLED' AND q.claimed_by IS NULL
ORDER BY m.created_at DESC, m.id DESC LIMIT 1"""


class _KeyLocks:
    """An asyncio lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Any, tuple[asyncio.Lock, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Any):
        lock, users = self._locks.setdefault(key, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._locks[key]


def reply_of(result: Accepted | Rejected) -> str | int:
    """The ``submit_sm_resp`` a pipeline result makes: the message id, or the refusal's status."""
    return str(result.message_id) if isinstance(result, Accepted) else result.smpp_status


class HeraldSmppHandler(ServerHandler):
    """Binds against ``smpp_accounts``; submits into the pipeline (see the module doc)."""

    def __init__(self, pool: asyncpg.Pool, pipeline: Pipeline, *, on_bound: Callable[[], None] | None = None,
                 notify: Callable[[int], None] | None = None, binds: BindRegistry | None = None,
                 throttle: AccountThrottle | None = None) -> None:
        self.pool = pool
        self.pipeline = pipeline
        self.binds = binds        # None: max_binds counted in this process only
        self.throttle = throttle  # None: account TPS left to the server's local bucket
        self.batcher = _Batcher(pipeline)
        self.server: SmppServer | None = None
        self.on_bound = on_bound
        self.notify = notify
        self._verified: dict[tuple[int, str], bytes] = {}
        self._replacing = _KeyLocks()

    async def _password_ok(self, account: SmppAccount, password: str) -> bool:
        # argon2 costs tens of ms of CPU: remember a proven password (as a digest) per hash,
        # so clients that rebind often do not pay it again; a changed hash forgets it.
        digest = hashlib.sha256(password.encode()).digest()
        known = self._verified.get((account.id, account.password_hash))
        if known is not None:
            return hmac.compare_digest(known, digest)
        ok = await asyncio.to_thread(verify_password, account.password_hash, password)
        if ok:
            self._verified[(account.id, account.password_hash)] = digest
        return ok

    async def authenticate(self, request: BindRequest) -> BindResult:
        account = await get_by_system_id(self.pool, request.system_id)
        password_ok = account is not None and await self._password_ok(account, request.password)
        # With a registry the bind count is settled below, atomically over all processes.
        local = len(self.server.sessions(account.id)) if account and self.server else 0
        status = bind_verdict(account, password_ok=password_ok,
                              peer_ip=request.peer[0] if request.peer else None,
                              bound_now=0 if self.binds is not None else local)
        if status == S.ESME_ROK and self.binds is not None:
            assert account is not None
            try:
                if not await self.binds.reserve(account.id, request.connection_id, account.max_binds):
                    status = S.ESME_RBINDFAIL
            except Exception:
                # Redis trouble: keep serving, with this process's own count.
                log.warning("event=smpp_bind_registry_failed", exc_info=True)
                if local >= account.max_binds:
                    status = S.ESME_RBINDFAIL
        if status != S.ESME_ROK:
            log.info("event=smpp_bind_refused system_id=%r peer=%s status=0x%08x",
                     request.system_id, request.peer, status)
            return BindResult.reject(status)
        assert account is not None
        return BindResult.accept(account, key=account.id,
                                 account_tps=account.tps if self.throttle is None else None)

    async def session_bound(self, session: ServerSession) -> None:
        if self.on_bound is not None:
            self.on_bound()

    async def session_closed(self, session: ServerSession) -> None:
        if self.binds is not None:
            await self.binds.release(session.id)

    def handle_request_soon(self, session: ServerSession, pdu: Pdu) -> asyncio.Future | None:
        # submit_sm / data_sm without a Redis TPS check (most traffic): answered from the
        # batcher's future, no task per PDU. Same answers as handle_request.
        account: SmppAccount = session.account
        if not isinstance(pdu, SubmitSm | DataSm) or (account.tps and self.throttle is not None):
            return None
        if type(pdu) is SubmitSm and pdu.replace_if_present_flag == 1:
            return None  # a replacing submit looks for its pending match first
        reply = self._submission(session, account, pdu)
        if isinstance(reply, int):
            future = asyncio.get_running_loop().create_future()
            future.set_result(reply)
            return future
        return self.batcher.enqueue(reply, as_reply=True)

    @staticmethod
    def _submission(session: ServerSession, account: SmppAccount, pdu: SubmitSm | DataSm
                    ) -> Submission | int:
        """The submission a ``submit_sm``/``data_sm`` makes, or the status refusing it."""
        if type(pdu) is SubmitSm and (refusal := field_refusal(pdu)) is not None:
            return refusal
        timing = timing_of(pdu, datetime.now(UTC))
        if isinstance(timing, int):
            return timing
        try:
            sub = submission_of(account, session.id, pdu, timing=timing)
        except ValueError:
            return S.ESME_RINVESMCLASS
        if isinstance(pdu, SubmitSm) and pdu.replace_if_present_flag and not replaceable(sub):
            return S.ESME_RINVSUBREP
        return sub

    async def handle_request(self, session: ServerSession, pdu: Pdu) -> Any:
        account: SmppAccount = session.account
        if (account.tps and self.throttle is not None and isinstance(pdu, SubmitSm | DataSm | SubmitMulti)
                and not await self.throttle.admit(account.id, account.tps)):
            return S.ESME_RTHROTTLED  # the account's TPS over all processes (SMPP 3.4 §5.1.3)
        if isinstance(pdu, SubmitSm | DataSm):
            sub = self._submission(session, account, pdu)
            if isinstance(sub, int):
                return sub
            try:
                if isinstance(pdu, SubmitSm) and pdu.replace_if_present_flag:
                    result = await self._submit_replacing(account, sub)
                else:
                    result = await self.batcher.submit(sub)
            except Exception:
                log.exception("[%s] pipeline failed", session.id)
                return S.ESME_RSYSERR  # nothing stored: the client may send it again
            return reply_of(result)
        if isinstance(pdu, SubmitMulti):
            return await self._submit_multi(session, account, pdu)
        if isinstance(pdu, QuerySm):
            return await self._query(account, pdu)
        if isinstance(pdu, CancelSm):
            return await self._cancel(account, pdu)
        if isinstance(pdu, ReplaceSm):
            return await self._replace(account, pdu)
        return S.ESME_RINVCMDID

    async def _submit_replacing(self, account: SmppAccount, sub: Submission) -> Accepted | Rejected:
        """Submit ``sub``, then take back the pending message it replaces (module doc,
        replace_if_present_flag)."""
        destination = self.pipeline.normalise(sub.destination)
        if destination is None:
            return await self.batcher.submit(sub)  # refused by the pipeline: replaces nothing
        key = (account.id, sub.sender, destination, sub.client_ref)
        async with self._replacing.hold(key):
            # Looked for before the submit: only what was pending when it came is replaced.
            pending = await self.pool.fetchval(_PENDING_MATCH, *key)
            result = await self.batcher.submit(sub)
            if pending is None or not isinstance(result, Accepted):
                return result
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    taken = await self._take_back(conn, pending, f"replaced by {result.message_id}")
            except Exception:
                # The new message is stored: answer it; the old one is simply sent too.
                log.exception("event=smpp_replace_pending_failed message=%s", pending)
                return result
        log.info("event=smpp_replaced_pending message=%s by=%s done=%s account=%s",
                 pending, result.message_id, taken, account.id)
        return result

    async def _submit_multi(self, session: ServerSession, account: SmppAccount, pdu: SubmitMulti) -> Any:
        refusal = field_refusal(pdu)
        if refusal is not None:
            return pdu.make_response(refusal)
        timing = timing_of(pdu, datetime.now(UTC))
        if isinstance(timing, int):
            return timing
        single = SubmitSm(
            service_type=pdu.service_type,
            source_addr_ton=pdu.source_addr_ton, source_addr_npi=pdu.source_addr_npi,
            source_addr=pdu.source_addr, esm_class=pdu.esm_class, data_coding=pdu.data_coding,
            registered_delivery=pdu.registered_delivery, short_message=pdu.short_message,
            tlvs=dict(pdu.tlvs),
        )
        unsuccess: list[UnsuccessSme] = []
        waits = []
        for dest in pdu.dest_addresses:
            if not isinstance(dest, SmeAddress):
                unsuccess.append(UnsuccessSme(0, 0, getattr(dest, "dl_name", ""), S.ESME_RINVDLNAME))
                continue
            try:
                sub = submission_of(account, session.id, single, dest.destination_addr, timing=timing)
            except ValueError:
                return pdu.make_response(S.ESME_RINVESMCLASS)
            if pdu.replace_if_present_flag:
                if not replaceable(sub):
                    return pdu.make_response(S.ESME_RINVSUBREP)
                waits.append((dest, self._submit_replacing(account, sub)))
            else:
                waits.append((dest, self.batcher.submit(sub)))
        results = await asyncio.gather(*(w for _, w in waits), return_exceptions=True)
        first_id = ""
        for (dest, _), result in zip(waits, results, strict=True):
            if isinstance(result, Accepted):
                first_id = first_id or str(result.message_id)
            else:
                status = result.smpp_status if isinstance(result, Rejected) else S.ESME_RSYSERR
                unsuccess.append(UnsuccessSme(dest.dest_addr_ton, dest.dest_addr_npi,
                                              dest.destination_addr, status))
        if not first_id:
            return pdu.make_response(S.ESME_RSUBMITFAIL)
        return SubmitMultiResp(message_id=first_id, unsuccess_smes=unsuccess)

    async def _own(self, account: SmppAccount, message_id: str):
        try:
            mid = uuid.UUID(message_id.strip("\x00 "))
        except ValueError:
            return None
        async with self.pool.acquire() as conn:
            message = await get_message(conn, mid)
        if message is None or message.smpp_account_id != account.id:
            return None  # another account's message looks like no message at all
        return message

    async def _query(self, account: SmppAccount, pdu: QuerySm) -> Any:
        message = await self._own(account, pdu.message_id)
        if message is None:
            return S.ESME_RQUERYFAIL
        final = format_absolute(message.done_at) if message.done_at is not None else ""
        return QuerySmResp(message_id=pdu.message_id, final_date=final,
                           message_state=query_state(message))

    async def _replace(self, account: SmppAccount, pdu: ReplaceSm) -> Any:
        refusal = field_refusal(pdu)
        if refusal is not None:
            return refusal
        message = await self._own(account, pdu.message_id)
        if message is None or message.sender != pdu.source_addr:
            return S.ESME_RINVMSGID  # §4.10.1: source_addr must be the submit's
        async with self.pool.acquire() as conn, conn.transaction():
            # Locked until commit: a worker claiming now skips the row, and one that
            # holds it (claimed_by set) may have the text on the wire already.
            row = await conn.fetchrow(
                "SELECT claimed_by FROM send_queue WHERE message_id = $1 FOR UPDATE SKIP LOCKED",
                message.id,
            )
            # Read again under the lock: a replace_sm just before this one may have changed
            # what NULL fields keep.
            message = await get_message(conn, message.id) or message
            change = replacement(message, pdu, datetime.now(UTC))
            if isinstance(change, int):
                return change  # a bad PDU is answered as such, whatever the message's state
            if row is None or row["claimed_by"] is not None:
                return S.ESME_RREPLACEFAIL
            done = await conn.fetchval(
                """UPDATE messages SET text = $2, encoding = $3, data_coding = $4,
                       registered_delivery = $5, scheduled_for = $6, valid_until = $7,
                       updated_at = now()
                   WHERE id = $1 AND status = $8 AND parts = $9 RETURNING id""",
                message.id, change.text, change.encoding, change.data_coding,
                change.registered_delivery, change.scheduled_for, change.valid_until,
                str(Status.BILLED), message.parts,
            )
            if done is None:
                return S.ESME_RREPLACEFAIL
            if change.scheduled_for != message.scheduled_for:
                await conn.execute(
                    "UPDATE send_queue SET not_before = coalesce($2, now()) WHERE message_id = $1",
                    message.id, change.scheduled_for,
                )
        log.info("event=smpp_replaced message=%s account=%s", message.id, account.id)
        return None

    async def _cancel(self, account: SmppAccount, pdu: CancelSm) -> Any:
        message = await self._own(account, pdu.message_id)
        if message is None:
            return S.ESME_RCANCELFAIL
        async with self.pool.acquire() as conn, conn.transaction():
            if not await self._take_back(conn, message.id, "cancelled by the client"):
                return S.ESME_RCANCELFAIL
        return None

    async def _take_back(self, conn: asyncpg.Connection, message_id: uuid.UUID, why: str) -> bool:
        """Take a message out of the send queue unsent: FAILED, refunded, its receipt
        (call in a transaction). False when a worker holds it or it left the queue."""
        # Only a message no worker holds can be taken back: once claimed it may be on the wire.
        gone = await conn.fetchval(
            "DELETE FROM send_queue WHERE message_id = $1 AND claimed_by IS NULL RETURNING message_id",
            message_id,
        )
        if gone is None:
            return False
        moved = await apply_event(conn, message_id, Event.FAILED, error_text=why)
        if moved is not None:
            await on_status_change(conn, moved, self.notify)
        return True


class OutboxDispatcher:
    """Pushes ``smpp_outbox`` rows to bound receivers of their accounts (see the module doc)."""

    def __init__(self, pool: asyncpg.Pool, server: SmppServer, *, batch: int = 200,
                 poll_interval: float = 0.25, lease: float = 30.0, retry_after: float = 2.0) -> None:
        self.pool = pool
        self.server = server
        self.batch = batch
        self.poll_interval = poll_interval
        self.lease = lease
        self.retry_after = retry_after
        self.worker_id = queue.new_worker_id()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._handed: list[tuple[int, OutboxRow]] = []  # committed, claimed by us, not sent yet
        self._poll_now = True   # notified of unclaimed rows, or a poll is due
        self._next_poll = 0.0
        self._stopping = False

    def notify(self, _account_id: int | None = None) -> None:
        self._poll_now = True
        self._wake.set()

    def takes(self, account_id: int) -> bool:
        """A receiver of the account is bound here (rows for it may be handed over)."""
        return not self._stopping and any(s.can_deliver for s in self.server.sessions(account_id))

    def hand_over(self, rows: list[tuple[int, OutboxRow]]) -> None:
        """Send rows already committed claimed by this dispatcher (``gateway.receipts_out``).

        They join the next batch of the dispatcher's loop: rows handed over while a
        batch is on the wire go out together, and are deleted together.
        """
        self._handed += rows
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="smpp-outbox")

    def health(self) -> str:
        """``"ok"`` while the dispatcher's loop runs (``/healthz``)."""
        return "stopping" if self._stopping else task_health(self._task)

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self._handed:
            # The server is closed: these fail to send and are freed for any process.
            rows, self._handed = self._handed, []
            await self._settle(rows)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                done = await self.run_once()
            except Exception:
                log.exception("event=smpp_outbox_error")
                done = 0
            if done < self.batch and not self._stopping and not self._handed:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()

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


class SmppIngress:
    """The SMPP server service: listens, and runs the outbox dispatcher."""

    name = "smpp_server"  # in /healthz

    def __init__(self, pool: asyncpg.Pool, pipeline: Pipeline, *, host: str = "127.0.0.1", port: int = 0,
                 session: SessionConfig | None = None, poll_interval: float = 0.25,
                 lease: float = 30.0, redis=None, bind_ttl: float = 30.0, worker: int = 0) -> None:
        """``redis``: count binds and account TPS over all processes (None: this one only).

        ``worker``: this process's number among the workers sharing the port (0: alone);
        the workers listen together (SO_REUSEPORT) and each is its own bind-registry node.
        """
        self.host, self._port = host, port
        # A fixed port names this server across restarts: a restart clears its own dead binds.
        node = f"{socket.gethostname()}:{port}" + (f":{worker}" if worker else "") if port else None
        self._reuse_port = worker > 0
        self.binds = BindRegistry(redis, ttl=bind_ttl, node=node) if redis is not None else None
        self.handler = HeraldSmppHandler(
            pool, pipeline, binds=self.binds,
            throttle=AccountThrottle(redis) if redis is not None else None)
        config = ServerConfig(system_id="Herald", tick_interval=0.5, session=session or SessionConfig(
            window=50, peer_window=1000, enquire_link_interval=60.0, response_timeout=10.0))
        self.server = SmppServer(self.handler, config)
        self.handler.server = self.server
        self.outbox = OutboxDispatcher(pool, self.server, poll_interval=poll_interval, lease=lease)
        self.handler.on_bound = self.outbox.notify
        self.handler.notify = self.outbox.notify

    @property
    def port(self) -> int:
        return self.server.port

    def health(self) -> str:
        """``"ok"`` while the SMPP port listens and the outbox dispatcher runs (``/healthz``)."""
        if not self.server.listening:
            return "not listening"
        outbox = self.outbox.health()
        return "ok" if outbox == "ok" else f"outbox {outbox}"

    async def start(self) -> None:
        if self.binds is not None:
            await self.binds.start()
        await self.server.start(self.host, self._port, reuse_port=self._reuse_port)
        await self.outbox.start()
        log.info("event=smpp_listening host=%s port=%s", self.host, self.port)

    async def stop(self) -> None:
        await self.server.close(grace=2.0)
        await self.handler.batcher.drain()
        await self.outbox.stop()
        if self.binds is not None:
            await self.binds.stop()


class _PipelineService:
    """Starts a pipeline of our own when the application has none (no HTTP API installed)."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def start(self) -> None:
        await self.pipeline.start()

    async def stop(self) -> None:
        await self.pipeline.stop()


def smpp_services(app, role: str = "all") -> list:
    """The SMPP server (roles all and ingress), the vendor connectors and the MO handler (all
    and egress) of one process, in start order."""
    from gateway.app import DB, REDIS, SETTINGS
    from gateway.cascade import with_cascade
    from gateway.connectors import ConnectorOptions, Connectors
    from gateway.keys import PIPELINE
    from gateway.mo import MoHandler
    from gateway.receipts_out import status_many_hook

    pool, redis, settings = app[DB], app[REDIS], app[SETTINGS]
    services: list = []
    pipeline = app.get(PIPELINE)
    if pipeline is None:
        pipeline = Pipeline(pool, redis, settings)
        services.append(_PipelineService(pipeline))
    ingress = outbox = notify = None
    if role in ("all", "ingress"):
        ingress = SmppIngress(pool, pipeline, host=settings.smpp_host, port=settings.smpp_port,
                              lease=settings.vendor_lease, redis=redis, worker=settings.worker)
        # receipts for clients bound here skip the outbox's polling (receipts_out)
        outbox, notify = ingress.outbox, ingress.outbox.notify
    if role in ("all", "egress"):
        mo = MoHandler(pool, pipeline, notify=notify)
        options = ConnectorOptions(
            response_timeout=settings.vendor_timeout, lease=settings.vendor_lease,
            reconnect_cap=min(30.0, settings.vendor_lease),
        )
        # with_cascade: this writer also re-applies early receipts, Viber status reports included
        connectors = Connectors(pool, redis, on_change=with_cascade(status_many_hook(notify, outbox)),
                                mo=mo, options=options)
        pipeline.add_listener(connectors.notify)
        services.append(connectors)
    if ingress is not None:
        services.append(ingress)
    return services
