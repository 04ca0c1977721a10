"""One SMPP session as a state machine with no I/O (sans-I/O, like h11).

The adapter feeds received octets to :meth:`Session.receive_data` and gets
:class:`Event` objects back; it hands PDUs to :meth:`Session.send` and
writes the octets returned. Replies the session makes on its own
(``enquire_link_resp``, ``generic_nack``, error responses to requests that
are not allowed) and keep-alive ``enquire_link`` requests collect in
:meth:`Session.data_to_send`. Time is whatever ``now`` the adapter passes in
(a monotonic clock in production, plain numbers in tests).

What may be sent in which state is data (:data:`SENDS` and
:data:`TRANSITIONS`), after SMPP 3.4 §2.3 and §2.4. A PDU this side may not
send raises :class:`~smpp.errors.LocalProtocolError`; one the peer may not
send is answered with ``ESME_RINVBNDSTS`` (``ESME_RALYBND`` for a second
bind) and reported as :class:`PeerError`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

from smpp.codec import DEFAULT_MAX_COMMAND_LENGTH, FrameReader, decode, encode
from smpp.errors import (
    BodyError,
    DecodeError,
    LocalProtocolError,
    RemoteProtocolError,
    UnknownCommandError,
)
from smpp.pdu import (
    RESPONSE_CLASS,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    CommandStatus,
    EnquireLink,
    GenericNack,
    Pdu,
)

__all__ = [
    "SENDS",
    "TRANSITIONS",
    "BadResponse",
    "BindType",
    "Event",
    "InactivityTimeout",
    "PduReceived",
    "PeerError",
    "RequestAborted",
    "RequestTimedOut",
    "ResponseReceived",
    "Role",
    "Session",
    "SessionConfig",
    "State",
    "UnbindReceived",
    "WindowFullError",
]

C = CommandId
S = CommandStatus
MAX_SEQUENCE = 0x7FFFFFFF
"""SMPP 3.4 §3.2: sequence numbers run 0x00000001..0x7FFFFFFF."""


class Role(Enum):
    """Which end of the link this session is."""

    ESME = "esme"
    SMSC = "smsc"


class State(Enum):
    """Session states of SMPP 3.4 §2.2 (plus UNBOUND after an unbind)."""

    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBOUND = "unbound"
    CLOSED = "closed"


BOUND_STATES = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})


class BindType(Enum):
    """The three binds and what they lead to."""

    TRANSMITTER = "transmitter"
    RECEIVER = "receiver"
    TRANSCEIVER = "transceiver"

    @property
    def request_class(self) -> type[Pdu]:
        return _BIND_CLASS[self]

    @property
    def state(self) -> State:
        return _BIND_STATE[self]

    @property
    def can_submit(self) -> bool:
        """The ESME may send submit_sm and friends on this bind."""
        return self is not BindType.RECEIVER

    @property
    def can_receive(self) -> bool:
        """The SMSC may send deliver_sm on this bind."""
        return self is not BindType.TRANSMITTER

    @classmethod
    def of(cls, command_id: int) -> BindType:
        """The bind type of a bind request or response command id."""
        return _BIND_OF[command_id & 0x7FFFFFFF]


_BIND_CLASS: dict[BindType, type[Pdu]] = {
    BindType.TRANSMITTER: BindTransmitter,
    BindType.RECEIVER: BindReceiver,
    BindType.TRANSCEIVER: BindTransceiver,
}
_BIND_STATE = {
    BindType.TRANSMITTER: State.BOUND_TX,
    BindType.RECEIVER: State.BOUND_RX,
    BindType.TRANSCEIVER: State.BOUND_TRX,
}
_BIND_OF = {
    C.BIND_TRANSMITTER: BindType.TRANSMITTER,
    C.BIND_RECEIVER: BindType.RECEIVER,
    C.BIND_TRANSCEIVER: BindType.TRANSCEIVER,
}
BIND_REQUESTS = frozenset(_BIND_OF)

# --- the tables -------------------------------------------------------------------

# Requests each role may send, by state (SMPP 3.4 §2.3 Table 2-1). What one role
# may receive is what the other may send. enquire_link is also allowed while
# OPEN: SMPP 5.0 §2.4 permits it and answering it costs nothing.
_ESME_TX = {C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM}
_SMSC_RX = {C.DELIVER_SM, C.DATA_SM, C.ALERT_NOTIFICATION}
_LINK = {C.ENQUIRE_LINK, C.UNBIND}

SENDS: dict[Role, dict[State, frozenset[int]]] = {
    Role.ESME: {
        State.OPEN: frozenset({*BIND_REQUESTS, C.ENQUIRE_LINK}),
        State.BOUND_TX: frozenset(_ESME_TX | _LINK),
        State.BOUND_RX: frozenset(_LINK),
        State.BOUND_TRX: frozenset(_ESME_TX | _LINK),
        State.UNBOUND: frozenset(),
        State.CLOSED: frozenset(),
    },
    Role.SMSC: {
        State.OPEN: frozenset({C.OUTBIND, C.ENQUIRE_LINK}),
        State.BOUND_TX: frozenset(_LINK),
        State.BOUND_RX: frozenset(_SMSC_RX | _LINK),
        State.BOUND_TRX: frozenset(_SMSC_RX | _LINK),
        State.UNBOUND: frozenset(),
        State.CLOSED: frozenset(),
    },
}
"""Role → state → request command ids that role may send."""

_PEER = {Role.ESME: Role.SMSC, Role.SMSC: Role.ESME}

_UNBINDING = {C.UNBIND: State.UNBOUND, C.UNBIND_RESP: State.UNBOUND}
TRANSITIONS: dict[State, dict[int, State]] = {
    State.OPEN: {
        C.BIND_TRANSMITTER_RESP: State.BOUND_TX,
        C.BIND_RECEIVER_RESP: State.BOUND_RX,
        C.BIND_TRANSCEIVER_RESP: State.BOUND_TRX,
    },
    State.BOUND_TX: _UNBINDING,
    State.BOUND_RX: _UNBINDING,
    State.BOUND_TRX: _UNBINDING,
    State.UNBOUND: {},
    State.CLOSED: {},
}
"""State → command id of a PDU crossing the link (either way) → next state.

Responses move the state only when their ``command_status`` is ESME_ROK;
who may send what is already settled by :data:`SENDS`.
"""

# Requests that do not take a slot of the window: the session's own
# housekeeping must never be blocked by (or block) the application's traffic.
_UNCOUNTED = frozenset({C.ENQUIRE_LINK, C.UNBIND})


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Something the adapter must act on."""


@dataclass(frozen=True, slots=True)
class PduReceived(Event):
    """A request from the peer for the application.

    Every one that takes a response (all but ``outbind`` and
    ``alert_notification``) must be answered with :meth:`Session.send`.
    """

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived(Event):
    """The peer answered one of our requests (possibly with ``generic_nack``)."""

    request: Pdu
    response: Pdu
    sent_at: float


@dataclass(frozen=True, slots=True)
class BadResponse(Event):
    """The peer answered one of our requests with a response we could not decode.

    Whether the request was carried out is unknown.
    """

    request: Pdu
    error: DecodeError


@dataclass(frozen=True, slots=True)
class RequestTimedOut(Event):
    """No response within ``response_timeout``; the outcome is unknown.

    A keep-alive ``enquire_link`` timing out means the link is dead.
    """

    request: Pdu


@dataclass(frozen=True, slots=True)
class RequestAborted(Event):
    """The connection closed before the peer answered; the outcome is unknown."""

    request: Pdu


@dataclass(frozen=True, slots=True)
class UnbindReceived(Event):
    """The peer unbound; ``unbind_resp`` is queued. Flush it, then close."""


@dataclass(frozen=True, slots=True)
class PeerError(Event):
    """The peer broke the protocol (the event form of :class:`RemoteProtocolError`).

    The session does not raise for the peer's faults: it answers them and
    carries on. ``status`` is what it answered (``None``: nothing could be
    answered). When ``fatal``, framing is lost: flush and close.
    """

    message: str
    status: int | None = None
    fatal: bool = False
    command_id: int | None = None
    sequence_number: int = 0

    def exception(self) -> RemoteProtocolError:
        """The same fault as an exception, for callers that prefer to raise."""
        return RemoteProtocolError(self.message, status=self.status, fatal=self.fatal)


@dataclass(frozen=True, slots=True)
class InactivityTimeout(Event):
    """Nothing arrived from the peer for ``inactivity_timeout`` seconds."""

    idle: float


class WindowFullError(LocalProtocolError):
    """Every window slot holds an unanswered request: wait for a response."""


# --- the session -------------------------------------------------------------------


