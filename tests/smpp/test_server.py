"""The asyncio SMSC server over real loopback sockets, driven by a raw-socket ESME."""

from __future__ import annotations

import asyncio
import logging
import struct

import pytest

from smpp.codec import encode
from smpp.pdu import (
    BindReceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    CancelSmResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    QuerySm,
    QuerySmResp,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Unbind,
    UnbindResp,
)
from smpp.results import Outcome
from smpp.server import BindResult, ServerHandler
from smpp.session import BindType, SessionConfig

from .smsc_helpers import DemoSmsc, RawPeer, start_server

S = CommandStatus


async def test_bind_accepted_and_refused() -> None:
    handler = DemoSmsc()
    server = await start_server(handler)
    try:
        peer = await RawPeer.connect(server.port)
        resp = await peer.bind()
        assert isinstance(resp, BindTransceiverResp)
        assert resp.command_status == S.ESME_ROK
        assert resp.system_id == "SMSC"
        assert resp.tlvs == {Tag.SC_INTERFACE_VERSION: 0x34}
        await asyncio.sleep(0.05)
        [session] = handler.bound
        assert session.account == {"name": "alice"}
        assert session.bind_type is BindType.TRANSCEIVER
        assert server.sessions("alice") == [session]

        intruder = await RawPeer.connect(server.port)
        resp = await intruder.bind("alice", "wrong", BindTransmitter)
        assert resp == BindTransmitterResp(sequence_number=1, command_status=S.ESME_RINVPASWD)
        assert await intruder.wait_closed()
        await peer.close()
    finally:
        await server.close(grace=1.0)


async def test_submit_answered_by_handler_and_errors_become_rsyserr(caplog) -> None:
    handler = DemoSmsc()
    handler.fail_on.add("666")
    server = await start_server(handler)
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        resp = await peer.request(SubmitSm(destination_addr="4477", short_message=b"hi"))
        assert resp == SubmitSmResp(sequence_number=2, message_id="msg-1")
        with caplog.at_level(logging.ERROR, logger="smpp.server"):
            resp = await peer.request(SubmitSm(destination_addr="666"))
        assert resp == SubmitSmResp(sequence_number=3, command_status=S.ESME_RSYSERR)
        [record] = [r for r in caplog.records if "handler failed" in r.getMessage()]
        assert "[smpp-" in record.getMessage() and record.exc_info is not None
        # The session is unharmed.
        resp = await peer.request(QuerySm(message_id="msg-1"))
        assert resp == QuerySmResp(sequence_number=4, message_id="msg-1", message_state=2)
        resp = await peer.request(CancelSm(message_id="msg-1"))
        assert resp == CancelSmResp(sequence_number=5, command_status=S.ESME_ROK)
        assert (await peer.request(EnquireLink())) == EnquireLinkResp(sequence_number=6)
        await peer.close()
    finally:
        await server.close(grace=1.0)


async def test_handler_returning_nonsense_gets_rsyserr() -> None:
    class Confused(DemoSmsc):
        async def handle_request(self, session, pdu):
            return DeliverSmResp()  # wrong response type for a submit_sm

    server = await start_server(Confused())
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        resp = await peer.request(SubmitSm(destination_addr="1"))
        assert resp == SubmitSmResp(sequence_number=2, command_status=S.ESME_RSYSERR)
        await peer.close()
    finally:
        await server.close(grace=1.0)


async def test_requests_run_concurrently_and_answer_in_completion_order() -> None:
    handler = DemoSmsc()
    handler.hold = asyncio.Event()
    server = await start_server(handler)
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        for _ in range(5):
            await peer.send(SubmitSm(destination_addr="1"))
        await asyncio.sleep(0.1)
        assert handler.in_flight == 5
        handler.hold.set()
        seqs = {(await peer.read_pdu()).sequence_number for _ in range(5)}
        assert seqs == {2, 3, 4, 5, 6}
        await peer.close()
    finally:
        await server.close(grace=1.0)


