"""The asyncio ESME client against Herald's server (and a deaf one) over loopback."""

from __future__ import annotations

import asyncio
import random

import pytest

from smpp.client import ClientConfig, ClientHandler, SmppClient
from smpp.errors import ConnectionClosedError, EncodeError, LocalProtocolError
from smpp.pdu import CommandStatus, DataSm, DeliverSm, Pdu, QuerySm, SubmitSm, Tag
from smpp.ratelimit import TokenBucket, backoff_delay
from smpp.results import Outcome, RequestResult
from smpp.server import SmppServer
from smpp.session import BindType, SessionConfig

from .smsc_helpers import DemoSmsc, RawPeer, start_server

S = CommandStatus


class Recorder(ClientHandler):
    def __init__(self) -> None:
        self.results: list[RequestResult] = []
        self.receipts: list[Pdu] = []
        self.messages: list[Pdu] = []
        self.bound_count = 0
        self.unbound_count = 0
        self.bind_failures: list[int | None] = []
        self.fail_messages = False
        self.changed = asyncio.Event()

    def _poke(self) -> None:
        self.changed.set()

    async def submit_result(self, result: RequestResult) -> None:
        self.results.append(result)
        self._poke()

    async def receipt(self, pdu: DeliverSm | DataSm) -> int | None:
        self.receipts.append(pdu)
        self._poke()
        return None

    async def message(self, pdu: DeliverSm | DataSm) -> int | None:
        self.messages.append(pdu)
        self._poke()
        if self.fail_messages:
            raise RuntimeError("storage unavailable")
        return None

    async def bound(self) -> None:
        self.bound_count += 1
        self._poke()

    async def unbound(self, reason: str) -> None:
        self.unbound_count += 1
        self._poke()

    async def bind_failed(self, status: int | None, reason: str) -> None:
        self.bind_failures.append(status)
        self._poke()

    async def until(self, predicate, wait: float = 3.0) -> None:
        async with asyncio.timeout(wait):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


def client_for(
    server: SmppServer | int, handler: ClientHandler | None = None, **overrides
) -> SmppClient:
    port = server if isinstance(server, int) else server.port
    session = overrides.pop("session", None) or SessionConfig(
        window=10, enquire_link_interval=None, response_timeout=2.0
    )
    settings = {
        "system_id": "alice",
        "password": "secret",
        "reconnect_base": 0.02,
        "reconnect_cap": 0.1,
        "tick_interval": 0.05,
        "bind_timeout": 2.0,
        **overrides,
    }
    return SmppClient(ClientConfig("127.0.0.1", port, session=session, **settings), handler)


async def test_submit_reports_results() -> None:
    server = await start_server()
    rec = Recorder()
    client = client_for(server, rec)
    try:
        await client.start()
        await client.wait_bound()
        result = await client.submit(
            SubmitSm(destination_addr="4477", short_message=b"hi"), "row-1"
        )
        assert result.outcome is Outcome.ACCEPTED and result.message_id == "msg-1"
        assert result.context == "row-1"
        future = await client.send(QuerySm(message_id="msg-1"), "q")
        query = await future
        assert query.response.message_state == 2
        await rec.until(lambda: len(rec.results) == 2)
        assert [r.context for r in rec.results] == ["row-1", "q"]
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_bind_refused_backs_off_and_retries() -> None:
    server = await start_server()
    rec = Recorder()
    client = client_for(server, rec, password="wrong")
    try:
        await client.start()
        await rec.until(lambda: len(rec.bind_failures) >= 3)
        assert set(rec.bind_failures) == {S.ESME_RINVPASWD}
        assert client.failures >= 3 and not client.is_bound
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_unreachable_smsc_reported_without_status() -> None:
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    rec = Recorder()
    client = client_for(port, rec)
    try:
        await client.start()
        await rec.until(lambda: len(rec.bind_failures) >= 2)
        assert rec.bind_failures[:2] == [None, None]
    finally:
        await client.close()


async def test_reconnects_and_in_flight_requests_end_unknown() -> None:
    smsc = DemoSmsc()
    server = await start_server(smsc)
    rec = Recorder()
    client = client_for(server, rec)
    try:
        await client.start()
        await client.wait_bound()
        smsc.hold = asyncio.Event()
        futures = [await client.send(SubmitSm(destination_addr="1"), i) for i in range(3)]
        await asyncio.sleep(0.05)
        assert smsc.in_flight == 3
        [session] = server.sessions("alice")
        session.abort()  # the link breaks with three answers owed
        results = [await f for f in futures]
        assert {r.outcome for r in results} == {Outcome.UNKNOWN}
        assert {r.reason for r in results} == {"connection lost"}
        await rec.until(lambda: len(rec.results) == 3)
        assert sorted(r.context for r in rec.results) == [0, 1, 2]
        smsc.hold.set()
        # The client binds again by itself and carries on.
        await rec.until(lambda: rec.bound_count == 2)
        assert rec.unbound_count == 1
        result = await client.submit(SubmitSm(destination_addr="1"))
        assert result.outcome is Outcome.ACCEPTED
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_response_timeout_is_unknown() -> None:
    smsc = DemoSmsc()
    smsc.hold = asyncio.Event()
    server = await start_server(smsc)
    client = client_for(
        server, session=SessionConfig(window=5, enquire_link_interval=None, response_timeout=0.2)
    )
    try:
        await client.start()
        await client.wait_bound()
        result = await client.submit(SubmitSm(destination_addr="1"))
        assert result.outcome is Outcome.UNKNOWN and result.reason == "response timeout"
        assert result.message_id is None and result.status is None
    finally:
        smsc.hold.set()
        await client.close()
        await server.close(grace=1.0)