@dataclass(slots=True)
class SessionConfig:
    """Knobs of one session. Times are seconds; ``None`` switches a timer off."""

    window: int = 10
    """Requests this side may have awaiting a response."""
    peer_window: int = 100
    """Requests the peer may have awaiting our response; more get ESME_RTHROTTLED."""
    response_timeout: float = 30.0
    enquire_link_interval: float | None = 30.0
    """Send ``enquire_link`` after this long without hearing from the peer."""
    inactivity_timeout: float | None = None
    """Report :class:`InactivityTimeout` after this long without hearing from the peer."""
    max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH


class _Pending:
    __slots__ = ("counted", "deadline", "internal", "request", "sent_at")

    def __init__(
        self, request: Pdu, sent_at: float, deadline: float, counted: bool, internal: bool
    ):
        self.request = request
        self.sent_at = sent_at
        self.deadline = deadline
        self.counted = counted
        self.internal = internal


class Session:
    """State of one SMPP connection, seen from ``role``.

    Not thread-safe; one adapter drives it. All methods taking ``now`` expect
    the same clock.
    """

    def __init__(self, role: Role, config: SessionConfig | None = None, *, now: float = 0.0):
        self.role = role
        self.config = config or SessionConfig()
        self._set_state(State.OPEN)
        self.bind_type: BindType | None = None
        """Set once bound."""
        self.bind_request: Pdu | None = None
        """The bind this session was bound with (either side)."""
        self._reader = FrameReader(self.config.max_command_length)
        self._out: list[bytes] = []
        self._pending: dict[int, _Pending] = {}
        self._outstanding = 0
        self._inbound: Counter[tuple[int, int]] = Counter()  # (seq, response id) → count
        self._inbound_total = 0
        self._seq = 0
        self._bind_pending = False
        self._keepalive_pending = False
        self._last_heard = now
        self._idle_reported = False
        self._should_close = False

    # --- properties ---

    @property
    def state(self) -> State:
        return self._state

    def _set_state(self, state: State) -> None:
        # The tables are looked up once per change of state, not once per PDU.
        self._state = state
        self._may_send = SENDS[self.role][state]
        self._may_receive = SENDS[_PEER[self.role]][state]
        self._next_state = TRANSITIONS[state]

    @property
    def is_bound(self) -> bool:
        return self._state in BOUND_STATES

    @property
    def outstanding(self) -> int:
        """Our requests (window-counted) awaiting a response."""
        return self._outstanding

    @property
    def window_free(self) -> int:
        return max(0, self.config.window - self._outstanding)

    @property
    def awaiting_our_response(self) -> int:
        """Peer requests we have not answered yet."""
        return self._inbound_total

    @property
    def should_close(self) -> bool:
        """True once the connection has no further use: flush and close it."""
        return self._should_close or self._state is State.CLOSED

    def can_send(self, command_id: int) -> bool:
        """Whether a request with ``command_id`` may be sent in the current state."""
        return command_id in self._may_send

    # --- output ---

    def data_to_send(self) -> bytes:
        """Octets the session queued on its own; empty when there are none."""
        if not self._out:
            return b""
        data = b"".join(self._out)
        self._out.clear()
        return data

    def send(self, pdu: Pdu, now: float) -> bytes:
        """Check ``pdu`` against the state, record it, and return its octets.

        Requests get the next sequence number written into
        ``pdu.sequence_number``. Responses must answer a request received
        earlier (same ``sequence_number``). Raises
        :class:`~smpp.errors.LocalProtocolError` (or :class:`WindowFullError`,
        or :class:`~smpp.errors.EncodeError`) and then changes nothing.
        """
        if self._state is State.CLOSED:
            raise LocalProtocolError("session is closed")
        if pdu.command_id & 0x80000000:
            return self._send_response(pdu)
        return self._send_request(pdu, now, internal=False)

    def _send_request(self, pdu: Pdu, now: float, internal: bool) -> bytes:
        cid = pdu.command_id
        if cid not in self._may_send:
            raise LocalProtocolError(
                f"{self.role.value} may not send {C(cid).name.lower()} in state {self.state.name}"
            )
        if cid in BIND_REQUESTS and self._bind_pending:
            raise LocalProtocolError("a bind is already awaiting its response")
        counted = cid not in _UNCOUNTED
        if counted and self._outstanding >= self.config.window:
            raise WindowFullError(f"window of {self.config.window} is full")
        seq = self._next_sequence()
        pdu.sequence_number = seq
        data = encode(pdu)
        if cid in RESPONSE_CLASS:
            self._pending[seq] = _Pending(
                pdu, now, now + self.config.response_timeout, counted, internal
            )
            if counted:
                self._outstanding += 1
        if cid in BIND_REQUESTS:
            self._bind_pending = True
            self.bind_request = pdu
        self._transition(cid)
        return data

    def _send_response(self, pdu: Pdu) -> bytes:
        cid = pdu.command_id
        key = (pdu.sequence_number, cid)
        if cid == C.GENERIC_NACK:
            key = next((k for k in self._inbound if k[0] == pdu.sequence_number), key)
        elif not self._inbound.get(key):
            raise LocalProtocolError(
                f"no {C(cid & 0x7FFFFFFF).name.lower()} #{pdu.sequence_number} awaits an answer"
            )
        data = encode(pdu)
        count = self._inbound.get(key, 0)
        if count > 1:
            self._inbound[key] = count - 1
        elif count:
            del self._inbound[key]
        if count:
            self._inbound_total -= 1
        if cid & 0x7FFFFFFF in BIND_REQUESTS:
            self._bind_pending = False
        if cid == C.GENERIC_NACK and key[1] & 0x7FFFFFFF in BIND_REQUESTS:
            self._bind_pending = False
        if pdu.command_status == S.ESME_ROK:
            self._transition(cid)
        return data

    def _transition(self, cid: int) -> None:
        nxt = self._next_state.get(cid)
        if nxt is None:
            return
        if nxt in BOUND_STATES:
            self.bind_type = BindType.of(cid)
        self._set_state(nxt)

    def _next_sequence(self) -> int:
        seq = self._seq
        while True:
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
            if seq not in self._pending:
                self._seq = seq
                return seq

    def _answer(self, request_id: int, seq: int, status: int) -> bool:
        """Queue the response to a request we refuse; False if it takes none."""
        cls = RESPONSE_CLASS.get(request_id)
        if cls is None:
            return False
        self._out.append(encode(cls(sequence_number=seq, command_status=status)))
        return True

    # --- input ---

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed octets received from the peer; return what they mean, in order."""
        if self._state is State.CLOSED or self._reader.error is not None:
            return []
        self._last_heard = now
        self._idle_reported = False
        events: list[Event] = []
        for frame in self._reader.feed(data):
            self._receive_frame(frame, events)
        err = self._reader.error
        if err is not None:
            # SMPP 3.4 §2.6: framing is lost; answer generic_nack and close.
            self._out.append(
                encode(GenericNack(sequence_number=err.sequence_number, command_status=err.status))
            )
            self._should_close = True
            events.append(
                PeerError(str(err), err.status, True, err.command_id, err.sequence_number)
            )
        return events

    def _receive_frame(self, frame: bytes, events: list[Event]) -> None:
        try:
            pdu = decode(frame)
        except UnknownCommandError as err:
            self._out.append(
                encode(GenericNack(sequence_number=err.sequence_number, command_status=err.status))
            )
            events.append(
                PeerError(str(err), err.status, False, err.command_id, err.sequence_number)
            )
            return
        except BodyError as err:
            self._receive_bad_body(err, events)
            return
        cid = pdu.command_id
        if cid & 0x80000000:
            self._receive_response(pdu, events)
        else:
            self._receive_request(pdu, events)

    def _receive_bad_body(self, err: BodyError, events: list[Event]) -> None:
        cid = err.command_id or 0
        seq = err.sequence_number
        if cid & 0x80000000:
            pending = self._pending.get(seq)
            if pending is not None and pending.request.command_id | 0x80000000 == cid:
                self._finish(seq)
                events.append(BadResponse(pending.request, err))
            else:
                events.append(PeerError(str(err), None, False, cid, seq))
            return
        answered = self._answer(cid, seq, err.status)
        events.append(PeerError(str(err), err.status if answered else None, False, cid, seq))

    def _receive_response(self, pdu: Pdu, events: list[Event]) -> None:
        cid = pdu.command_id
        seq = pdu.sequence_number
        pending = self._pending.get(seq)
        if pending is None or (
            cid != pending.request.command_id | 0x80000000 and cid != C.GENERIC_NACK
        ):
            events.append(
                PeerError(f"unexpected {C(cid).name.lower()} #{seq}", None, False, cid, seq)
            )
            return
        self._finish(seq)
        request_id = pending.request.command_id
        if pdu.command_status == S.ESME_ROK:
            self._transition(cid)
        if request_id == C.UNBIND:
            self._should_close = True
        if pending.internal:
            return
        events.append(ResponseReceived(pending.request, pdu, pending.sent_at))

    def _finish(self, seq: int) -> _Pending:
        pending = self._pending.pop(seq)
        if pending.counted:
            self._outstanding -= 1
        cid = pending.request.command_id
        if cid in BIND_REQUESTS:
            self._bind_pending = False
        elif cid == C.ENQUIRE_LINK and pending.internal:
            self._keepalive_pending = False
        return pending

    def _receive_request(self, pdu: Pdu, events: list[Event]) -> None:
        cid = pdu.command_id
        seq = pdu.sequence_number
        if cid == C.ENQUIRE_LINK:
            # SMPP 3.4 §4.11: answer at once, whatever else is going on.
            self._out.append(encode(pdu.make_response()))
            return
        if cid in BIND_REQUESTS and (self.is_bound or self._bind_pending):
            self._answer(cid, seq, S.ESME_RALYBND)
            events.append(PeerError("already bound", S.ESME_RALYBND, False, cid, seq))
            return
        if cid not in self._may_receive:
            status = S.ESME_RINVBNDSTS
            answered = self._answer(cid, seq, status)
            events.append(
                PeerError(
                    f"{C(cid).name.lower()} not allowed in {self.state.name}",
                    status if answered else None,
                    False,
                    cid,
                    seq,
                )
            )
            return
        if cid == C.UNBIND:
            # SMPP 3.4 §4.2: answer, then the initiator closes the connection.
            self._out.append(encode(pdu.make_response()))
            self._transition(cid)
            self._should_close = True
            events.append(UnbindReceived())
            return
        response_id = cid | 0x80000000
        if cid in RESPONSE_CLASS:
            if self._inbound_total >= self.config.peer_window:
                self._answer(cid, seq, S.ESME_RTHROTTLED)
                events.append(PeerError("peer window exceeded", S.ESME_RTHROTTLED, False, cid, seq))
                return
            self._inbound[(seq, response_id)] += 1
            self._inbound_total += 1
        if cid in BIND_REQUESTS:
            self._bind_pending = True
            self.bind_request = pdu
        events.append(PduReceived(pdu))

    # --- time ---

    def tick(self, now: float) -> list[Event]:
        """Run the timers: response timeouts, keep-alive, inactivity.

        Keep-alive requests go to :meth:`data_to_send`.
        """
        events: list[Event] = []
        if self._state is State.CLOSED:
            return events
        # Deadlines grow with send time, so the dict (insertion order) is sorted.
        while self._pending:
            seq, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                break
            self._finish(seq)
            events.append(RequestTimedOut(pending.request))
        idle = now - self._last_heard
        cfg = self.config
        if (
            cfg.enquire_link_interval is not None
            and idle >= cfg.enquire_link_interval
            and not self._keepalive_pending
            and self.is_bound
        ):
            self._out.append(self._send_request(EnquireLink(), now, internal=True))
            self._keepalive_pending = True
        if (
            cfg.inactivity_timeout is not None
            and idle >= cfg.inactivity_timeout
            and not self._idle_reported
        ):
            self._idle_reported = True
            events.append(InactivityTimeout(idle))
        return events

    def next_deadline(self) -> float | None:
        """The earliest ``now`` at which :meth:`tick` has something to do."""
        candidates: list[float] = []
        if self._pending:
            candidates.append(next(iter(self._pending.values())).deadline)
        cfg = self.config
        if cfg.enquire_link_interval is not None and self.is_bound and not self._keepalive_pending:
            candidates.append(self._last_heard + cfg.enquire_link_interval)
        if cfg.inactivity_timeout is not None and not self._idle_reported:
            candidates.append(self._last_heard + cfg.inactivity_timeout)
        return min(candidates) if candidates else None

    def connection_lost(self) -> list[Event]:
        """The transport closed: every unanswered request ends with an unknown outcome."""
        events: list[Event] = [
            RequestAborted(p.request) for p in self._pending.values() if not p.internal
        ]
        self._pending.clear()
        self._outstanding = 0
        self._inbound.clear()
        self._inbound_total = 0
        self._bind_pending = False
        self._keepalive_pending = False
        self._set_state(State.CLOSED)
        return events

    def pending_requests(self) -> list[Pdu]:
        """Our requests awaiting a response, oldest first."""
        return [p.request for p in self._pending.values() if not p.internal]

    def __repr__(self) -> str:
        return (
            f"<Session {self.role.value} {self.state.name} outstanding={self._outstanding}"
            f" inbound={self.awaiting_our_response}>"
        )