async def test_session_and_account_throttling() -> None:
    handler = DemoSmsc()
    server = await start_server(handler, session_tps=2.0)
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        statuses = [
            (await peer.request(SubmitSm(destination_addr="1"))).command_status for _ in range(4)
        ]
        assert statuses[:2] == [S.ESME_ROK, S.ESME_ROK]
        assert statuses[2:] == [S.ESME_RTHROTTLED, S.ESME_RTHROTTLED]
        await peer.close()
    finally:
        await server.close(grace=1.0)

    handler = DemoSmsc()
    handler.account_tps = 3.0
    server = await start_server(handler)
    try:
        a, b = await RawPeer.connect(server.port), await RawPeer.connect(server.port)
        await a.bind()
        await b.bind()
        statuses = []
        for peer in (a, b, a, b, a, b):
            statuses.append((await peer.request(SubmitSm(destination_addr="1"))).command_status)
        assert statuses.count(S.ESME_ROK) == 3
        assert statuses.count(S.ESME_RTHROTTLED) == 3
        # Another account is not held back by alice's limit.
        c = await RawPeer.connect(server.port)
        await c.bind("bob", "hunter2")
        assert (await c.request(SubmitSm(destination_addr="1"))).command_status == S.ESME_ROK
        for peer in (a, b, c):
            await peer.close()
    finally:
        await server.close(grace=1.0)


async def test_deliver_to_receiver_and_outcomes() -> None:
    handler = DemoSmsc()
    server = await start_server(handler)
    try:
        nothing = await server.deliver("alice", DeliverSm(short_message=b"x"))
        assert nothing.outcome is Outcome.NOT_SENT

        tx = await RawPeer.connect(server.port)
        await tx.bind(cls=BindTransmitter)
        nothing = await server.deliver("alice", DeliverSm(short_message=b"x"))
        assert nothing.outcome is Outcome.NOT_SENT  # a transmitter never gets deliver_sm

        rx = await RawPeer.connect(server.port)
        await rx.bind(cls=BindReceiver)
        receipt = DeliverSm(esm_class=0x04, short_message=b"id:msg-1 stat:DELIVRD")
        pending = asyncio.ensure_future(server.deliver("alice", receipt, context="ctx"))
        got = await rx.read_pdu()
        assert got.short_message == receipt.short_message and got.is_receipt
        await rx.send(DeliverSmResp(sequence_number=got.sequence_number))
        result = await pending
        assert result.outcome is Outcome.ACCEPTED and result.context == "ctx"

        pending = asyncio.ensure_future(server.deliver("alice", DeliverSm(short_message=b"mo")))
        got = await rx.read_pdu()
        await rx.send(
            DeliverSmResp(sequence_number=got.sequence_number, command_status=S.ESME_RX_T_APPN)
        )
        result = await pending
        assert result.outcome is Outcome.REJECTED and result.status == S.ESME_RX_T_APPN
        assert result.retryable

        # Sent, then the receiver vanishes before answering: unknown, never lost.
        pending = asyncio.ensure_future(server.deliver("alice", DeliverSm(short_message=b"?")))
        await rx.read_pdu()
        await rx.close()
        result = await pending
        assert result.outcome is Outcome.UNKNOWN and result.reason == "connection lost"
        await tx.close()
    finally:
        await server.close(grace=1.0)


async def test_deliver_times_out_as_unknown() -> None:
    server = await start_server(
        DemoSmsc(),
        session=SessionConfig(window=2, response_timeout=0.2, enquire_link_interval=None),
    )
    try:
        rx = await RawPeer.connect(server.port)
        await rx.bind(cls=BindReceiver)
        result = await server.deliver("alice", DeliverSm(short_message=b"x"))
        assert result.outcome is Outcome.UNKNOWN and result.reason == "response timeout"
        await rx.close()
    finally:
        await server.close(grace=1.0)


async def test_deliver_waits_for_window() -> None:
    server = await start_server(
        DemoSmsc(), session=SessionConfig(window=1, enquire_link_interval=None)
    )
    try:
        rx = await RawPeer.connect(server.port)
        await rx.bind(cls=BindReceiver)
        first = asyncio.ensure_future(server.deliver("alice", DeliverSm(short_message=b"1")))
        second = asyncio.ensure_future(server.deliver("alice", DeliverSm(short_message=b"2")))
        got = await rx.read_pdu()
        assert got.short_message == b"1"
        with pytest.raises(TimeoutError):
            await rx.read_pdu(wait=0.2)  # the second waits for a free slot
        await rx.send(DeliverSmResp(sequence_number=got.sequence_number))
        got = await rx.read_pdu()
        assert got.short_message == b"2"
        await rx.send(DeliverSmResp(sequence_number=got.sequence_number))
        assert (await first).outcome is (await second).outcome is Outcome.ACCEPTED
        third = asyncio.ensure_future(server.deliver("alice", DeliverSm(short_message=b"3")))
        got = await rx.read_pdu()
        full = await server.deliver("alice", DeliverSm(short_message=b"4"), window_timeout=0.1)
        assert full.outcome is Outcome.NOT_SENT and full.reason == "window full"
        await rx.send(DeliverSmResp(sequence_number=got.sequence_number))
        assert (await third).outcome is Outcome.ACCEPTED
        await rx.close()
    finally:
        await server.close(grace=1.0)


