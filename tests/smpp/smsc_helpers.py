"""Shared pieces for the SMPP socket tests: a small SMSC handler and a raw-socket peer."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any

from smpp.codec import decode, encode
from smpp.pdu import (
    BindTransceiver,
    CommandStatus,
    Pdu,
    QuerySm,
    QuerySmResp,
    SubmitSm,
)
from smpp.server import (
    BindRequest,
    BindResult,
    ServerConfig,
    ServerHandler,
    ServerSession,
    SmppServer,
)
from smpp.session import SessionConfig

S = CommandStatus


class DemoSmsc(ServerHandler):
    """Accepts known accounts, gives message ids, records what it saw.

    ``fail_on``: destinations whose submit makes the handler raise.
    ``hold``: when set, submits wait for this event before answering.
    """

    def __init__(self, accounts: dict[str, str] | None = None) -> None:
        self.accounts = accounts if accounts is not None else {"alice": "secret", "bob": "hunter2"}
        self.requests: list[Pdu] = []
        self.bound: list[ServerSession] = []
        self.closed: list[ServerSession] = []
        self.fail_on: set[str] = set()
        self.hold: asyncio.Event | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.account_tps: float | None = None
        self.arrived = asyncio.Event()
        self._ids = itertools.count(1)

    async def authenticate(self, request: BindRequest) -> BindResult:
        if self.accounts.get(request.system_id) != request.password:
            return BindResult.reject(S.ESME_RINVPASWD)
        return BindResult.accept({"name": request.system_id}, account_tps=self.account_tps)

    async def handle_request(self, session: ServerSession, pdu: Pdu) -> Any:
        self.requests.append(pdu)
        self.arrived.set()
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if isinstance(pdu, SubmitSm) and pdu.destination_addr in self.fail_on:
                raise RuntimeError(f"refusing {pdu.destination_addr} on purpose")
            if self.hold is not None:
                await self.hold.wait()
            if isinstance(pdu, QuerySm):
                return QuerySmResp(message_id=pdu.message_id, message_state=2)
            return f"msg-{next(self._ids)}"
        finally:
            self.in_flight -= 1

    async def session_bound(self, session: ServerSession) -> None:
        self.bound.append(session)

    async def session_closed(self, session: ServerSession) -> None:
        self.closed.append(session)


def fast_config(**overrides: Any) -> ServerConfig:
    session = overrides.pop("session", None) or SessionConfig(
        window=10, peer_window=100, enquire_link_interval=None, response_timeout=2.0
    )
    settings: dict[str, Any] = {"tick_interval": 0.05, "bind_timeout": 2.0, **overrides}
    return ServerConfig(session=session, **settings)


async def start_server(handler: ServerHandler | None = None, **overrides: Any) -> SmppServer:
    server = SmppServer(handler or DemoSmsc(), fast_config(**overrides))
    await server.start("127.0.0.1", 0)
    return server


class RawPeer:
    """An ESME made of a bare socket: writes exactly the bytes a test gives it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seq = itertools.count(1)

    @classmethod
    async def connect(cls, port: int) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, pdu: Pdu) -> Pdu:
        if not pdu.sequence_number:
            pdu.sequence_number = next(self.seq)
        await self.send_raw(encode(pdu))
        return pdu

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def read_pdu(self, wait: float = 3.0) -> Pdu:
        async with asyncio.timeout(wait):
            head = await self.reader.readexactly(4)
            (length,) = struct.unpack(">I", head)
            return decode(head + await self.reader.readexactly(length - 4))

    async def request(self, pdu: Pdu, wait: float = 3.0) -> Pdu:
        await self.send(pdu)
        return await self.read_pdu(wait)

    async def bind(
        self, system_id: str = "alice", password: str = "secret", cls: type = BindTransceiver
    ) -> Pdu:
        return await self.request(cls(system_id=system_id, password=password))

    async def wait_closed(self, wait: float = 3.0) -> bool:
        """True when the server closes the connection (anything it sends meanwhile is read)."""
        try:
            async with asyncio.timeout(wait):
                while await self.reader.read(65536):
                    pass
            return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass
