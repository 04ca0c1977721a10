"""ESME side: a client that keeps one bind to an SMSC up and pushes messages through it.

:class:`SmppClient` connects, binds, and reconnects with exponential
back-off and jitter whenever the link drops. :meth:`SmppClient.send` waits
for a bound link, a window slot and the embedder's throttle hook (an async
callable — e.g. a Redis token bucket shared by every node), then writes the
PDU and returns a future of its :class:`~smpp.results.RequestResult`.

A request whose connection drops before its response arrives ends as
:attr:`Outcome.UNKNOWN <smpp.results.Outcome.UNKNOWN>` — reported, never lost,
never silently retried (the SMSC may have taken it).

Receipts (``deliver_sm``/``data_sm`` whose ``esm_class`` marks a delivery
receipt) and other incoming messages go to :class:`ClientHandler`; the value
it returns is the ``command_status`` answered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from smpp.codec import encode
from smpp.connection import Connection
from smpp.errors import ConnectionClosedError, LocalProtocolError
from smpp.pdu import (
    CommandId,
    CommandStatus,
    DataSm,
    DeliverSm,
    Pdu,
    Unbind,
    command_name,
)
from smpp.ratelimit import backoff_delay
from smpp.results import Outcome, RequestResult
from smpp.session import SENDS, BindType, Role, SessionConfig, WindowFullError

__all__ = ["ClientConfig", "ClientHandler", "SmppClient"]

log = logging.getLogger("smpp.client")
S = CommandStatus
C = CommandId

_APPLICATION_REQUESTS = frozenset({
    C.SUBMIT_SM, C.SUBMIT_MULTI, C.DATA_SM, C.QUERY_SM, C.CANCEL_SM, C.REPLACE_SM,
})  # fmt: skip


class ClientHandler:
    """What the embedder plugs into :class:`SmppClient`. Override what you need."""

    async def submit_result(self, result: RequestResult) -> None:
        """A request sent with :meth:`SmppClient.send` ended (any outcome)."""

    async def receipt(self, pdu: DeliverSm | DataSm) -> int | None:
        """A delivery receipt. Return the ``command_status`` to answer (``None``: OK).

        Raising answers ESME_RX_T_APPN, so the SMSC tries again later.
        """
        return None

    async def message(self, pdu: DeliverSm | DataSm) -> int | None:
        """A mobile-originated (or other non-receipt) message; answered like :meth:`receipt`."""
        return None

    async def alert(self, pdu: Pdu) -> None:
        """An ``alert_notification``."""

    async def bound(self) -> None:
        """The link is bound and ready for :meth:`SmppClient.send`."""

    async def unbound(self, reason: str) -> None:
        """A bound link went away (the client reconnects on its own)."""

    async def bind_failed(self, status: int | None, reason: str) -> None:
        """A connect or bind attempt failed (``status`` is None when no bind response came)."""


@dataclass(slots=True)
class ClientConfig:
    """Where to connect and how to bind."""

    host: str
    port: int
    system_id: str
    password: str = ""
    system_type: str = ""
    bind_type: BindType = BindType.TRANSCEIVER
    interface_version: int = 0x34
    addr_ton: int = 0
    addr_npi: int = 0
    address_range: str = ""
    session: SessionConfig = field(
        default_factory=lambda: SessionConfig(
            window=10, enquire_link_interval=30.0, response_timeout=30.0
        )
    )
    connect_timeout: float = 10.0
    bind_timeout: float = 10.0
    reconnect_base: float = 1.0
    """First reconnect delay (seconds, before jitter); doubles per failure."""
    reconnect_cap: float = 60.0
    tick_interval: float = 1.0
    throttle: Callable[[], Awaitable[None]] | None = None
    """Awaited before each request sent with :meth:`SmppClient.send` (TPS limit hook)."""
    name: str = "esme"
    """Prefix of connection ids in logs."""


class _ClientConnection(Connection):
    def __init__(self, client: SmppClient, connection_id: str) -> None:
        super().__init__(
            Role.ESME,
            client.config.session,
            connection_id=connection_id,
            logger=log,
            tick_interval=client.config.tick_interval,
        )
        self.client = client

    def on_request(self, pdu: Pdu) -> None:
        cid = pdu.command_id
        if cid in (C.DELIVER_SM, C.DATA_SM):
            self.spawn(self._incoming(pdu), command_name(cid))
        elif cid == C.ALERT_NOTIFICATION:
            self.client._background(self.client.handler.alert(pdu), "alert")
        else:
            log.info("[%s] ignoring %s", self.id, C(cid).name.lower())

    async def _incoming(self, pdu: Pdu) -> None:
        handler = self.client.handler
        try:
            if pdu.is_receipt:  # type: ignore[attr-defined]
                status = await handler.receipt(pdu)  # type: ignore[arg-type]
            else:
                status = await handler.message(pdu)  # type: ignore[arg-type]
        except Exception:
            log.exception("[%s] handler failed on #%d", self.id, pdu.sequence_number)
            # Temporary application error: SMPP 3.4 §5.1.3 lets the SMSC retry.
            status = S.ESME_RX_T_APPN
        if self.is_open:
            self.send_response(pdu.make_response(status or S.ESME_ROK))

    def on_result(self, result: RequestResult) -> None:
        if self.client._wants_results and result.request.command_id in _APPLICATION_REQUESTS:
            self.client._background(self.client.handler.submit_result(result), "result")


class SmppClient:
    """One ESME bind to an SMSC, kept up until :meth:`close`."""

    def __init__(self, config: ClientConfig, handler: ClientHandler | None = None) -> None:
        self.config = config
        self.handler = handler or ClientHandler()
        # A task per result costs; skip it when the handler would do nothing.
        self._wants_results = type(self.handler).submit_result is not ClientHandler.submit_result
        self.rng = random.Random()
        self._window = asyncio.Semaphore(config.session.window)
        self._conn: _ClientConnection | None = None
        self._ready = asyncio.Event()  # set when bound, or when closing (to wake waiters)
        self._closing = False
        self._runner: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self.failures = 0
        """Consecutive failed connect/bind attempts (drives the back-off)."""
        encode(self._bind_request())  # a bad system_id/password fails here, not in a loop

    def _bind_request(self) -> Pdu:
        cfg = self.config
        return cfg.bind_type.request_class(
            system_id=cfg.system_id,
            password=cfg.password,
            system_type=cfg.system_type,
            interface_version=cfg.interface_version,
            addr_ton=cfg.addr_ton,
            addr_npi=cfg.addr_npi,
            address_range=cfg.address_range,
        )

    # --- lifecycle ---

    async def start(self) -> None:
        """Start connecting in the background (returns at once)."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self.config.name}:connect"
            )

    @property
    def is_bound(self) -> bool:
        conn = self._conn
        return conn is not None and conn.is_open and conn.session.is_bound

    @property
    def connection(self) -> Connection | None:
        """The current bound connection, if any."""
        return self._conn

    async def wait_bound(self) -> None:
        """Return once bound; raises :class:`ConnectionClosedError` if closed first."""
        while not self.is_bound:
            if self._closing:
                raise ConnectionClosedError("client is closed")
            await self._ready.wait()
            if not self.is_bound and not self._closing:
                self._ready.clear()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await self._connect_once()
            except Exception:
                # Never let a surprise end the reconnect loop: log it, back off, retry.
                self.failures += 1
                log.exception("%s: connection attempt failed unexpectedly", self.config.name)
            if self._closing:
                return
            delay = backoff_delay(
                self.failures,
                base=self.config.reconnect_base,
                cap=self.config.reconnect_cap,
                rng=self.rng,
            )
            log.info("%s: reconnecting in %.2f s", self.config.name, delay)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        conn_id = f"{cfg.name}-{next(self._ids)}"
        try:
            _transport, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _ClientConnection(self, conn_id), cfg.host, cfg.port
                ),
                cfg.connect_timeout,
            )
        except (OSError, TimeoutError) as err:
            self.failures += 1
            log.info("[%s] connect to %s:%d failed: %s", conn_id, cfg.host, cfg.port, err)
            await self._hook(self.handler.bind_failed(None, f"connect failed: {err}"))
            return
        try:
            future = conn.send_request(self._bind_request())
            result = await asyncio.wait_for(asyncio.shield(future), cfg.bind_timeout)
        except (TimeoutError, ConnectionClosedError, LocalProtocolError) as err:
            self.failures += 1
            log.info("[%s] bind failed: %s", conn_id, err or "timeout")
            conn.abort()
            await self._hook(self.handler.bind_failed(None, f"no bind response: {err}"))
            return
        if result.outcome is not Outcome.ACCEPTED:
            self.failures += 1
            log.warning("[%s] bind refused: %s", conn_id, result.reason)
            conn.close()
            await conn.closed
            await self._hook(self.handler.bind_failed(result.status, result.reason))
            return
        self.failures = 0
        self._conn = conn
        self._ready.set()
        log.info("[%s] bound %s to %s:%d", conn_id, cfg.bind_type.value, cfg.host, cfg.port)
        await self._hook(self.handler.bound())
        await conn.closed
        self._conn = None
        if not self._closing:
            self._ready.clear()
        log.info("[%s] link down", conn_id)
        await self._hook(self.handler.unbound("connection closed"))

    async def close(self, grace: float = 5.0) -> None:
        """Stop sending, let outstanding requests finish (up to ``grace`` s), unbind, close.

        Requests still unanswered when the link closes end as UNKNOWN.
        """
        self._closing = True
        self._ready.set()
        conn = self._conn
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if conn is not None and conn.is_open:
            pending = conn.awaiting()
            if pending:
                await asyncio.wait(pending, timeout=grace)
            if conn.is_open and conn.session.is_bound:
                try:
                    unbind = conn.send_request(Unbind())
                    await asyncio.wait_for(unbind, max(0.0, deadline - loop.time()))
                except (TimeoutError, ConnectionClosedError, LocalProtocolError):
                    pass
            try:
                await asyncio.wait_for(
                    asyncio.shield(conn.closed), max(0.1, deadline - loop.time())
                )
            except TimeoutError:
                conn.abort()
                await conn.closed
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=grace)

    # --- sending ---

    async def send(self, pdu: Pdu, context: Any = None) -> asyncio.Future[RequestResult]:
        """Send one request as soon as the link, the window and the throttle allow.

        Returns once the PDU is written, with a future of its result; the
        handler's :meth:`~ClientHandler.submit_result` hears of it too.
        ``pdu.sequence_number`` is assigned here. Raises
        :class:`ConnectionClosedError` after :meth:`close`, and
        :class:`~smpp.errors.EncodeError` for a PDU that cannot be encoded.
        """
        if pdu.command_id not in SENDS[Role.ESME][self.config.bind_type.state]:
            raise LocalProtocolError(
                f"{C(pdu.command_id).name.lower()} cannot go over a {self.config.bind_type.value} bind"
            )
        while True:
            await self.wait_bound()
            await self._window.acquire()
            future: asyncio.Future[RequestResult] | None = None
            try:
                if self.config.throttle is not None:
                    await self.config.throttle()
                if self._closing:
                    raise ConnectionClosedError("client is closed")
                conn = self._conn
                if conn is not None and self.is_bound:
                    try:
                        future = conn.send_request(pdu, context)
                    except WindowFullError:
                        raise  # the semaphore mirrors the window: this is a bug, say so
                    except (ConnectionClosedError, LocalProtocolError):
                        future = None  # the link went down or is unbinding: wait for the next
            except BaseException:
                self._window.release()
                raise
            if future is None:
                self._window.release()
                continue
            future.add_done_callback(lambda _f: self._window.release())
            return future

    async def submit(self, pdu: Pdu, context: Any = None) -> RequestResult:
        """:meth:`send`, then wait for the result."""
        return await (await self.send(pdu, context))

    # --- helpers ---

    def _background(self, coro: Any, what: str) -> None:
        task = asyncio.get_running_loop().create_task(
            self._hook(coro), name=f"{self.config.name}:{what}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hook(self, coro: Any) -> None:
        try:
            await coro
        except Exception:
            log.exception("%s: handler hook failed", self.config.name)

    def __repr__(self) -> str:
        state = "bound" if self.is_bound else "closing" if self._closing else "connecting"
        return f"<SmppClient {self.config.name} {self.config.host}:{self.config.port} {state}>"
