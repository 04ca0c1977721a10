"""Binary MO: kept octet for octet, never read as a keyword, passed on as it came to the
SMPP client and, as hex with its encoding, to the HTTP callback (gateway.report.mo, "Binary MO")."""

from __future__ import annotations

import json

import pytest
import pytest_asyncio

from gateway.accept.pipeline import Pipeline
from gateway.report.callbacks import mo_body
from gateway.report.mo import (
    MoContent,
    MoHandler,
    join_parts,
    mo_content,
    outbox_row,
    passthrough_of,
)
from smpp.pdu import DataCoding, DeliverSm, EsmClass, SubmitSm
from smpp.results import Outcome
from smpp.udh import concat_udh
from tests.gateway.smpp_stack import Esme, build_stack, eventually
from tests.gateway.world import RU_MOBILE, SENDER, make_world, send_accepting_mo

PORTS = bytes([0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0])   # UDH: application ports 2948/9200
STOPISH = b"STOP"                                              # reads as a keyword, if decoded
NULS = b"\x00\x01STOP\xff\xfe"


def mo(data: bytes, *, data_coding: int = DataCoding.OCTET_UNSPECIFIED_8BIT, udhi: bool = False,
       source: str = RU_MOBILE) -> DeliverSm:
    return DeliverSm(source_addr=source, destination_addr=SENDER, data_coding=data_coding,
                     esm_class=EsmClass.UDHI if udhi else 0, short_message=data)


# --- pure ------------------------------------------------------------------------------

def test_mo_content():
    assert mo_content(NULS, 4) == MoContent(NULS.hex(), 4, NULS)
    assert mo_content(NULS, 0x02).binary
    assert mo_content(b"hi", 0) == MoContent("hi", 0) and not mo_content(b"hi", 0).binary


@pytest.mark.parametrize(("pdu", "expected"), [
    (mo(PORTS + STOPISH, udhi=True), PORTS + STOPISH),
    (mo(PORTS + b"text", data_coding=0, udhi=True), PORTS + b"text"),   # ports on text, too
    (mo(bytes([0x09, 0x05, 0x04]) + STOPISH, udhi=True), bytes([0x09, 0x05, 0x04]) + STOPISH),
    (mo(concat_udh(1, 2, 1) + STOPISH, udhi=True), None),               # reassembled instead
    (mo(STOPISH), None),
])
def test_passthrough_of(pdu, expected):
    assert passthrough_of(pdu) == expected


def test_outbox_row_keeps_binary_as_it_came():
    row = outbox_row(7, RU_MOBILE, SENDER, MoContent(PORTS.hex(), 4, PORTS, udhi=True))
    assert (row.kind, row.esm_class, row.data_coding, row.short_message) == ("mo", 0x40, 4, PORTS)
    plain = outbox_row(7, RU_MOBILE, SENDER, MoContent(NULS.hex(), 2, NULS))
    assert (plain.esm_class, plain.data_coding, plain.short_message) == (0, 2, NULS)
    text = outbox_row(7, RU_MOBILE, SENDER, MoContent("hi", 0))
    assert (text.esm_class, text.data_coding, text.short_message) == (0, 0, b"hi")


def test_join_parts_of_binary_is_hex():
    rows = [{"seq": 2, "data_coding": 4, "payload": b"\xff"}, {"seq": 1, "data_coding": 4, "payload": b"\x00"}]
    assert join_parts(rows, 2) == ("00ff", 2, True)


def test_callback_body_of_text_has_the_documented_fields_only():
    text = mo_body(transaction_id="t", dnis=RU_MOBILE, text="hello", channel="sms")
    assert set(text) == {"transactionID", "dnis", "status", "eventTime", "channel", "message"}
    binary = mo_body(transaction_id="t", dnis=RU_MOBILE, text=NULS.hex(), channel="sms",
                     binary=True, data_coding=4, udhi=False)
    assert {k: binary[k] for k in ("message", "encoding", "dataCoding", "udhi")} == {
        "message": NULS.hex(), "encoding": "binary", "dataCoding": 4, "udhi": False}


# --- carrier → Herald → SMPP client, over sockets ------------------------------------------

