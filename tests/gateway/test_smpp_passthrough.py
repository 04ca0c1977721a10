"""Binary data and foreign UDH elements pass through Herald as the SMPP client wrote them."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from gateway.intake.smpp_submits import passthrough_of
from gateway.send.connectors import build_submits
from gateway.store.messages import Message
from smpp.pdu import CommandStatus, SubmitSm
from smpp.udh import InformationElement, build_udh, concat_udh
from tests.gateway.smpp_stack import Esme, build_stack, eventually
from tests.gateway.world import RU_MOBILE, SENDER

S = CommandStatus
# Application port addressing, 16-bit (3GPP TS 23.040 §9.2.3.24.4): WAP push to port 2948.
PORTS = build_udh([InformationElement(0x05, bytes([0x0B, 0x84, 0x23, 0xF0]))])
WBXML = bytes([0x01, 0x06, 0x00, 0x1F, 0x2D, 0xB6, 0x00, 0x91, 0x81, 0x92])


def _submit(data: bytes, *, data_coding: int = 0x04, esm_class: int = 0x40) -> SubmitSm:
    return SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE, short_message=data,
                    data_coding=data_coding, esm_class=esm_class, registered_delivery=1)


@pytest.mark.parametrize(("pdu", "expected"), [
    (_submit(PORTS + WBXML), (PORTS + WBXML, True)),
    (_submit(WBXML, esm_class=0), (WBXML, False)),                      # 8-bit data, no UDH
    (_submit(PORTS + b"hello", data_coding=0), (PORTS + b"hello", True)),  # text with ports
    (_submit(concat_udh(1, 2, 1) + b"text", data_coding=0), None),       # concatenation: Herald's
    (_submit(b"plain text", data_coding=0, esm_class=0), None),
    (_submit(b"\x00\x41", data_coding=0x08, esm_class=0), None),         # UCS-2 is text
])
def test_passthrough_of(pdu, expected):
    assert passthrough_of(pdu) == expected


def test_build_submits_sends_the_octets_back_out():
    from tests.gateway.test_connectors import _message

    message: Message = _message(text=(PORTS + WBXML).hex(), encoding="binary", data_coding=4,
                                udhi=True)
    (pdu,) = build_submits(message, reference=1)
    assert (pdu.short_message, pdu.esm_class, pdu.data_coding) == (PORTS + WBXML, 0x40, 4)
    big = _message(text=bytes(300).hex(), encoding="binary", data_coding=4, udhi=False)
    (pdu,) = build_submits(big, reference=1)
    assert pdu.short_message == b"" and pdu.esm_class == 0 and len(pdu.tlvs[0x0424]) == 300


@pytest_asyncio.fixture(loop_scope="session")
async def stack(pool, redis, settings):
    s = await build_stack(pool, redis, settings)
    yield s
    await s.stop()


async def test_binary_with_ports_reaches_the_carrier_unchanged(stack, pool):
    client = await stack.client(handler=Esme())
    sent = [PORTS + WBXML, WBXML]
    results = [await client.submit(_submit(sent[0])), await client.submit(_submit(sent[1], esm_class=0))]
    assert [r.status for r in results] == [S.ESME_ROK, S.ESME_ROK]
    await eventually(lambda: len(stack.sim.received) == 2, within=10)
    got = sorted(stack.sim.received, key=lambda r: len(r.short_message), reverse=True)
    assert [(r.short_message, r.data_coding, r.esm_class) for r in got] == [
        (sent[0], 4, 0x40), (sent[1], 4, 0)]
    rows = await pool.fetch("SELECT text, encoding, parts FROM messages WHERE id = ANY($1::uuid[])",
                            [uuid.UUID(r.message_id) for r in results])
    assert sorted((bytes.fromhex(r["text"]), r["encoding"], r["parts"]) for r in rows) == sorted(
        (data, "binary", 1) for data in sent)


async def test_a_malformed_udh_is_refused(stack):
    client = await stack.client(handler=Esme())
    result = await client.submit(_submit(bytes([0x09, 0x05, 0x04]) + WBXML))
    assert result.status == S.ESME_RINVESMCLASS
