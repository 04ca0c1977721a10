"""A carrier (SMSC) simulator: Herald's stand-in vendor for tests, benches and demos.

:class:`CarrierSimulator` is an SMPP server (:mod:`smpp.server`) that accepts
binds, answers ``submit_sm`` with message ids and, after ``receipt_delay``
seconds, sends a delivery receipt (SMPP 3.4 Appendix B text, with the
``receipted_message_id`` and ``message_state`` TLVs of §5.3.2.12/§5.3.2.35)
whose outcome is drawn from the configured ratios. It misbehaves on request:
a share of submits answered ``ESME_RTHROTTLED``, the connection dropped after
every N submits, a silent period (:meth:`CarrierSimulator.go_silent`) where
submits get no answer at all. It sends MO messages (:meth:`send_mo`, split into
concatenated parts when long) and counts everything it saw (:class:`Counters`).

Receipts whose account has no receiver bound wait and go out on the next
bind, like a real SMSC's store and forward: a test may disconnect Herald and
still expect every receipt.

Use in process::

    sim = CarrierSimulator(SimConfig(receipt_delay=0.05, undelivered=0.1))
    await sim.start()            # sim.port
    ...
    sim.counters.submits, sim.received          # what arrived
    await sim.send_mo("79161234567", "Herald", "STOP")
    await sim.stop()

From the shell: ``herald smsc-sim --port 2775 --delay 1 --undelivered 0.1``.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import itertools
import logging
import random
import secrets
import time
from collections import Counter, deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from smpp.encoding import decode
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
    SubmitMulti,
    SubmitSm,
    Tag,
)
from smpp.receipts import build_receipt
from smpp.results import Outcome
from smpp.segments import split_message
from smpp.server import (
    BindRequest,
    BindResult,
    ServerConfig,
    ServerHandler,
    ServerSession,
    SmppServer,
)
from smpp.session import SessionConfig
from smpp.udh import parse_udh

log = logging.getLogger("herald.simulator")
S = CommandStatus


@dataclass(slots=True)
class SimConfig:
    """How the simulated carrier behaves. Ratios are shares of accepted submits."""

    receipt_delay: float = 1.0
    delivered: float = 1.0
    undelivered: float = 0.0
    expired: float = 0.0
    throttle_ratio: float = 0.0       # share of submits answered ESME_RTHROTTLED
    reject_ratio: float = 0.0         # share answered ESME_RSUBMITFAIL (permanent)
    disconnect_every: int = 0         # drop the connection after every N submits (0: never)
    accounts: dict[str, str] | None = None   # system_id → password; None accepts anyone
    window: int = 100                 # deliver_sm in flight per session
    seed: int | None = None
    system_id: str = "SIMSC"


@dataclass(slots=True)
class Counters:
    binds: int = 0
    bind_failures: int = 0
    submits: int = 0
    accepted: int = 0
    throttled: int = 0
    rejected: int = 0
    disconnects: int = 0
    receipts_sent: int = 0
    receipts_acked: int = 0
    receipt_retries: int = 0
    mo_sent: int = 0
    mo_acked: int = 0
    outcomes: Counter = field(default_factory=Counter)


@dataclass(frozen=True, slots=True)
class Received:
    """One submit the simulator accepted."""

    message_id: str
    source: str
    destination: str
    text: str
    registered_delivery: int
    account: str
    at: float
    short_message: bytes = b""  # as it came (UDH included), for tests that check octets
    data_coding: int = 0
    esm_class: int = 0


_STATES = (MessageState.DELIVERED, MessageState.UNDELIVERABLE, MessageState.EXPIRED)
_STATE_NAMES = {state: state.name for state in MessageState}
_FIRST_RETRY = 0.2     # seconds before a refused receipt is offered again; doubles each time
_LAST_RETRY = 5.0


def short_text(pdu: SubmitSm | DataSm) -> str:
    """The text of a submit: its ``short_message`` (or ``message_payload``) without UDH."""
    data = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b""
    if pdu.esm_class & EsmClass.UDHI and data:
        try:
            data = parse_udh(bytes(data)).payload
        except ValueError:
            pass
    return decode(bytes(data), pdu.data_coding)


def _receipt_error(state: MessageState) -> int:
    return 0 if state == MessageState.DELIVERED else 1


def _receipt_parts(now: datetime, state: MessageState) -> tuple[str, str] | tuple[()]:
    """The receipt text before and after its message id, or () when the id is not
    written verbatim in one place (then each receipt is built whole)."""
    def build(message_id: str) -> str:
        return build_receipt(message_id, state, submit_date=now, done_date=now,
                             error=_receipt_error(state))

    probe = "0123456789abcdef"
    parts = build(probe).split(probe)
    if len(parts) != 2 or build("f0e1") != parts[0] + "f0e1" + parts[1]:
        return ()
    return parts[0], parts[1]


class CarrierSimulator(ServerHandler):
    """The simulated SMSC (see the module doc)."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self.counters = Counters()
        self.received: list[Received] = []
        self.rng = random.Random(self.config.seed)
        self._id_base = secrets.randbits(40) << 20
        self._ids = itertools.count(1)
        self._mo_refs = itertools.count(1)
        self._silent: asyncio.Event | None = None
        self._pending: dict[Hashable, list[DeliverSm]] = {}   # account → receipts waiting for a bind
        self._tasks: set[asyncio.Task[Any]] = set()
        # Receipts not yet due (first sending or a retry), earliest first, behind one
        # timer: (due, order, account, receipt, backoff for its next retry).
        self._due: list[tuple[float, int, Hashable, DeliverSm, float]] = []
        self._due_order = itertools.count()
        self._due_timer: asyncio.TimerHandle | None = None
        self._due_at = 0.0
        # Receipts due now, per account, and how many sender tasks work on each queue:
        # at most a window's worth per bound session, so none waits long for a slot.
        self._outbox: dict[Hashable, deque[tuple[DeliverSm, float]]] = {}
        self._senders: Counter = Counter()
        self._idle: dict[Hashable, deque[asyncio.Future[None]]] = {}   # senders waiting for work
        self._receipt_parts: dict[tuple[int, MessageState], tuple[str, str] | tuple[()]] = {}
        self._per_session: Counter = Counter()
        session = SessionConfig(window=self.config.window, peer_window=1000,
                                enquire_link_interval=30.0, response_timeout=10.0)
        self.server = SmppServer(self, ServerConfig(system_id=self.config.system_id, session=session,
                                                    tick_interval=0.2))

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        await self.server.start(host, port)

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        if self._due_timer is not None:
            self._due_timer.cancel()
            self._due_timer = None
        for task in list(self._tasks):
            task.cancel()
        if self._silent is not None:
            self._silent.set()
        await self.server.close(grace=1.0)

    # -- misbehaviour on demand ---------------------------------------------------------

    def go_silent(self) -> None:
        """Stop answering submits (they hang) until :meth:`speak`."""
        if self._silent is None:
            self._silent = asyncio.Event()

    def speak(self) -> None:
        if self._silent is not None:
            self._silent.set()
            self._silent = None

    def disconnect_all(self) -> int:
        """Drop every connection at once (no unbind); how many were dropped."""
        conns = self.server.connections
        for conn in conns:
            conn.abort()
        self.counters.disconnects += len(conns)
        return len(conns)

    # -- ServerHandler --------------------------------------------------------------------

    async def authenticate(self, request: BindRequest) -> BindResult:
        accounts = self.config.accounts
        if accounts is not None and accounts.get(request.system_id) != request.password:
            self.counters.bind_failures += 1
            return BindResult.reject(S.ESME_RINVPASWD)
        self.counters.binds += 1
        return BindResult.accept(request.system_id)

    async def session_bound(self, session: ServerSession) -> None:
        for pdu in self._pending.pop(session.account_key, []):
            self._offer(session.account_key, pdu, _FIRST_RETRY)

    async def handle_request(self, session: ServerSession, pdu: Pdu) -> Any:
        if type(pdu) is not SubmitSm:  # the common case skips the checks
            if isinstance(pdu, QuerySm):
                return QuerySmResp(message_id=pdu.message_id, message_state=MessageState.ENROUTE)
            if isinstance(pdu, CancelSm):
                return S.ESME_RCANCELFAIL
            if not isinstance(pdu, SubmitSm | DataSm) or isinstance(pdu, SubmitMulti):
                return S.ESME_RINVCMDID
        self.counters.submits += 1
        silent = self._silent
        if silent is not None:
            await silent.wait()
            return S.ESME_RSYSERR if self._silent is not None else S.ESME_RTHROTTLED
        every = self.config.disconnect_every
        if every:
            self._per_session[session.id] += 1
            if self._per_session[session.id] % every == 0:
                # Drop the link without answering this submit: the client sees UNKNOWN.
                self.counters.disconnects += 1
                session.abort()
                return S.ESME_RSYSERR
        roll = self.rng.random()
        if roll < self.config.throttle_ratio:
            self.counters.throttled += 1
            return S.ESME_RTHROTTLED
        if roll < self.config.throttle_ratio + self.config.reject_ratio:
            self.counters.rejected += 1
            return S.ESME_RSUBMITFAIL
        message_id = f"{self._id_base + next(self._ids):x}"
        self.counters.accepted += 1
        now = asyncio.get_running_loop().time()
        self.received.append(Received(
            message_id, pdu.source_addr, pdu.destination_addr, short_text(pdu),
            pdu.registered_delivery, str(session.account_key), now,
            bytes(getattr(pdu, "short_message", b"") or pdu.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")),
            pdu.data_coding, pdu.esm_class))
        if pdu.registered_delivery & 0x03:
            self._schedule(now + self.config.receipt_delay, session.account_key,
                           self._receipt(message_id, pdu), _FIRST_RETRY)
        return message_id

    # -- receipts and MO ------------------------------------------------------------------

    def _state(self) -> MessageState:
        # The draw random.choices(_STATES, weights) makes (one random() against the
        # cumulative weights), written out: the same outcomes for the same seed.
        c = self.config
        delivered, undelivered = max(c.delivered, 0.0), max(c.undelivered, 0.0)
        total = delivered + undelivered + max(c.expired, 0.0)
        if not total:
            return MessageState.DELIVERED
        x = self.rng.random() * total
        if x < delivered:
            return _STATES[0]
        return _STATES[1] if x < delivered + undelivered else _STATES[2]

    def _receipt(self, message_id: str, pdu: SubmitSm | DataSm) -> DeliverSm:
        state = self._state()
        self.counters.outcomes[_STATE_NAMES[state]] += 1
        text = self._receipt_text(message_id, state)
        return DeliverSm(
            source_addr=pdu.destination_addr, destination_addr=pdu.source_addr,
            esm_class=EsmClass.TYPE_DELIVERY_RECEIPT, short_message=text.encode("ascii"),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: message_id, Tag.MESSAGE_STATE: int(state)},
        )

    def _receipt_text(self, message_id: str, state: MessageState) -> str:
        """``build_receipt`` of ``message_id`` with both dates now.

        The text only changes with the minute (the dates' resolution) and the
        state, so it is built once per both with the id left out, and the id
        put in per receipt.
        """
        ts = time.time()
        key = (int(ts // 60), state)
        parts = self._receipt_parts.get(key)
        if parts is None:
            if len(self._receipt_parts) > 16:
                self._receipt_parts.clear()   # minutes gone by
            parts = self._receipt_parts[key] = _receipt_parts(datetime.fromtimestamp(ts), state)
        if not parts:
            now = datetime.fromtimestamp(ts)
            return build_receipt(message_id, state, submit_date=now, done_date=now,
                                 error=_receipt_error(state))
        return parts[0] + message_id + parts[1]

    def _schedule(self, due: float, account: Hashable, pdu: DeliverSm, backoff: float) -> None:
        """Offer ``pdu`` to ``account`` at loop time ``due``."""
        heapq.heappush(self._due, (due, next(self._due_order), account, pdu, backoff))
        if self._due_timer is None or due < self._due_at:
            self._arm(due)

    def _arm(self, due: float) -> None:
        if self._due_timer is not None:
            self._due_timer.cancel()
        self._due_at = due
        self._due_timer = asyncio.get_running_loop().call_at(due, self._on_due)

    def _on_due(self) -> None:
        self._due_timer = None
        due = self._due
        # Within a millisecond counts as due: the loop may wake that early.
        now = asyncio.get_running_loop().time() + 0.001
        while due and due[0][0] <= now:
            _at, _order, account, pdu, backoff = heapq.heappop(due)
            self._offer(account, pdu, backoff)
        if due:
            self._arm(due[0][0])

    def _offer(self, account: Hashable, pdu: DeliverSm, backoff: float) -> None:
        """Queue a due receipt; wake an idle sender, or start one if the account has room."""
        queue = self._outbox.get(account)
        if queue is None:
            queue = self._outbox[account] = deque()
            self._idle[account] = deque()
        queue.append((pdu, backoff))
        idle = self._idle[account]
        while idle:
            waiter = idle.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        if self._senders[account] < self.config.window * max(1, len(self.server.sessions(account))):
            self._senders[account] += 1
            self._spawn(self._send_receipts(account, queue, idle))

    async def _send_receipts(
        self,
        account: Hashable,
        queue: deque[tuple[DeliverSm, float]],
        idle: deque[asyncio.Future[None]],
    ) -> None:
        """Send an account's due receipts one at a time; wait for more when none is due.

        An account gets up to a window's worth of these per bound session, so a
        receipt rarely waits for a window slot, and no task is made per receipt.
        """
        loop = asyncio.get_running_loop()
        try:
            while True:
                while queue:
                    pdu, backoff = queue.popleft()
                    result = await self.server.deliver(account, pdu)
                    if result.outcome is Outcome.ACCEPTED:
                        self.counters.receipts_sent += 1
                        self.counters.receipts_acked += 1
                    elif result.outcome is Outcome.NOT_SENT and not self.server.sessions(account):
                        self._pending.setdefault(account, []).append(pdu)  # sent on the next bind
                    else:
                        # Refused (temporary error) or lost on a dropped link: offer it
                        # again later, backing off.
                        self.counters.receipts_sent += 1
                        self.counters.receipt_retries += 1
                        self._schedule(loop.time() + backoff, account, pdu,
                                       min(backoff * 2, _LAST_RETRY))
                waiter = loop.create_future()
                idle.append(waiter)
                await waiter
        finally:
            self._senders[account] -= 1

    async def send_mo(
        self, source: str, destination: str, text: str, *, account: str | None = None,
    ) -> list[Outcome]:
        """Send an MO from ``source`` to ``destination`` (split into UDH parts when long).

        Goes to ``account`` or, when None, to the first bound account. One outcome per part.
        """
        key = account
        if key is None:
            bound = [s.account_key for s in self.server.connections if s.can_deliver]
            if not bound:
                return [Outcome.NOT_SENT]
            key = bound[0]
        split = split_message(text, reference=next(self._mo_refs) % 256)
        outcomes = []
        for segment in split.segments:
            pdu = DeliverSm(
                source_addr=source, destination_addr=destination, data_coding=split.data_coding,
                esm_class=EsmClass.UDHI if segment.udhi else 0, short_message=segment.short_message,
            )
            result = await self.server.deliver(key, pdu)
            self.counters.mo_sent += 1
            if result.outcome is Outcome.ACCEPTED:
                self.counters.mo_acked += 1
            outcomes.append(result.outcome)
        return outcomes

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


# -- herald smsc-sim ------------------------------------------------------------------------


def _add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2776)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds before a receipt")
    parser.add_argument("--delivered", type=float, default=1.0, help="weight of DELIVRD receipts")
    parser.add_argument("--undelivered", type=float, default=0.0, help="weight of UNDELIV receipts")
    parser.add_argument("--expired", type=float, default=0.0, help="weight of EXPIRED receipts")
    parser.add_argument("--throttle", type=float, default=0.0, help="share answered ESME_RTHROTTLED")
    parser.add_argument("--disconnect-every", type=int, default=0, help="drop the link every N submits")
    parser.add_argument("--account", action="append", default=[], metavar="SYSTEM_ID:PASSWORD",
                        help="accept only these accounts (repeatable); default accepts anyone")
    parser.add_argument("--mo-every", type=float, default=0.0,
                        help="send an MO 'STOP' from a recent recipient every N seconds")


def _run(args: argparse.Namespace) -> None:
    accounts = dict(a.split(":", 1) for a in args.account) if args.account else None
    config = SimConfig(receipt_delay=args.delay, delivered=args.delivered, undelivered=args.undelivered,
                       expired=args.expired, throttle_ratio=args.throttle,
                       disconnect_every=args.disconnect_every, accounts=accounts)

    async def main() -> None:
        sim = CarrierSimulator(config)
        await sim.start(args.host, args.port)
        print(f"smsc-sim listening on {args.host}:{sim.port}", flush=True)
        last = 0.0
        try:
            while True:
                await asyncio.sleep(1.0)
                last += 1.0
                if args.mo_every and last >= args.mo_every and sim.received:
                    last = 0.0
                    recent = sim.received[-1]
                    await sim.send_mo(recent.destination, recent.source, "STOP")
                c = sim.counters
                print(f"binds={c.binds} submits={c.submits} accepted={c.accepted} "
                      f"throttled={c.throttled} receipts={c.receipts_acked} mo={c.mo_acked}", flush=True)
        finally:
            await sim.stop()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def cli_command() -> tuple[str, Any, Any]:
    """``herald smsc-sim``: (help, add_args(parser), func(args)) for gateway.runtime.cli."""
    return "run the SMPP carrier simulator", _add_args, _run
