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
import itertools
import logging
import random
import secrets
from collections import Counter
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


_STATES = (MessageState.DELIVERED, MessageState.UNDELIVERABLE, MessageState.EXPIRED)


def short_text(pdu: SubmitSm | DataSm) -> str:
    """The text of a submit: its ``short_message`` (or ``message_payload``) without UDH."""
    data = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD) or getattr(pdu, "short_message", b"") or b""
    if pdu.esm_class & EsmClass.UDHI and data:
        try:
            data = parse_udh(bytes(data)).payload
        except ValueError:
            pass
    return decode(bytes(data), pdu.data_coding)


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
        self._pending: dict[str, list[DeliverSm]] = {}   # account → receipts waiting for a bind
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: dict[int, asyncio.TimerHandle] = {}   # receipts not yet due
        self._ids_timers = itertools.count()
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
        for timer in self._timers.values():
            timer.cancel()
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
        waiting = self._pending.pop(session.account_key, [])
        for pdu in waiting:
            self._spawn(self._send_receipt(session.account_key, pdu))

    async def handle_request(self, session: ServerSession, pdu: Pdu) -> Any:
        if isinstance(pdu, QuerySm):
            return QuerySmResp(message_id=pdu.message_id, message_state=MessageState.ENROUTE)
        if isinstance(pdu, CancelSm):
            return S.ESME_RCANCELFAIL
        if not isinstance(pdu, SubmitSm | DataSm | SubmitMulti):
            return S.ESME_RINVCMDID
        if isinstance(pdu, SubmitMulti):
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
        loop = asyncio.get_running_loop()
        self.received.append(Received(
            message_id, pdu.source_addr, pdu.destination_addr, short_text(pdu),
            pdu.registered_delivery, str(session.account_key), loop.time()))
        if pdu.registered_delivery & 0x03:
            receipt = self._receipt(message_id, pdu)
            key = next(self._ids_timers)
            self._timers[key] = loop.call_later(self.config.receipt_delay, self._receipt_due,
                                                key, session.account_key, receipt)
        return message_id

    # -- receipts and MO ------------------------------------------------------------------

    def _state(self) -> MessageState:
        c = self.config
        weights = [max(c.delivered, 0.0), max(c.undelivered, 0.0), max(c.expired, 0.0)]
        if not sum(weights):
            return MessageState.DELIVERED
        return self.rng.choices(_STATES, weights)[0]

    def _receipt(self, message_id: str, pdu: SubmitSm | DataSm) -> DeliverSm:
        state = self._state()
        self.counters.outcomes[state.name] += 1
        now = datetime.now()
        text = build_receipt(message_id, state, submit_date=now, done_date=now,
                             error=0 if state == MessageState.DELIVERED else 1)
        return DeliverSm(
            source_addr=pdu.destination_addr, destination_addr=pdu.source_addr,
            esm_class=EsmClass.TYPE_DELIVERY_RECEIPT, short_message=text.encode("ascii"),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: message_id, Tag.MESSAGE_STATE: int(state)},
        )

    async def _send_receipt(self, account: Any, pdu: DeliverSm) -> None:
        delay = 0.2
        while True:
            result = await self.server.deliver(account, pdu)
            if result.outcome is Outcome.ACCEPTED:
                self.counters.receipts_sent += 1
                self.counters.receipts_acked += 1
                return
            if result.outcome is Outcome.NOT_SENT and not self.server.sessions(account):
                self._pending.setdefault(account, []).append(pdu)  # sent on the next bind
                return
            # Refused (temporary error) or lost on a dropped link: try again, backing off.
            self.counters.receipts_sent += 1
            self.counters.receipt_retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

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

    def _receipt_due(self, key: int, account: Any, pdu: DeliverSm) -> None:
        self._timers.pop(key, None)
        self._spawn(self._send_receipt(account, pdu))

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
    """``herald smsc-sim``: (help, add_args(parser), func(args)) for gateway.cli."""
    return "run the SMPP carrier simulator", _add_args, _run