async def test_receipts_and_mo_reach_the_handler() -> None:
    server = await start_server()
    rec = Recorder()
    client = client_for(server, rec)
    try:
        await client.start()
        await client.wait_bound()
        receipt = DeliverSm(
            esm_class=0x04,
            short_message=b"id:msg-1 sub:001 dlvrd:001 stat:DELIVRD err:000",
            tlvs={Tag.RECEIPTED_MESSAGE_ID: "msg-1", Tag.MESSAGE_STATE: 2},
        )
        outcome = await server.deliver("alice", receipt)
        assert outcome.outcome is Outcome.ACCEPTED
        mo = DeliverSm(source_addr="447700900123", destination_addr="Herald", short_message=b"STOP")
        assert (await server.deliver("alice", mo)).outcome is Outcome.ACCEPTED
        data = DataSm(esm_class=0x04, tlvs={Tag.RECEIPTED_MESSAGE_ID: "msg-2"})
        assert (await server.deliver("alice", data)).outcome is Outcome.ACCEPTED
        assert [r.tlvs[Tag.RECEIPTED_MESSAGE_ID] for r in rec.receipts] == ["msg-1", "msg-2"]
        assert [m.short_message for m in rec.messages] == [b"STOP"]
        # A handler that fails makes the SMSC retry later: ESME_RX_T_APPN.
        rec.fail_messages = True
        failed = await server.deliver("alice", mo)
        assert failed.outcome is Outcome.REJECTED and failed.status == S.ESME_RX_T_APPN
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_throttle_hook_awaited_before_each_submit() -> None:
    server = await start_server()
    calls = []

    async def throttle() -> None:
        calls.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.01)

    client = client_for(server, throttle=throttle)
    try:
        await client.start()
        await client.wait_bound()
        for _ in range(4):
            await client.submit(SubmitSm(destination_addr="1"))
        assert len(calls) == 4
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_window_limits_requests_in_flight() -> None:
    smsc = DemoSmsc()
    smsc.hold = asyncio.Event()
    server = await start_server(smsc)
    client = client_for(
        server, session=SessionConfig(window=3, enquire_link_interval=None, response_timeout=5.0)
    )
    try:
        await client.start()
        await client.wait_bound()
        tasks = [
            asyncio.ensure_future(client.submit(SubmitSm(destination_addr="1"))) for _ in range(8)
        ]
        await asyncio.sleep(0.1)
        assert smsc.in_flight == 3
        smsc.hold.set()
        results = await asyncio.gather(*tasks)
        assert all(r.outcome is Outcome.ACCEPTED for r in results)
        assert smsc.max_in_flight == 3
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_close_is_graceful() -> None:
    smsc = DemoSmsc()
    smsc.hold = asyncio.Event()
    server = await start_server(smsc)
    client = client_for(server)
    try:
        await client.start()
        await client.wait_bound()
        future = await client.send(SubmitSm(destination_addr="1"))
        closing = asyncio.ensure_future(client.close(grace=3.0))
        await asyncio.sleep(0.05)
        assert not closing.done()  # waits for the answer it is owed
        smsc.hold.set()
        assert (await future).outcome is Outcome.ACCEPTED
        await closing
        assert not client.is_bound
        with pytest.raises(ConnectionClosedError):
            await client.send(SubmitSm(destination_addr="1"))
        await asyncio.sleep(0.05)
        assert len(smsc.closed) == 1
    finally:
        await server.close(grace=1.0)


def test_bad_credentials_fail_at_construction() -> None:
    with pytest.raises(EncodeError):
        client_for(4000, password="much too long for SMPP")


async def test_receiver_bind_refuses_submit_locally() -> None:
    server = await start_server()
    client = client_for(server, bind_type=BindType.RECEIVER)
    try:
        await client.start()
        await client.wait_bound()
        with pytest.raises(LocalProtocolError):
            await client.send(SubmitSm(destination_addr="1"))
    finally:
        await client.close()
        await server.close(grace=1.0)


async def test_keepalive_detects_a_deaf_smsc_and_reconnects() -> None:
    connections = []

    async def deaf_smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = RawPeer(reader, writer)
        connections.append(peer)
        bind = await peer.read_pdu()
        await peer.send(bind.make_response(system_id="deaf"))
        try:
            while True:
                await peer.read_pdu(wait=10)  # read enquire_link, never answer
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            writer.close()

    deaf = await asyncio.start_server(deaf_smsc, "127.0.0.1", 0)
    rec = Recorder()
    client = client_for(
        deaf.sockets[0].getsockname()[1],
        rec,
        session=SessionConfig(enquire_link_interval=0.1, response_timeout=0.2),
    )
    try:
        await client.start()
        await rec.until(lambda: rec.bound_count >= 2, wait=5.0)
        assert rec.unbound_count >= 1
    finally:
        await client.close(grace=0.5)
        deaf.close()
        await deaf.wait_closed()


# --- pure helpers ----------------------------------------------------------------------------


def test_backoff_grows_with_jitter_and_caps() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(n, base=1.0, cap=60.0, rng=rng) for n in range(10)]
    for n, delay in enumerate(delays):
        ceiling = min(60.0, 2.0**n)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(1000, base=1.0, cap=60.0) <= 60.0
    spread = {round(backoff_delay(5, rng=rng), 6) for _ in range(20)}
    assert len(spread) > 10  # jittered, not in lock step


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert not bucket.take(0.0)
    assert bucket.wait_time(0.0) == pytest.approx(0.1)
    assert not bucket.take(0.05)
    assert bucket.take(0.1)
    assert bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)  # burst caps refill
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