async def test_unbound_connection_closed_after_bind_timeout() -> None:
    server = await start_server(DemoSmsc(), bind_timeout=0.2)
    try:
        idle = await RawPeer.connect(server.port)
        assert await idle.wait_closed(wait=2.0)
    finally:
        await server.close(grace=1.0)


async def test_peer_unbind_and_server_close_drains() -> None:
    handler = DemoSmsc()
    server = await start_server(handler)
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        assert (await peer.request(Unbind())) == UnbindResp(sequence_number=2)
        assert await peer.wait_closed()

        handler.hold = asyncio.Event()
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        await peer.send(SubmitSm(destination_addr="1"))
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(server.close(grace=3.0))
        unbind = await peer.read_pdu()
        assert isinstance(unbind, Unbind)
        # A submit arriving now is refused, but the one in flight is still answered.
        late = await peer.request(SubmitSm(destination_addr="2"))
        assert late.command_status == S.ESME_RINVBNDSTS
        await peer.send(UnbindResp(sequence_number=unbind.sequence_number))
        await asyncio.sleep(0.05)
        assert not closing.done()
        handler.hold.set()
        answer = await peer.read_pdu()
        assert answer == SubmitSmResp(sequence_number=2, message_id="msg-1")
        assert await peer.wait_closed()
        await closing
    finally:
        await server.close(grace=1.0)


async def test_protocol_errors_are_answered_on_the_wire() -> None:
    server = await start_server(DemoSmsc())
    try:
        peer = await RawPeer.connect(server.port)
        # Before bind: submit refused with RINVBNDSTS.
        resp = await peer.request(SubmitSm(destination_addr="1"))
        assert resp.command_status == S.ESME_RINVBNDSTS
        await peer.bind()
        # Unknown command id: generic_nack, and the session carries on.
        await peer.send_raw(struct.pack(">IIII", 16, 0x0000_0777, 0, 50))
        assert (await peer.read_pdu()) == GenericNack(sequence_number=50, command_status=3)
        # Second bind: RALYBND.
        resp = await peer.request(BindTransmitter(system_id="alice", password="secret"))
        assert resp.command_status == S.ESME_RALYBND
        # Field error: the PDU's own response with the field's status.
        body = encode(SubmitSm(sequence_number=60, destination_addr="1"))[16:]
        bad = body.replace(b"\x001\x00", b"\x00" + b"1" * 30, 1)
        await peer.send_raw(struct.pack(">IIII", 16 + len(bad), 4, 0, 60) + bad)
        resp = await peer.read_pdu()
        assert resp == SubmitSmResp(sequence_number=60, command_status=S.ESME_RINVDSTADR)
        # Framing lost: generic_nack RINVCMDLEN, then the server hangs up.
        await peer.send_raw(struct.pack(">IIII", 0x7FFF_FFFF, 4, 0, 61))
        assert (await peer.read_pdu()) == GenericNack(sequence_number=61, command_status=2)
        assert await peer.wait_closed()
    finally:
        await server.close(grace=1.0)


async def test_authenticate_that_raises_answers_rsyserr() -> None:
    class Broken(ServerHandler):
        async def authenticate(self, request) -> BindResult:
            raise RuntimeError("database down")

    server = await start_server(Broken())
    try:
        peer = await RawPeer.connect(server.port)
        resp = await peer.bind()
        assert resp.command_status == S.ESME_RSYSERR
        assert await peer.wait_closed()
    finally:
        await server.close(grace=1.0)


async def test_default_handler_refuses() -> None:
    server = await start_server(ServerHandler())
    try:
        peer = await RawPeer.connect(server.port)
        assert (await peer.bind()).command_status == S.ESME_RBINDFAIL
    finally:
        await server.close(grace=1.0)


async def test_server_keepalive_closes_dead_peer() -> None:
    server = await start_server(
        DemoSmsc(),
        session=SessionConfig(enquire_link_interval=0.1, response_timeout=0.2),
    )
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        link = await peer.read_pdu()
        assert isinstance(link, EnquireLink)
        # Never answered: the server gives up on this peer.
        assert await peer.wait_closed(wait=3.0)
    finally:
        await server.close(grace=1.0)