@pytest_asyncio.fixture(loop_scope="session")
async def stack(pool, redis, settings):
    s = await build_stack(pool, redis, settings, mo_enabled=True)
    yield s
    await s.stop()


async def _carrier_sends(stack, pdu: DeliverSm) -> None:
    bound = [s.account_key for s in stack.sim.server.connections if s.can_deliver]
    result = await stack.sim.server.deliver(bound[0], pdu)
    assert result.outcome is Outcome.ACCEPTED


async def _mt_sent(stack, client) -> None:
    """An MT from the client to the subscriber: the MO that answers it is the client's."""
    sent = await client.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE,
                                        short_message=b"Reply to us"))
    assert sent.message_id
    await eventually(lambda: stack.sim.received, within=10)


async def test_binary_mo_reaches_the_client_as_it_came(stack, pool):
    esme = Esme()
    client = await stack.client(handler=esme)
    await _mt_sent(stack, client)
    await _carrier_sends(stack, mo(PORTS + STOPISH, udhi=True))
    # in two parts joined by concatenation only: reassembled, NULs and all
    await _carrier_sends(stack, mo(concat_udh(77, 2, 1) + NULS[:3], udhi=True))
    await _carrier_sends(stack, mo(concat_udh(77, 2, 2) + NULS[3:], udhi=True))
    await esme.wait(lambda: len(esme.mo) == 2)
    got = sorted(((p.esm_class, p.data_coding, p.short_message) for p in esme.mo), reverse=True)
    assert got == [(0x40, 4, PORTS + STOPISH), (0, 4, NULS)]
    rows = await pool.fetch(
        """SELECT text, encoding, data_coding, udhi, parts, action, template_id FROM mo_messages
           ORDER BY udhi DESC""")
    assert [tuple(r) for r in rows] == [
        ((PORTS + STOPISH).hex(), "binary", 4, True, 1, None, None),
        (NULS.hex(), "binary", 4, False, 2, None, None)]
    # "STOP" in octets is no opt-out
    assert await pool.fetchval("SELECT count(*) FROM stop_list") == 0


async def test_text_mo_is_unchanged(stack, pool):
    esme = Esme()
    client = await stack.client(handler=esme)
    await _mt_sent(stack, client)
    await stack.sim.send_mo(RU_MOBILE, SENDER, "hello there")
    await esme.wait(lambda: esme.mo)
    (pdu,) = esme.mo
    assert (pdu.esm_class, pdu.data_coding, pdu.short_message) == (0, 0, b"hello there")
    row = await pool.fetchrow("SELECT text, encoding, data_coding, udhi FROM mo_messages")
    assert tuple(row) == ("hello there", None, 0, False)


# --- the HTTP callback ---------------------------------------------------------------------

async def test_callback_of_binary_and_text_mo(pool, redis, settings):
    world = await make_world(pool, mo_enabled=True)
    pipeline = Pipeline(pool, redis, settings)
    await pipeline.start()
    try:
        mt = await send_accepting_mo(pipeline, world.partner_id)
        handler = MoHandler(pool, pipeline)
        await handler.receive_pdu(1, mo(PORTS + NULS, udhi=True))
        await handler.receive_pdu(1, mo(b"STOP", data_coding=0))
        bodies = [json.loads(b) for b in await pool.fetchval(
            "SELECT array_agg(body ORDER BY id) FROM callback_outbox WHERE kind = 'mo'")]
        binary, text = bodies
        assert {k: binary[k] for k in ("transactionID", "dnis", "message", "encoding", "dataCoding",
                                       "udhi")} == {
            "transactionID": str(mt.message_id), "dnis": RU_MOBILE, "message": (PORTS + NULS).hex(),
            "encoding": "binary", "dataCoding": 4, "udhi": True}
        assert set(text) == {"transactionID", "dnis", "status", "eventTime", "channel", "message"}
        assert text["message"] == "STOP"
        # the text STOP is an opt-out; the binary one before it was not
        assert [r["action"] for r in await pool.fetch(
            "SELECT action FROM mo_messages ORDER BY received_at")] == [None, "unsubscribe"]
    finally:
        await pipeline.stop()
