"""The redirect's memory: codes cached, and forgotten in every process when a link is archived."""

from __future__ import annotations

import pytest

from shortener import links
from shortener.resolver import Resolver, host_key
from tests.gateway.smpp_stack import eventually
from tests.shortener.world import build

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_archive_in_one_process_reaches_the_others(pool, redis):
    async with pool.acquire() as conn:
        world = await build(conn)
        link = await links.create_link(conn, partner_id=world.alpha, domain_id=world.go.id,
                                       original_url="https://a.example/")
    here, there = Resolver(pool, redis, poll=0.05), Resolver(pool, redis, poll=0.05)
    await here.start()
    await there.start()
    try:
        assert there.domain("GO.herald.test:443").id == world.go.id and there.domain("herald.test") is None
        assert not (await there.target(world.go.id, link.code)).archived  # now cached in "there"
        assert await there.target(world.go.id, "NoSuch12") is None
        await links.archive_links(pool, world.alpha, [link.id])
        assert not (await there.target(world.go.id, link.code)).archived  # still the cached answer
        await here.changed()  # what the portal's archive action does in its own process
        assert (await here.target(world.go.id, link.code)).archived

        async def archived_there() -> bool:
            return (await there.target(world.go.id, link.code)).archived

        await eventually(archived_there, within=10)
        # a domain added elsewhere is known too
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO short_domains (host) VALUES ('new.herald.test')")
        await here.changed()
        await eventually(lambda: there.domain("new.herald.test") is not None, within=10)
    finally:
        await here.stop()
        await there.stop()


async def test_host_keys():
    assert host_key("Go.Example.COM:8443") == "go.example.com"
    assert host_key("go.example.com.") == "go.example.com"
    assert host_key("[::1]:80") == "[::1]:80"