class _Table(ServerHandler):
    """Answers each submit_sm from its destination; ``soon`` answers through futures."""

    def __init__(self, soon: bool) -> None:
        self.soon = soon
        self.held: list[asyncio.Future] = []

    async def authenticate(self, request):
        return BindResult.accept(request.system_id)

    def _reply(self, pdu):
        kind = pdu.destination_addr
        if kind == "boom":
            raise RuntimeError("on purpose")
        return {"ok": "id-1", "refuse": S.ESME_RINVDSTADR, "none": None,
                "nonsense": DeliverSmResp()}[kind]

    async def handle_request(self, session, pdu):
        return self._reply(pdu)

    def handle_request_soon(self, session, pdu):
        if not self.soon:
            return None
        future = asyncio.get_running_loop().create_future()
        if pdu.destination_addr == "hold":
            self.held.append(future)
            return future
        try:
            future.set_result(self._reply(pdu))
        except RuntimeError as exc:
            future.set_exception(exc)
        return future


async def test_fast_path_answers_as_the_task_path() -> None:
    answers = {}
    for soon in (False, True):
        server = await start_server(_Table(soon))
        try:
            peer = await RawPeer.connect(server.port)
            await peer.bind()
            answers[soon] = [
                await peer.request(SubmitSm(destination_addr=kind))
                for kind in ("ok", "refuse", "none", "nonsense", "boom", "ok")
            ]
            await peer.close()
        finally:
            await server.close(grace=1.0)
    assert answers[True] == answers[False]
    assert [a.command_status for a in answers[True]] == [
        S.ESME_ROK, S.ESME_RINVDSTADR, S.ESME_ROK, S.ESME_RSYSERR, S.ESME_RSYSERR, S.ESME_ROK]
    assert answers[True][0].message_id == "id-1"


async def test_fast_path_request_in_flight_is_answered_before_close() -> None:
    handler = _Table(soon=True)
    server = await start_server(handler)
    try:
        peer = await RawPeer.connect(server.port)
        await peer.bind()
        await peer.send(SubmitSm(destination_addr="hold"))
        await asyncio.sleep(0.05)
        [session] = server.sessions("alice")
        assert session.busy == 1
        closing = asyncio.ensure_future(server.close(grace=3.0))
        unbind = await peer.read_pdu()
        assert isinstance(unbind, Unbind)
        await peer.send(UnbindResp(sequence_number=unbind.sequence_number))
        await asyncio.sleep(0.05)
        assert not closing.done()
        handler.held[0].set_result("late-id")
        assert await peer.read_pdu() == SubmitSmResp(sequence_number=2, message_id="late-id")
        assert await peer.wait_closed()
        await closing
        assert session.busy == 0
    finally:
        await server.close(grace=1.0)


async def test_start_deliver_writes_now_and_keeps_the_slot_until_the_answer() -> None:
    server = await start_server(
        DemoSmsc(), session=SessionConfig(window=2, enquire_link_interval=None)
    )
    try:
        none = await server.start_deliver("alice", DeliverSm(short_message=b"x"))
        assert none.done() and none.result().outcome is Outcome.NOT_SENT
        rx = await RawPeer.connect(server.port)
        await rx.bind(cls=BindReceiver)
        [session] = server.sessions("alice")
        first = await server.start_deliver("alice", DeliverSm(short_message=b"1"), context=1)
        second = await server.start_deliver("alice", DeliverSm(short_message=b"2"), context=2)
        assert not first.done() and not second.done()
        # Both slots are held until the answers: a third finds the window full.
        full = await server.start_deliver(
            "alice", DeliverSm(short_message=b"3"), window_timeout=0.1
        )
        assert full.result().outcome is Outcome.NOT_SENT and full.result().reason == "window full"
        got = [await rx.read_pdu(), await rx.read_pdu()]
        assert [g.short_message for g in got] == [b"1", b"2"]
        await rx.send(DeliverSmResp(sequence_number=got[1].sequence_number))
        await rx.send(
            DeliverSmResp(sequence_number=got[0].sequence_number, command_status=S.ESME_RX_T_APPN)
        )
        assert (await second).outcome is Outcome.ACCEPTED and second.result().context == 2
        assert (await first).outcome is Outcome.REJECTED and first.result().context == 1
        assert session.load == 0
        later = await server.start_deliver("alice", DeliverSm(short_message=b"4"))
        assert (await rx.read_pdu()).short_message == b"4"
        await rx.close()
        assert (await later).outcome is Outcome.UNKNOWN
    finally:
        await server.close(grace=1.0)
