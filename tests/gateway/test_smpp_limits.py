"""SMPP account limits over several Herald processes: binds and TPS counted in Redis."""

from __future__ import annotations

import asyncio
import math
import time

from gateway.accept.pipeline import Pipeline
from gateway.base.app import open_pool
from gateway.intake.smpp_accounts import create_account
from gateway.intake.smpp_limits import AccountThrottle, BindRegistry
from gateway.intake.smpp_server import SmppIngress
from smpp.client import ClientConfig, SmppClient
from smpp.pdu import CommandStatus, SubmitSm
from smpp.results import Outcome
from smpp.session import SessionConfig
from tests.gateway.smpp_stack import eventually
from tests.gateway.world import RU_MOBILE, SENDER, make_world
from tests.smpp.smsc_helpers import RawPeer

S = CommandStatus


async def test_registry_counts_across_registries_and_forgets_the_dead(redis):
    alive = BindRegistry(redis, ttl=0.6)
    dead = BindRegistry(redis, ttl=0.6)
    await alive.start()       # refreshes its sessions; `dead` never does, as if killed
    try:
        assert await alive.reserve(7, "s1", max_binds=2)
        assert await alive.reserve(7, "s1", max_binds=2)   # the same session twice: one bind
        assert await dead.reserve(7, "s1", max_binds=2)    # another process's own "s1"
        assert await alive.count(7) == 2
        assert not await alive.reserve(7, "s2", max_binds=2)
        assert await alive.reserve(8, "s2", max_binds=1)   # accounts are apart
        await asyncio.sleep(1.5)   # > ttl: the dead registry's bind expired, the live ones stayed
        assert await alive.count(7) == 1 and await alive.count(8) == 1
        assert await alive.reserve(7, "s3", max_binds=2)
        await alive.release("s1")
        await alive.release("s1")   # a second release is harmless
        assert await alive.count(7) == 1
    finally:
        await alive.stop()
    assert await alive.count(7) == 0 and await alive.count(8) == 0


async def test_a_restarted_node_clears_what_its_predecessor_left(redis):
    killed = BindRegistry(redis, ttl=30.0, node="host-a:2775")
    other = BindRegistry(redis, ttl=30.0, node="host-b:2775")
    assert await killed.reserve(7, "s1", max_binds=3)
    assert await killed.reserve(8, "s1", max_binds=3)
    assert await other.reserve(7, "s1", max_binds=3)
    await killed.refresh()
    # host-a's process was killed (no stop, no release); its successor starts.
    successor = BindRegistry(redis, ttl=30.0, node="host-a:2775")
    await successor.start()
    try:
        assert await successor.count(7) == 1 and await successor.count(8) == 0
        assert await successor.reserve(8, "s1", max_binds=1)
    finally:
        await successor.stop()
        await other.stop()
    assert await other.count(7) == 0 and await other.count(8) == 0


async def test_throttle_is_shared_by_processes(redis):
    processes = [AccountThrottle(redis), AccountThrottle(redis)]
    started = time.monotonic()
    granted = 0
    for _ in range(30):
        for throttle in processes:
            granted += await throttle.admit(5, 10)
    elapsed = time.monotonic() - started
    # One second's burst, plus what refilled meanwhile, plus one chunk (1 token) per process.
    assert 10 <= granted <= 10 + math.ceil(elapsed * 10) + 2
    assert await processes[0].admit(6, None) and await processes[0].admit(6, 0)


def _client(port: int) -> SmppClient:
    return SmppClient(ClientConfig(
        "127.0.0.1", port, "acme", "secret1", reconnect_base=0.05, reconnect_cap=0.2,
        session=SessionConfig(window=40, enquire_link_interval=None, response_timeout=5.0)))


async def test_two_ingresses_share_max_binds_and_tps(pool, db_url, redis, settings):
    world = await make_world(pool)
    account = await create_account(pool, world.partner_id, "acme", "secret1", max_binds=2, tps=5)
    other_pool = await open_pool(db_url, 4)
    pipeline = Pipeline(pool, redis, settings)
    await pipeline.start()
    a = SmppIngress(pool, pipeline, redis=redis, bind_ttl=0.6)
    b = SmppIngress(other_pool, pipeline, redis=redis, bind_ttl=0.6)
    dying = SmppIngress(pool, pipeline, redis=redis, bind_ttl=0.6)
    peers: list[RawPeer] = []
    clients: list[SmppClient] = []

    async def bind(ingress: SmppIngress) -> int:
        peer = await RawPeer.connect(ingress.port)
        peers.append(peer)
        return (await peer.bind("acme", "secret1")).command_status

    try:
        for ingress in (a, b, dying):
            await ingress.start()
        assert await bind(a) == S.ESME_ROK
        assert await bind(b) == S.ESME_ROK
        assert await bind(a) == S.ESME_RBINDFAIL   # each process alone would have said yes
        assert await bind(b) == S.ESME_RBINDFAIL
        await peers[0].close()                      # a's bind ends: the slot is free for b
        await eventually(lambda: _count_is(a, account.id, 1))
        assert await bind(b) == S.ESME_ROK
        assert await bind(dying) == S.ESME_RBINDFAIL

        await peers[4].close()
        await eventually(lambda: _count_is(a, account.id, 1))
        assert await bind(dying) == S.ESME_ROK
        # That process dies with its bind: nobody releases it; after the TTL it no longer counts.
        assert dying.binds is not None and dying.binds._task is not None
        dying.binds._task.cancel()   # the process is gone: no refresh, no release
        dying.binds._live.clear()
        assert await bind(a) == S.ESME_RBINDFAIL
        await eventually(lambda: _count_is(a, account.id, 1), within=3.0)
        assert await bind(a) == S.ESME_ROK
        for peer in peers:
            await peer.close()
        await eventually(lambda: _count_is(a, account.id, 0), within=3.0)

        # TPS: two clients on two processes, 20 submits each at once, 5 per second between them.
        for ingress in (a, b):
            client = _client(ingress.port)
            clients.append(client)
            await client.start()
            await client.wait_bound()
        started = time.monotonic()
        results = await asyncio.gather(*(
            c.submit(SubmitSm(source_addr=SENDER, destination_addr=RU_MOBILE, short_message=b"x%d" % i))
            for c in clients for i in range(20)))
        elapsed = time.monotonic() - started
        accepted = sum(r.outcome is Outcome.ACCEPTED for r in results)
        throttled = sum(r.status == S.ESME_RTHROTTLED for r in results)
        assert accepted + throttled == 40
        assert 5 <= accepted <= 5 + math.ceil(elapsed * 5) + 2
        assert await pool.fetchval("SELECT count(*) FROM messages") == accepted
    finally:
        for client in clients:
            await client.close(grace=0.5)
        for peer in peers:
            await peer.close()
        for ingress in (a, b, dying):
            await ingress.stop()
        await pipeline.stop()
        await other_pool.close()


async def _count_is(ingress: SmppIngress, account_id: int, n: int) -> bool:
    assert ingress.binds is not None
    return await ingress.binds.count(account_id) == n
