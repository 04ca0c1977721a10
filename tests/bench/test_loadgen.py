"""The benchmark load client against the carrier simulator: real sockets, counts only."""

from __future__ import annotations

import pytest

from bench.loadgen import LoadError, SubmitTemplate, open_load
from smpp.codec import decode
from smpp.pdu import CommandStatus, SubmitSm
from smpp.simulator import CarrierSimulator, SimConfig

S = CommandStatus


def test_template_frames_are_what_the_codec_reads():
    template = SubmitTemplate(source="Bench", prefix="7916", text=b"hello", registered_delivery=1)
    pdu = decode(template.frame(sequence=70_000, index=12_345_678))
    assert pdu == SubmitSm(sequence_number=70_000, source_addr="Bench", destination_addr="79162345678",
                           short_message=b"hello", registered_delivery=1)
    assert len(template.frame(2, 0)) == template.size


async def test_flood_then_paced_counts_submits_and_receipts():
    sim = CarrierSimulator(SimConfig(receipt_delay=0.05, undelivered=1, seed=3))
    await sim.start()
    try:
        async with open_load("127.0.0.1", sim.port, "bench", "x", binds=3, window=20) as load:
            flood = await load.flood(301)
            assert (flood.sent, flood.accepted, flood.refused, flood.unanswered) == (301, 301, 0, 0)
            assert len(flood.latencies) == 301 and flood.rate > 0
            assert await load.wait_receipts(301, 10) == 301
            paced = await load.paced(400.0, 0.5, offset=1_000)
            assert (paced.sent, paced.accepted, paced.unanswered) == (200, 200, 0)
            assert await load.wait_receipts(501, 10) == 501
            assert load.mo == 0
        c = sim.counters
        assert (c.binds, c.accepted) == (3, 501)
        assert sum(c.outcomes.values()) == 501 and len(c.outcomes) == 2   # receipts of both kinds
        # Destinations follow the message index: 0-300 for the flood, 1000-1199 paced.
        assert sorted(r.destination for r in sim.received) == [
            f"7916{i:07d}" for i in [*range(301), *range(1000, 1200)]]
        assert {r.account for r in sim.received} == {"bench"}
    finally:
        await sim.stop()


async def test_refusals_are_counted_by_status():
    sim = CarrierSimulator(SimConfig(throttle_ratio=1.0))
    await sim.start()
    try:
        async with open_load("127.0.0.1", sim.port, "bench", "x", binds=2, window=5) as load:
            run = await load.flood(40)
        assert (run.accepted, run.refused, run.statuses) == (0, 40, {S.ESME_RTHROTTLED: 40})
        assert run.rate == 0 and sim.counters.throttled == 40
    finally:
        await sim.stop()


async def test_refused_bind_raises():
    sim = CarrierSimulator(SimConfig(accounts={"bench": "right"}))
    await sim.start()
    try:
        with pytest.raises(LoadError, match="0x0000000E"):
            async with open_load("127.0.0.1", sim.port, "bench", "wrong", binds=1):
                pass
        assert sim.counters.bind_failures == 1
    finally:
        await sim.stop()


async def test_in_a_child_process():
    sim = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await sim.start()
    try:
        async with open_load("127.0.0.1", sim.port, "bench", "x", binds=2, window=10,
                             process=True) as load:
            run = await load.flood(200)
            assert (run.accepted, run.unanswered) == (200, 0) and len(run.latencies) == 200
            assert await load.wait_receipts(200, 10) == 200
        assert sim.counters.accepted == 200
    finally:
        await sim.stop()
