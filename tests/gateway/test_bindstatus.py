"""Live vendor bind state in Redis, as the connectors publish it and the Admin Panel reads it."""

from __future__ import annotations

import asyncio
import time

from gateway.send import bindstatus
from smpp.simulator import SimConfig
from tests.gateway.smpp_stack import build_stack


async def test_publish_read_and_summary(redis):
    await bindstatus.publish(redis, 7, bindstatus.FAILED, "connect refused", ttl=30)
    other = "other-host:1"
    await redis.set(f"herald:bind:7:{other}", '{"state": "bound", "reason": "", "since": 1}', ex=30)
    states = (await bindstatus.states(redis, [7, 8]))
    assert [s.state for s in states[7]] == ["bound", "failed"]  # best first
    assert states[8] == []
    assert bindstatus.summary(states[7]) == ("bound", "1/2")
    assert bindstatus.summary([states[7][1]]) == ("failed", "connect refused")
    assert bindstatus.summary([]) == ("", "")
    await bindstatus.withdraw(redis, 7)
    assert [s.node for s in (await bindstatus.states(redis, [7]))[7]] == [other]


async def test_state_expires_with_its_process(redis):
    await bindstatus.publish(redis, 9, bindstatus.BOUND, ttl=1)
    assert (await bindstatus.states(redis, [9]))[9]
    await asyncio.sleep(1.2)
    assert (await bindstatus.states(redis, [9]))[9] == []


async def test_connector_reports_bound_then_lost_then_bound(pool, redis, settings):
    stack = await build_stack(pool, redis, settings, SimConfig(receipt_delay=0.05))
    vid = stack.world.sms_vendor
    try:
        async def state() -> str:
            return bindstatus.summary((await bindstatus.states(redis, [vid]))[vid])[0]

        async def wait_for(wanted: str) -> None:
            deadline = time.monotonic() + 10
            while await state() != wanted:
                assert time.monotonic() < deadline, f"bind state never became {wanted}"
                await asyncio.sleep(0.05)

        await wait_for(bindstatus.BOUND)
        await stack.sim.stop()          # the carrier goes away: the connector reconnects
        await wait_for(bindstatus.CONNECTING)
        await stack.connectors.stop()   # a stopped connector withdraws its state
        assert await state() == ""
    finally:
        await stack.stop()
