"""SMSC side: an asyncio server hosting many SMPP sessions.

The embedder subclasses :class:`ServerHandler` and decides everything that
matters: who may bind (:meth:`ServerHandler.authenticate`), what answer a
``submit_sm`` and friends get (:meth:`ServerHandler.handle_request`). The
server does the protocol: binds, windows, keep-alive, throttling, and
pushing ``deliver_sm`` (receipts, MO) to a bound receiver or transceiver of
an account with :meth:`SmppServer.deliver`.

A handler may answer through :meth:`ServerHandler.handle_request_soon` (a
future of the reply instead of a coroutine: no task per request), and many
``deliver_sm`` can be written with :meth:`SmppServer.start_deliver` and their
outcomes awaited together.

Each connection is isolated: a handler that raises is logged with the
connection id and the peer gets ``ESME_RSYSERR``; a peer that sends garbage
is answered (or, when framing is lost, disconnected) alone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Hashable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from smpp.connection import Connection
from smpp.errors import EncodeError, LocalProtocolError, SmppError
from smpp.pdu import (
    INTERFACE_VERSION,
    CommandStatus,
    Pdu,
    Tag,
    Unbind,
    command_name,
    status_name,
)
from smpp.ratelimit import TokenBucket
from smpp.results import Outcome, RequestResult
from smpp.session import BIND_REQUESTS, BindType, Role, SessionConfig, State

__all__ = [
    "BindRequest",
    "BindResult",
    "Reply",
    "ServerConfig",
    "ServerHandler",
    "ServerSession",
    "SmppServer",
]

log = logging.getLogger("smpp.server")
S = CommandStatus

Reply = Pdu | str | int | None
"""What :meth:`ServerHandler.handle_request` returns: a full response PDU, a
``message_id`` (accepted; ignored by responses without one), a
``command_status`` (refused) or ``None`` (accepted, empty response)."""


@dataclass(frozen=True, slots=True)
class BindRequest:
    """A bind as the embedder sees it."""

    system_id: str
    password: str
    system_type: str
    bind_type: BindType
    peer: tuple[str, int] | None
    connection_id: str
    interface_version: int
    address_range: str
    pdu: Pdu


@dataclass(frozen=True, slots=True)
class BindResult:
    """The embedder's verdict on a bind.

    ``account`` is opaque to the server and handed back on every callback;
    ``account_key`` groups sessions for :meth:`SmppServer.deliver` and the
    account throughput limit (default: the ``system_id``). ``session_tps`` /
    ``account_tps`` override the server defaults for this bind.
    """

    status: int = S.ESME_ROK
    account: Any = None
    account_key: Hashable | None = None
    session_tps: float | None = None
    account_tps: float | None = None

    @classmethod
    def accept(
        cls,
        account: Any = None,
        *,
        key: Hashable | None = None,
        session_tps: float | None = None,
        account_tps: float | None = None,
    ) -> BindResult:
        return cls(S.ESME_ROK, account, key, session_tps, account_tps)

    @classmethod
    def reject(cls, status: int = S.ESME_RBINDFAIL) -> BindResult:
        if status == S.ESME_ROK:
            raise ValueError("a rejection needs an error status")
        return cls(status)


class ServerHandler:
    """What the embedder plugs into :class:`SmppServer`. Override the methods."""

    async def authenticate(self, request: BindRequest) -> BindResult:
        """Accept or refuse a bind. The default refuses everyone."""
        return BindResult.reject(S.ESME_RBINDFAIL)

    async def handle_request(self, session: ServerSession, pdu: Pdu) -> Reply:
        """Answer ``submit_sm``, ``submit_multi``, ``data_sm``, ``query_sm``,
        ``cancel_sm`` or ``replace_sm``. The default refuses with ESME_RSYSERR.

        Many calls run at once for one session (up to its peer window);
        responses go out in the order they complete.
        """
        return S.ESME_RSYSERR

    def handle_request_soon(self, session: ServerSession, pdu: Pdu) -> asyncio.Future[Reply] | None:
        """Optional fast path for :meth:`handle_request`: a future of the same reply.

        A request answered this way costs no task. Return ``None`` to have
        :meth:`handle_request` run instead. Whatever the path, the peer gets the
        same answer: a future that fails is answered ``ESME_RSYSERR``.
        """
        return None

    async def session_bound(self, session: ServerSession) -> None:
        """A session has just been bound."""

    async def session_closed(self, session: ServerSession) -> None:
        """A session (bound or not) has closed."""


@dataclass(slots=True)
class ServerConfig:
    """Server-wide settings."""

    system_id: str = "SMSC"
    """Our ``system_id`` in bind responses."""
    session: SessionConfig = field(
        default_factory=lambda: SessionConfig(
            window=10, peer_window=100, enquire_link_interval=60.0, response_timeout=30.0
        )
    )
    bind_timeout: float = 30.0
    """Close connections that have not bound after this many seconds."""
    session_tps: float | None = None
    """Default requests per second per session (``None``: unlimited)."""
    account_tps: float | None = None
    """Default requests per second per account, over all its sessions."""
    close_on_bind_failure: bool = True
    tick_interval: float = 1.0
    """Longest sleep between timer checks of a session."""


class ServerSession(Connection):
    """One ESME connection on the server."""

    def __init__(self, server: SmppServer, connection_id: str) -> None:
        config = server.config
        super().__init__(
            Role.SMSC,
            config.session,
            connection_id=connection_id,
            logger=log,
            tick_interval=config.tick_interval,
        )
        self.server = server
        self.handler = server.handler
        self.system_id: str | None = None
        self.bind_type: BindType | None = None
        self.account: Any = None
        self.account_key: Hashable | None = None
        self._bucket: TokenBucket | None = None
        self._window = asyncio.Semaphore(config.session.window)
        self._waiting = 0

    # --- peer requests ---

    def on_request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if cid in BIND_REQUESTS:
            self.spawn(self._bind(pdu), "bind")
            return
        if not self.server._admit(self, self.loop.time()):
            self.send_response(pdu.make_response(S.ESME_RTHROTTLED))
            return
        try:
            soon = self.handler.handle_request_soon(self, pdu)
        except Exception:
            log.exception("[%s] handler failed on %s #%d", self.id, command_name(cid), pdu.sequence_number)
            soon = self.loop.create_future()
            soon.set_result(S.ESME_RSYSERR)
        if soon is None:
            self.spawn(self._handle(pdu), command_name(cid))
        else:
            soon.add_done_callback(partial(self._answer_soon, pdu))
            self.track(soon)

    async def _bind(self, pdu: Pdu) -> None:
        bind_type = BindType.of(pdu.command_id)
        request = BindRequest(
            system_id=pdu.system_id,  # type: ignore[attr-defined]
            password=pdu.password,  # type: ignore[attr-defined]
            system_type=pdu.system_type,  # type: ignore[attr-defined]
            bind_type=bind_type,
            peer=self.peer,
            connection_id=self.id,
            interface_version=pdu.interface_version,  # type: ignore[attr-defined]
            address_range=pdu.address_range,  # type: ignore[attr-defined]
            pdu=pdu,
        )
        try:
            result = await self.handler.authenticate(request)
        except Exception:
            log.exception("[%s] authenticate failed for %r", self.id, request.system_id)
            result = BindResult(S.ESME_RSYSERR)
        if not self.is_open:
            return
        if result.status != S.ESME_ROK:
            log.info(
                "[%s] bind %s of %r from %s refused: %s",
                self.id,
                bind_type.value,
                request.system_id,
                self.peer,
                status_name(result.status),
            )
            self.send_response(pdu.make_response(result.status))
            if self.server.config.close_on_bind_failure:
                self.close()
            return
        tlvs = {}
        if request.interface_version >= INTERFACE_VERSION:
            # SMPP 3.4 §4.1.2: tell a 3.4 ESME which version we speak.
            tlvs[Tag.SC_INTERFACE_VERSION] = INTERFACE_VERSION
        self.system_id = request.system_id
        self.bind_type = bind_type
        self.account = result.account
        self.account_key = (
            result.account_key if result.account_key is not None else request.system_id
        )
        tps = (
            result.session_tps if result.session_tps is not None else self.server.config.session_tps
        )
        if tps:
            self._bucket = TokenBucket(tps, now=self.loop.time())
        self.send_response(pdu.make_response(system_id=self.server.config.system_id, tlvs=tlvs))
        self.server._register(self, result.account_tps)
        log.info(
            "[%s] bound %s as %r from %s", self.id, bind_type.value, request.system_id, self.peer
        )
        await self.handler.session_bound(self)

    async def _handle(self, pdu: Pdu) -> None:
        try:
            reply = await self.handler.handle_request(self, pdu)
        except Exception:
            log.exception(
                "[%s] handler failed on %s #%d", self.id, command_name(pdu.command_id), pdu.sequence_number
            )
            reply = S.ESME_RSYSERR
        self._answer(pdu, reply)

    def _answer_soon(self, pdu: Pdu, future: asyncio.Future[Reply]) -> None:
        if future.cancelled():
            return  # as a cancelled handler task: no answer
        exc = future.exception()
        if exc is not None:
            log.error(
                "[%s] handler failed on %s #%d",
                self.id,
                command_name(pdu.command_id),
                pdu.sequence_number,
                exc_info=exc,
            )
            self._answer(pdu, S.ESME_RSYSERR)
        else:
            self._answer(pdu, future.result())

    def _answer(self, pdu: Pdu, reply: Reply) -> None:
        """Send the response ``reply`` makes for ``pdu`` (both request paths end here)."""
        try:
            response = _as_response(pdu, reply)
        except Exception:
            log.exception(
                "[%s] handler failed on %s #%d", self.id, command_name(pdu.command_id), pdu.sequence_number
            )
            response = pdu.make_response(S.ESME_RSYSERR)
        if not self.is_open:
            log.info("[%s] connection gone; response to #%d dropped", self.id, pdu.sequence_number)
            return
        try:
            self.send_response(response)
        except (LocalProtocolError, EncodeError) as err:
            log.error("[%s] handler gave an unusable response %r: %s", self.id, response, err)
            self.send_response(pdu.make_response(S.ESME_RSYSERR))

    # --- pushing deliver_sm / data_sm ---

    @property
    def can_deliver(self) -> bool:
        """Bound as receiver or transceiver, open, and not unbinding."""
        return (
            self.is_open
            and self.bind_type is not None
            and self.bind_type.can_receive
            and self.state in (State.BOUND_RX, State.BOUND_TRX)
        )

    @property
    def load(self) -> int:
        """Requests in flight or waiting for a slot; lower is better for a new one."""
        return self.session.outstanding + self._waiting

    async def deliver(
        self, pdu: Pdu, *, context: Any = None, window_timeout: float | None = None
    ) -> RequestResult:
        """Send ``deliver_sm`` (or ``data_sm``) and wait for the outcome.

        Waits up to ``window_timeout`` for a window slot (forever when ``None``).
        NOT_SENT when the session cannot take it, UNKNOWN when it was sent but
        no usable answer came back.
        """
        return await (await self.start_deliver(pdu, context=context, window_timeout=window_timeout))

    async def start_deliver(
        self, pdu: Pdu, *, context: Any = None, window_timeout: float | None = None
    ) -> asyncio.Future[RequestResult]:
        """:meth:`deliver` in two steps: returns once the PDU is written (or refused),
        with the future of its outcome. Sending many this way costs no task each."""
        if self._window.locked():
            self._waiting += 1
            try:
                try:
                    await asyncio.wait_for(self._window.acquire(), window_timeout)
                except TimeoutError:
                    return self._ended(Outcome.NOT_SENT, pdu, context, "window full")
            finally:
                self._waiting -= 1
        else:
            # A free slot: take it without wait_for, which costs a task per call.
            await self._window.acquire()
        try:
            if not self.can_deliver:
                self._window.release()
                return self._ended(Outcome.NOT_SENT, pdu, context, "session cannot deliver")
            try:
                future = self.send_request(pdu, context)
            except SmppError as err:
                self._window.release()
                return self._ended(Outcome.NOT_SENT, pdu, context, str(err))
        except BaseException:
            self._window.release()
            raise
        # The slot is ours until the outcome is known (answer, timeout or link lost).
        future.add_done_callback(self._release_slot)
        return future

    def _release_slot(self, _future: asyncio.Future[RequestResult]) -> None:
        self._window.release()

    def _ended(
        self, outcome: Outcome, pdu: Pdu, context: Any, reason: str
    ) -> asyncio.Future[RequestResult]:
        future: asyncio.Future[RequestResult] = self.loop.create_future()
        future.set_result(RequestResult(outcome, pdu, None, context, reason, self.id))
        return future

    async def unbind(self) -> None:
        """Start a graceful unbind (no-op unless bound)."""
        if self.is_open and self.session.is_bound:
            try:
                self.send_request(Unbind())
            except SmppError as err:
                log.info("[%s] unbind not sent: %s", self.id, err)
                self.close()
        elif self.is_open and self.state is State.OPEN:
            self.close()

    # --- hooks ---

    def on_tick(self, now: float) -> None:
        if self.state is State.OPEN and now - self.connected_at > self.server.config.bind_timeout:
            log.info(
                "[%s] no bind within %.0f s: closing", self.id, self.server.config.bind_timeout
            )
            self.close()

    def on_closed(self) -> None:
        self.server._unregister(self)
        task = self.loop.create_task(self._closed_hook(), name=f"{self.id}:closed")
        self.server._background.add(task)
        task.add_done_callback(self.server._background.discard)

    async def _closed_hook(self) -> None:
        try:
            await self.handler.session_closed(self)
        except Exception:
            log.exception("[%s] session_closed hook failed", self.id)


def _as_response(pdu: Pdu, reply: Reply) -> Pdu:
    if isinstance(reply, Pdu):
        reply.sequence_number = pdu.sequence_number
        return reply
    if reply is None:
        return pdu.make_response()
    if isinstance(reply, str):
        response = pdu.make_response()
        if hasattr(response, "message_id"):
            response.message_id = reply  # type: ignore[attr-defined]
        return response
    if isinstance(reply, int):
        return pdu.make_response(reply)
    raise TypeError(f"handler returned {reply!r}; expected a PDU, str, int or None")


class SmppServer:
    """An SMSC endpoint: listens, hosts :class:`ServerSession` objects.

    Use ``await server.start(host, port)``, then ``await server.close()``.
    """

    def __init__(self, handler: ServerHandler, config: ServerConfig | None = None) -> None:
        self.handler = handler
        self.config = config or ServerConfig()
        self._server: asyncio.Server | None = None
        self._connections: set[ServerSession] = set()
        self._by_account: dict[Hashable, list[ServerSession]] = {}
        self._account_buckets: dict[Hashable, TokenBucket] = {}
        self._background: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._closing = False

    async def start(self, host: str = "127.0.0.1", port: int = 0, *, reuse_port: bool = False) -> None:
        """Listen on ``host:port`` (``port=0`` picks a free one; see :attr:`port`).

        ``reuse_port``: several processes listen on the same port (SO_REUSEPORT) and
        the kernel spreads new connections over them.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_connection, host, port,
                                                reuse_port=reuse_port or None)

    def _new_connection(self) -> ServerSession:
        conn = ServerSession(self, f"smpp-{next(self._ids)}")
        self._connections.add(conn)
        return conn

    @property
    def listening(self) -> bool:
        """True from ``start`` until ``stop`` closed the listening socket."""
        return self._server is not None and self._server.is_serving()

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    @property
    def connections(self) -> list[ServerSession]:
        """Every open connection, bound or not."""
        return list(self._connections)

    def sessions(self, account_key: Hashable) -> list[ServerSession]:
        """The bound sessions of one account."""
        return list(self._by_account.get(account_key, ()))

    async def deliver(
        self,
        account_key: Hashable,
        pdu: Pdu,
        *,
        context: Any = None,
        window_timeout: float | None = None,
    ) -> RequestResult:
        """Push ``deliver_sm``/``data_sm`` to a receiver or transceiver of an account.

        Picks the least loaded such session. NOT_SENT when the account has
        none bound; otherwise what :meth:`ServerSession.deliver` reports.
        """
        future = await self.start_deliver(
            account_key, pdu, context=context, window_timeout=window_timeout
        )
        return await future

    async def start_deliver(
        self,
        account_key: Hashable,
        pdu: Pdu,
        *,
        context: Any = None,
        window_timeout: float | None = None,
    ) -> asyncio.Future[RequestResult]:
        """:meth:`deliver` in two steps: returns once the PDU is written (or refused),
        with the future of its outcome (:meth:`ServerSession.start_deliver`)."""
        candidates = [s for s in self._by_account.get(account_key, ()) if s.can_deliver]
        if not candidates:
            future: asyncio.Future[RequestResult] = asyncio.get_running_loop().create_future()
            future.set_result(RequestResult(Outcome.NOT_SENT, pdu, None, context, "no receiver bound"))
            return future
        session = min(candidates, key=lambda s: s.load) if len(candidates) > 1 else candidates[0]
        return await session.start_deliver(pdu, context=context, window_timeout=window_timeout)

    def _admit(self, session: ServerSession, now: float) -> bool:
        """Throughput limits: the session's own bucket, then its account's."""
        if session._bucket is not None and not session._bucket.take(now):
            return False
        bucket = self._account_buckets.get(session.account_key)
        return bucket is None or bucket.take(now)

    def _register(self, session: ServerSession, account_tps: float | None) -> None:
        key = session.account_key
        self._by_account.setdefault(key, []).append(session)
        tps = account_tps if account_tps is not None else self.config.account_tps
        if tps:
            bucket = self._account_buckets.get(key)
            if bucket is None:
                self._account_buckets[key] = TokenBucket(tps, now=session.loop.time())
            elif bucket.rate != tps:
                bucket.set_rate(tps)

    def _unregister(self, session: ServerSession) -> None:
        self._connections.discard(session)
        sessions = self._by_account.get(session.account_key)
        if sessions and session in sessions:
            sessions.remove(session)
            if not sessions:
                del self._by_account[session.account_key]
                self._account_buckets.pop(session.account_key, None)

    async def close(self, grace: float = 5.0) -> None:
        """Stop listening, unbind every session, let handlers finish, then close.

        Sessions still open after ``grace`` seconds are aborted.
        """
        self._closing = True
        if self._server is not None:
            self._server.close()
        conns = list(self._connections)
        for conn in conns:
            await conn.unbind()
        waits = [conn.closed for conn in conns if not conn.closed.done()]
        if waits:
            _done, pending = await asyncio.wait(waits, timeout=grace)
            if pending:
                log.warning("%d SMPP sessions did not unbind in time; aborting", len(pending))
        for conn in conns:
            if not conn.closed.done():
                conn.abort()
        if waits:
            await asyncio.wait(waits, timeout=1.0)
        if self._server is not None:
            await self._server.wait_closed()
        if self._background:
            await asyncio.wait(set(self._background), timeout=grace)
