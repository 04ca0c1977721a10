"""Clients nobody here wrote, against Herald's server, over real loopback sockets.

python-smpplib is synchronous: each of its calls runs in a worker thread while
the server runs on the test's event loop. aiosmpplib runs on the same loop.
Long messages are reassembled on the server side with :mod:`smpp.reassembly`
and decoded with :mod:`smpp.encoding`, so the text travels the whole way.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import pytest
import smpplib.client
import smpplib.consts
import smpplib.gsm
import smpplib.smpp

from smpp.client import ClientConfig, ClientHandler, SmppClient
from smpp.encoding import decode as decode_text
from smpp.pdu import DataCoding, DeliverSm, EsmClass, MessageState, Pdu, SubmitSm, Tag
from smpp.reassembly import PartKey, Reassembler
from smpp.receipts import build_receipt
from smpp.results import Outcome
from smpp.session import SessionConfig
from smpp.udh import parse_udh

from .smsc_helpers import DemoSmsc, start_server

LONG_GSM = "Herald interop: " + "the quick brown fox jumps over the lazy dog, " * 6
LONG_UCS2 = "Привет из Herald! " * 12
RECEIPT_DATE = datetime(2024, 1, 2, 3, 4)


def texts_of(requests: list[Pdu]) -> list[str]:
    """Reassemble and decode every message the server was sent, in completion order."""
    reassembler: Reassembler[int] = Reassembler(timeout=60.0)
    texts = []
    for pdu in requests:
        if not isinstance(pdu, SubmitSm):
            continue
        payload = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD, pdu.short_message)
        key, seq = PartKey(pdu.source_addr, pdu.destination_addr, 0, 1), 1
        if pdu.esm_class & EsmClass.UDHI:
            user_data = parse_udh(payload)
            concat = user_data.concat
            assert concat is not None
            payload = user_data.payload
            key = PartKey(pdu.source_addr, pdu.destination_addr, concat.reference, concat.total)
            seq = concat.sequence
        elif Tag.SAR_MSG_REF_NUM in pdu.tlvs:
            key = PartKey(
                pdu.source_addr,
                pdu.destination_addr,
                pdu.tlvs[Tag.SAR_MSG_REF_NUM],
                pdu.tlvs[Tag.SAR_TOTAL_SEGMENTS],
            )
            seq = pdu.tlvs[Tag.SAR_SEGMENT_SEQNUM]
        done = reassembler.add(key, seq, payload, 0.0, pdu.data_coding)
        if done is not None:
            texts.append(decode_text(done.payload, done.contexts[0]))
    return texts


def receipt_for(message_id: str) -> DeliverSm:
    text = build_receipt(
        message_id,
        MessageState.DELIVERED,
        submit_date=RECEIPT_DATE,
        done_date=RECEIPT_DATE,
        text="Hello",
    )
    return DeliverSm(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900123",
        dest_addr_ton=5,
        destination_addr="Herald",
        esm_class=EsmClass.TYPE_DELIVERY_RECEIPT,
        short_message=text.encode("ascii"),
        tlvs={Tag.RECEIPTED_MESSAGE_ID: message_id, Tag.MESSAGE_STATE: MessageState.DELIVERED},
    )


def mo_message() -> DeliverSm:
    return DeliverSm(
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900123",
        dest_addr_ton=5,
        destination_addr="Herald",
        short_message=b"STOP",
    )


# --- python-smpplib -----------------------------------------------------------------------


class SmpplibPeer:
    """python-smpplib driven one blocking call at a time from worker threads."""

    def __init__(self, port: int) -> None:
        self.client = smpplib.client.Client(
            "127.0.0.1", port, timeout=5, allow_unknown_opt_params=True
        )
        self.sent: list = []
        self.received: list = []
        self.client.set_message_sent_handler(lambda pdu, **kw: self.sent.append(pdu))
        self.client.set_message_received_handler(lambda pdu, **kw: self.received.append(pdu))

    async def run(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def submit(self, **fields) -> None:
        await self.run(self.client.send_message, **fields)
        await self.run(self.client.read_once)


async def test_smpplib_against_herald_server() -> None:
    smsc = DemoSmsc()
    server = await start_server(smsc)
    peer = SmpplibPeer(server.port)
    client = peer.client
    try:
        await peer.run(client.connect)
        resp = await peer.run(client.bind_transceiver, system_id="alice", password="secret")
        assert resp.status == 0 and resp.system_id == b"SMSC"

        addresses = {
            "source_addr_ton": smpplib.consts.SMPP_TON_ALNUM,
            "source_addr": "Herald",
            "dest_addr_ton": smpplib.consts.SMPP_TON_INTL,
            "dest_addr_npi": smpplib.consts.SMPP_NPI_ISDN,
            "destination_addr": "447700900123",
        }
        # GSM 7-bit (unpacked, data_coding 0) and UCS-2.
        await peer.submit(
            **addresses,
            short_message=smpplib.gsm.gsm_encode("Hello £ and {braces}"),
            data_coding=smpplib.consts.SMPP_ENCODING_DEFAULT,
            registered_delivery=True,
        )
        await peer.submit(
            **addresses,
            short_message="Привет".encode("utf-16-be"),
            data_coding=smpplib.consts.SMPP_ENCODING_ISO10646,
        )
        # Long, with UDH: smpplib's own splitter.
        parts, coding, esm_class = smpplib.gsm.make_parts(LONG_GSM)
        assert len(parts) > 1 and esm_class == 0x40
        for part in parts:
            await peer.submit(
                **addresses, short_message=part, data_coding=coding, esm_class=esm_class
            )
        # Long, with SAR TLVs.
        parts, coding, esm_class = smpplib.gsm.make_parts(LONG_UCS2, use_udhi=False)
        assert len(parts) > 1
        for seq, part in enumerate(parts, start=1):
            await peer.submit(
                **addresses,
                short_message=part,
                data_coding=coding,
                esm_class=esm_class,
                sar_msg_ref_num=0x1234,
                sar_total_segments=len(parts),
                sar_segment_seqnum=seq,
            )
        assert len(peer.sent) == len(smsc.requests)
        assert all(p.status == 0 for p in peer.sent)
        assert [p.message_id for p in peer.sent[:2]] == [b"msg-1", b"msg-2"]
        assert texts_of(smsc.requests) == [
            "Hello £ and {braces}",
            "Привет",
            LONG_GSM,
            LONG_UCS2,
        ]
        assert smsc.requests[0].registered_delivery == 1

        # Receipt, then MO, pushed by the server while smpplib reads.
        for pdu in (receipt_for("msg-1"), mo_message()):
            pending = asyncio.ensure_future(server.deliver("alice", pdu))
            await peer.run(client.read_once)
            result = await pending
            assert result.outcome is Outcome.ACCEPTED
        receipt, mo = peer.received
        assert receipt.receipted_message_id == b"msg-1"
        assert receipt.esm_class == EsmClass.TYPE_DELIVERY_RECEIPT
        assert b"stat:DELIVRD" in receipt.short_message
        assert mo.short_message == b"STOP" and mo.source_addr == b"447700900123"

        # enquire_link from the client.
        link = smpplib.smpp.make_pdu("enquire_link", client=client)
        await peer.run(client.send_pdu, link)
        answer = await peer.run(client.read_pdu)
        assert answer.command == "enquire_link_resp" and answer.sequence == link.sequence

        resp = await peer.run(client.unbind)
        assert resp.command == "unbind_resp" and resp.status == 0
    finally:
        await peer.run(client.disconnect)
        await server.close(grace=1.0)


async def test_smpplib_sees_bind_refusal() -> None:
    server = await start_server(DemoSmsc())
    peer = SmpplibPeer(server.port)
    try:
        await peer.run(peer.client.connect)
        with pytest.raises(smpplib.exceptions.PDUError) as info:
            await peer.run(peer.client.bind_transmitter, system_id="alice", password="nope")
        assert info.value.args[1] == 0x0E  # ESME_RINVPASWD
    finally:
        await peer.run(peer.client.disconnect)
        await server.close(grace=1.0)


# --- aiosmpplib -----------------------------------------------------------------------------


async def test_aiosmpplib_against_herald_server() -> None:
    aiosmpplib = pytest.importorskip("aiosmpplib")
    from aiosmpplib import ESME, AbstractHook, PhoneNumber
    from aiosmpplib import DeliverSm as AioDeliverSm
    from aiosmpplib import SubmitSm as AioSubmitSm
    from aiosmpplib import SubmitSmResp as AioSubmitSmResp
    from aiosmpplib.state import (
        SAR_MSG_REF_NUM,
        SAR_SEGMENT_SEQNUM,
        SAR_TOTAL_SEGMENTS,
        OptionalParam,
    )

    class Hook(AbstractHook):
        def __init__(self) -> None:
            self.messages: list = []
            self.errors: list = []
            self.event = asyncio.Event()

        async def sending(self, smpp_message, pdu, client_id) -> None:
            pass

        async def received(self, smpp_message, pdu, client_id) -> None:
            if smpp_message is not None:
                self.messages.append(smpp_message)
                self.event.set()

        async def send_error(self, smpp_message, error, client_id) -> None:
            self.errors.append(error)

        async def wait_for(self, kind: type, count: int) -> list:
            async with asyncio.timeout(5):
                while len(got := [m for m in self.messages if type(m) is kind]) < count:
                    self.event.clear()
                    await self.event.wait()
            return got

    smsc = DemoSmsc()
    server = await start_server(smsc)
    hook = Hook()
    esme = ESME(
        smsc_host="127.0.0.1",
        smsc_port=server.port,
        system_id="alice",
        password="secret",
        hook=hook,
        enquire_link_interval=0.2,
        socket_timeout=5.0,
        log_level=logging.WARNING,
    )
    runner = asyncio.ensure_future(esme.start())
    try:
        source = PhoneNumber("Herald", ton=aiosmpplib.TON.ALPHANUMERIC)
        dest = PhoneNumber(
            "447700900123", ton=aiosmpplib.TON.INTERNATIONAL, npi=aiosmpplib.NPI.ISDN
        )
        await esme.broker.enqueue(
            AioSubmitSm(
                short_message="Hello from aiosmpplib", source=source, destination=dest, log_id="a1"
            )
        )
        await esme.broker.enqueue(
            AioSubmitSm(
                short_message="Привет",
                source=source,
                destination=dest,
                encoding="ucs2",
                log_id="a2",
            )
        )
        # Long message with UDH (8-bit reference): aiosmpplib splits it itself.
        await esme.broker.enqueue(
            AioSubmitSm(
                short_message=LONG_GSM,
                source=source,
                destination=dest,
                esm_class=0x40,
                auto_message_payload=False,
                log_id="a3",
            )
        )
        # Long message with SAR TLVs. aiosmpplib 0.7.4 cannot split this way itself:
        # without UDHI and with auto_message_payload=False its sender task reads an
        # unassigned `encoding` and dies (UnboundLocalError), dropping the link. So the
        # test cuts the text into 67-character parts and attaches the SAR TLVs.
        chunks = [LONG_UCS2[i : i + 67] for i in range(0, len(LONG_UCS2), 67)]
        for seq, chunk in enumerate(chunks, start=1):
            await esme.broker.enqueue(
                AioSubmitSm(
                    short_message=chunk,
                    source=source,
                    destination=dest,
                    encoding="ucs2",
                    optional_params=[
                        OptionalParam(SAR_MSG_REF_NUM, 0x0102),
                        OptionalParam(SAR_TOTAL_SEGMENTS, len(chunks)),
                        OptionalParam(SAR_SEGMENT_SEQNUM, seq),
                    ],
                    log_id=f"a4.{seq}",
                )
            )
        async with asyncio.timeout(5):
            while len(texts_of(smsc.requests)) < 4:
                smsc.arrived.clear()
                await smsc.arrived.wait()
        assert texts_of(smsc.requests) == ["Hello from aiosmpplib", "Привет", LONG_GSM, LONG_UCS2]
        # aiosmpplib reports a message it split itself once (with one part's response).
        # Parts that carry SAR TLVs it also takes for one message of its own and reports
        # once, so only one of the a4.* parts is heard of.
        responses = await hook.wait_for(AioSubmitSmResp, 4)
        assert [r.log_id for r in responses[:3]] == ["a1", "a2", "a3"]
        assert responses[3].log_id.startswith("a4.")
        assert all(r.command_status == 0 and r.message_id.startswith("msg-") for r in responses)

        # A receipt for the first message, and an MO, pushed by the server.
        assert (await server.deliver("alice", receipt_for("msg-1"))).outcome is Outcome.ACCEPTED
        assert (await server.deliver("alice", mo_message())).outcome is Outcome.ACCEPTED
        receipt, mo = await hook.wait_for(AioDeliverSm, 2)
        assert receipt.is_receipt() and receipt.parse_receipt()["id"] == "msg-1"
        assert receipt.log_id == "a1"  # aiosmpplib correlated it to its submit
        assert mo.short_message == "STOP"

        # aiosmpplib sends enquire_link every 0.2 s; the server answers, the link stays up.
        await asyncio.sleep(0.5)
        assert server.sessions("alice")
        assert not hook.errors
    finally:
        await esme.stop()
        runner.cancel()
        try:
            await runner
        except (asyncio.CancelledError, Exception):
            pass
        await server.close(grace=1.0)
    assert not server.sessions("alice")


# --- Herald against Herald ----------------------------------------------------------------------


async def test_herald_client_against_herald_server() -> None:
    smsc = DemoSmsc()
    server = await start_server(smsc)

    class Collect(ClientHandler):
        def __init__(self) -> None:
            self.receipts: list[Pdu] = []
            self.messages: list[Pdu] = []

        async def receipt(self, pdu):
            self.receipts.append(pdu)

        async def message(self, pdu):
            self.messages.append(pdu)

    handler = Collect()
    client = SmppClient(
        ClientConfig(
            "127.0.0.1",
            server.port,
            "alice",
            "secret",
            session=SessionConfig(window=5, enquire_link_interval=0.1, response_timeout=2.0),
            tick_interval=0.05,
        ),
        handler,
    )
    await client.start()
    try:
        await client.wait_bound()
        gsm = SubmitSm(source_addr="Herald", destination_addr="4477", short_message=b"Hi")
        ucs2 = SubmitSm(
            source_addr="Herald",
            destination_addr="4477",
            data_coding=DataCoding.UCS2,
            short_message="Привет".encode("utf-16-be"),
        )
        payload = SubmitSm(
            source_addr="Herald",
            destination_addr="4477",
            tlvs={Tag.MESSAGE_PAYLOAD: LONG_GSM.encode("ascii")},
        )
        results = await asyncio.gather(*(client.submit(p) for p in (gsm, ucs2, payload)))
        assert [r.outcome for r in results] == [Outcome.ACCEPTED] * 3
        assert sorted(texts_of(smsc.requests)) == sorted(["Hi", "Привет", LONG_GSM])
        assert (
            await server.deliver("alice", receipt_for(results[0].message_id))
        ).outcome is Outcome.ACCEPTED
        assert (await server.deliver("alice", mo_message())).outcome is Outcome.ACCEPTED
        assert [r.tlvs[Tag.RECEIPTED_MESSAGE_ID] for r in handler.receipts] == [
            results[0].message_id
        ]
        assert [m.short_message for m in handler.messages] == [b"STOP"]
        await asyncio.sleep(0.3)  # keep-alives flow both ways without harm
        assert client.is_bound
    finally:
        await client.close()
        await server.close(grace=1.0)
