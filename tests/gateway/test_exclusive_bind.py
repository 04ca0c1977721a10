"""Exclusive vendor binds: two Herald processes (two pools), one bind, takeover on death."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gateway.base.app import open_pool
from gateway.send.connectors import BIND_LOCK_SPACE, Connectors, bind_lock_key
from smpp.simulator import CarrierSimulator, SimConfig
from tests.gateway.smpp_stack import FAST, eventually
from tests.gateway.world import make_world

OPTIONS = replace(FAST, lock_retry=0.2)


def test_lock_keys_are_distinct_and_fit_a_bigint():
    keys = {bind_lock_key(v) for v in range(1, 1000)}
    assert len(keys) == 999
    assert all(0 < k < 2**63 for k in keys)
    assert bind_lock_key(7) >> 32 == BIND_LOCK_SPACE


def _owner(processes: list[Connectors], vendor_id: int) -> list[Connectors]:
    return [p for p in processes if p.connectors[vendor_id].owns_lock]


async def _lock_holder_pid(pool, vendor_id: int) -> int | None:
    key = bind_lock_key(vendor_id)
    return await pool.fetchval(
        """SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND classid = $1 AND objid = $2 AND objsubid = 1""",
        key >> 32, key & 0xFFFFFFFF)


async def test_one_process_binds_and_another_takes_over(pool, db_url, redis):
    sim = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await sim.start()
    world = await make_world(pool)
    vid = world.sms_vendor
    await pool.execute("UPDATE vendors SET smpp_port = $2, exclusive_bind = true WHERE id = $1",
                       vid, sim.port)
    other_pool = await open_pool(db_url, 4)
    first = Connectors(pool, redis, options=OPTIONS, refresh=60)
    second = Connectors(other_pool, redis, options=OPTIONS, refresh=60)
    third = Connectors(pool, redis, options=OPTIONS, refresh=60)
    started = [first, second]
    try:
        await first.start()
        await second.start()
        await eventually(lambda: len(sim.server.sessions("herald")) == 1)
        await asyncio.sleep(1.0)   # five lock retries of the standby process
        assert len(sim.server.sessions("herald")) == 1 and sim.counters.binds == 1
        (holder,) = _owner(started, vid)
        standby = second if holder is first else first
        assert not standby.connectors[vid].client.is_bound

        # A clean stop unbinds and gives the lock up: the standby process binds.
        await holder.stop()
        started.remove(holder)
        await eventually(lambda: standby.connectors[vid].client.is_bound, within=5.0)
        assert len(sim.server.sessions("herald")) == 1 and sim.counters.binds == 2

        # The holder's database session dies (as when its process is killed): the lock goes
        # with it, the holder notices and unbinds, and a waiting process takes over.
        await third.start()
        started.append(third)
        await asyncio.sleep(0.5)
        assert not third.connectors[vid].client.is_bound
        pid = await _lock_holder_pid(pool, vid)
        assert pid is not None
        assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
        await eventually(lambda: third.connectors[vid].client.is_bound, within=5.0)
        await eventually(lambda: not standby.connectors[vid].client.is_bound, within=5.0)
        await eventually(lambda: len(sim.server.sessions("herald")) == 1)
        assert _owner(started, vid) == [third]
    finally:
        for process in started:
            await process.stop()
        await other_pool.close()
        await sim.stop()


async def test_non_exclusive_vendor_binds_in_every_process(pool, db_url, redis):
    sim = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await sim.start()
    world = await make_world(pool)
    await pool.execute("UPDATE vendors SET smpp_port = $2 WHERE id = $1", world.sms_vendor, sim.port)
    other_pool = await open_pool(db_url, 4)
    processes = [Connectors(p, redis, options=OPTIONS, refresh=60)
                 for p in (pool, other_pool)]
    try:
        for process in processes:
            await process.start()
        await eventually(lambda: len(sim.server.sessions("herald")) == 2)
        assert await _lock_holder_pid(pool, world.sms_vendor) is None
    finally:
        for process in processes:
            await process.stop()
        await other_pool.close()
        await sim.stop()


async def test_standby_ranks_after_a_live_bind(redis):
    from gateway.send import bindstatus

    for node, state in (("a:1", bindstatus.STANDBY), ("b:2", bindstatus.BOUND),
                        ("c:3", bindstatus.FAILED)):
        await redis.set(f"herald:bind:5:{node}",
                        f'{{"state": "{state}", "reason": "", "since": 1.0}}', ex=30)
    found = (await bindstatus.states(redis, [5]))[5]
    assert [s.state for s in found] == [bindstatus.BOUND, bindstatus.STANDBY, bindstatus.FAILED]
    assert bindstatus.summary(found) == (bindstatus.BOUND, "1/3")
