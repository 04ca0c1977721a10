"""A whole SMPP path in one process for tests: ESME → Herald's SMPP server → pipeline →
vendor connector → carrier simulator, and receipts / MO back."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.accept.pipeline import Pipeline
from gateway.intake.smpp_accounts import create_account
from gateway.intake.smpp_server import SmppIngress
from gateway.report.mo import MoHandler
from gateway.send.connectors import ConnectorOptions, Connectors
from smpp.client import ClientConfig, ClientHandler, SmppClient
from smpp.pdu import DataSm, DeliverSm
from smpp.session import SessionConfig
from smpp.simulator import CarrierSimulator, SimConfig
from tests.gateway.world import World, make_world

FAST = ConnectorOptions(response_timeout=1.0, enquire_link=5.0, reconnect_base=0.05,
                        reconnect_cap=0.3, lease=10.0, poll_interval=0.05, backoff_base=0.05,
                        backoff_cap=0.3, bound_wait=0.5, receipt_match_retries=(0.05, 0.1))


class Esme(ClientHandler):
    """An end user's client: records receipts and MO it is given."""

    def __init__(self) -> None:
        self.receipts: list[DeliverSm | DataSm] = []
        self.mo: list[DeliverSm | DataSm] = []
        self.changed = asyncio.Event()

    async def receipt(self, pdu):
        self.receipts.append(pdu)
        self.changed.set()

    async def message(self, pdu):
        self.mo.append(pdu)
        self.changed.set()

    async def wait(self, predicate, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def eventually(check, within: float = 5.0, every: float = 0.02) -> None:
    """Wait until ``check()`` (sync or async) is true; TimeoutError after ``within`` seconds."""
    async with asyncio.timeout(within):
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return
            await asyncio.sleep(every)


@dataclass
class Stack:
    world: World
    sim: CarrierSimulator
    pipeline: Pipeline
    ingress: SmppIngress
    connectors: Connectors
    account_id: int
    clients: list[SmppClient] = field(default_factory=list)

    async def client(self, system_id: str = "acme", password: str = "secret1",
                     handler: ClientHandler | None = None, window: int = 10) -> SmppClient:
        client = SmppClient(ClientConfig(
            "127.0.0.1", self.ingress.port, system_id, password, reconnect_base=0.05,
            reconnect_cap=0.2,
            session=SessionConfig(window=window, enquire_link_interval=None, response_timeout=5.0)),
            handler or Esme())
        self.clients.append(client)
        await client.start()
        return client

    async def stop(self) -> None:
        for c in self.clients:
            await c.close(grace=0.5)
        await self.ingress.stop()
        await self.connectors.stop()
        await self.pipeline.stop()
        await self.sim.stop()


async def build_stack(pool, redis, settings, sim_config: SimConfig | None = None, *,
                      second_vendor: bool = False, mo_enabled: bool = True) -> Stack:
    sim = CarrierSimulator(sim_config or SimConfig(receipt_delay=0.05))
    await sim.start()
    world = await make_world(pool, mo_enabled=mo_enabled)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vendors SET smpp_port = $2, tps = 1000, window_size = 20 WHERE id = $1",
                           world.sms_vendor, sim.port)
        account = await create_account(conn, world.partner_id, "acme", "secret1", user_id=world.user_id)
    pipeline = Pipeline(pool, redis, settings)
    await pipeline.start()
    ingress = SmppIngress(pool, pipeline, host="127.0.0.1", port=0, poll_interval=0.05)
    connectors = Connectors(pool, redis, outbox=ingress.outbox,
                            mo=MoHandler(pool, pipeline, notify=ingress.outbox.notify), options=FAST,
                            refresh=0.5)
    pipeline.add_listener(connectors.notify)
    await connectors.start()
    await ingress.start()
    return Stack(world, sim, pipeline, ingress, connectors, account.id)
