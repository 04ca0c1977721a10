"""The carrier simulator: binds, ids, receipts after a delay, throttling, MO, store and forward."""

from __future__ import annotations

import asyncio

from smpp.client import ClientConfig, SmppClient
from smpp.pdu import CommandStatus, MessageState, SubmitSm, Tag
from smpp.receipts import parse_receipt
from smpp.results import Outcome
from smpp.session import SessionConfig
from smpp.simulator import CarrierSimulator, SimConfig, cli_command
from tests.gateway.smpp_stack import Esme, eventually
from tests.smpp.smsc_helpers import RawPeer

S = CommandStatus


async def _client(port: int, handler=None, system_id="herald", password="pw") -> SmppClient:
    client = SmppClient(ClientConfig("127.0.0.1", port, system_id, password, reconnect_base=0.05,
                                     reconnect_cap=0.1,
                                     session=SessionConfig(window=10, enquire_link_interval=None,
                                                           response_timeout=2.0)), handler)
    await client.start()
    await asyncio.wait_for(client.wait_bound(), 3)
    return client


async def test_accepts_submits_and_sends_receipts_with_ratios():
    sim = CarrierSimulator(SimConfig(receipt_delay=0.05, delivered=1, undelivered=1, seed=1))
    await sim.start()
    esme = Esme()
    client = await _client(sim.port, esme)
    try:
        ids = []
        for i in range(20):
            r = await client.submit(SubmitSm(source_addr="Herald", destination_addr="79160000000",
                                             short_message=f"t{i}".encode(), registered_delivery=1))
            ids.append(r.message_id)
        assert len(set(ids)) == 20
        await esme.wait(lambda: len(esme.receipts) == 20)
        states = {parse_receipt(p.short_message).state for p in esme.receipts}
        assert states == {MessageState.DELIVERED, MessageState.UNDELIVERABLE}
        assert {p.tlvs[Tag.RECEIPTED_MESSAGE_ID] for p in esme.receipts} == set(ids)
        c = sim.counters
        await eventually(lambda: c.receipts_acked == 20)  # the last answer may be on its way
        assert (c.binds, c.submits, c.accepted, c.receipts_acked) == (1, 20, 20, 20)
        assert [r.text for r in sim.received] == [f"t{i}" for i in range(20)]
    finally:
        await client.close(grace=0.2)
        await sim.stop()


async def test_throttling_refused_accounts_and_no_receipt_unless_asked():
    sim = CarrierSimulator(SimConfig(receipt_delay=0.01, throttle_ratio=1.0, accounts={"herald": "pw"}))
    await sim.start()
    try:
        peer = await RawPeer.connect(sim.port)
        assert (await peer.bind("herald", "bad")).command_status == S.ESME_RINVPASWD
        esme = Esme()
        client = await _client(sim.port, esme)
        r = await client.submit(SubmitSm(source_addr="a", destination_addr="1", short_message=b"x"))
        assert r.status == S.ESME_RTHROTTLED and sim.counters.throttled == 1
        sim.config.throttle_ratio = 0
        r = await client.submit(SubmitSm(source_addr="a", destination_addr="1", short_message=b"x"))
        assert r.status == S.ESME_ROK
        await asyncio.sleep(0.1)
        assert esme.receipts == []
        await client.close(grace=0.2)
    finally:
        await sim.stop()


async def test_receipts_wait_for_the_next_bind_and_disconnect_every():
    sim = CarrierSimulator(SimConfig(receipt_delay=0.2, disconnect_every=3))
    await sim.start()
    try:
        client = await _client(sim.port)
        results = [await client.submit(SubmitSm(source_addr="a", destination_addr="1",
                                                short_message=b"x", registered_delivery=1))
                   for _ in range(3)]
        assert [r.outcome for r in results][:2] == [Outcome.ACCEPTED] * 2
        assert results[2].outcome is Outcome.UNKNOWN     # the link dropped on the third
        await client.close(grace=0.1)
        await asyncio.sleep(0.4)                         # receipts come due while nobody is bound
        esme = Esme()
        client = await _client(sim.port, esme)
        await esme.wait(lambda: len(esme.receipts) == 2)
        await client.close(grace=0.1)
    finally:
        await sim.stop()


async def test_mo_long_message_in_parts_and_silence():
    sim = CarrierSimulator(SimConfig())
    await sim.start()
    esme = Esme()
    client = await _client(sim.port, esme)
    try:
        assert await sim.send_mo("79161234567", "Herald", "word " * 50) == [Outcome.ACCEPTED] * 2
        assert all(p.esm_class & 0x40 for p in esme.mo) and len(esme.mo) == 2
        sim.go_silent()
        pending = asyncio.ensure_future(client.submit(SubmitSm(source_addr="a", destination_addr="1")))
        await asyncio.sleep(0.2)
        assert not pending.done()
        sim.speak()
        assert (await pending).status == S.ESME_RTHROTTLED
    finally:
        await client.close(grace=0.2)
        await sim.stop()


def test_cli_command_shape():
    import argparse

    help_text, add_args, func = cli_command()
    parser = argparse.ArgumentParser()
    add_args(parser)
    args = parser.parse_args(["--port", "0", "--undelivered", "0.2", "--account", "a:b"])
    assert args.undelivered == 0.2 and args.account == ["a:b"] and callable(func) and help_text
