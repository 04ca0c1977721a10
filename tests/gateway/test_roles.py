"""HERALD_ROLE: an ingress process and an egress process share a message's life through
PostgreSQL (the send queue one way, the SMPP outbox the other)."""

from __future__ import annotations

from gateway.base.embedded import free_port
from gateway.intake.smpp_accounts import create_account
from gateway.intake.smpp_server import SmppIngress
from gateway.report.callbacks import CallbackDispatcher
from gateway.report.cascade import CascadeJob
from gateway.runtime.housekeeping import Housekeeping
from gateway.runtime.main import build_app
from gateway.runtime.services import build_services
from gateway.send.connectors import Connectors
from gateway.send.viber_connector import ViberConnectors
from smpp.client import ClientConfig, SmppClient
from smpp.pdu import Tag
from smpp.session import SessionConfig
from smpp.simulator import CarrierSimulator, SimConfig
from tests.gateway.smpp_stack import Esme, eventually
from tests.gateway.test_smpp_ingress import submit
from tests.gateway.world import make_world

EGRESS = {Connectors, ViberConnectors, CascadeJob, CallbackDispatcher, Housekeeping}


async def test_each_role_builds_its_own_services(settings, make_client):
    for role, wanted, unwanted in (("ingress", {SmppIngress}, EGRESS),
                                   ("egress", EGRESS, {SmppIngress}),
                                   ("all", EGRESS | {SmppIngress}, set())):
        client = await make_client(build_app(settings.replace(role=role)))
        kinds = {type(service) for service in build_services(client.app)}
        assert wanted <= kinds, role
        assert not kinds & unwanted, role


async def test_the_viber_send_workers_take_the_operators_timings(settings, make_client):
    tuned = settings.replace(role="egress", viber_timeout=3.0, viber_max_attempts=2, viber_refresh=7.0)
    client = await make_client(build_app(tuned))
    (viber,) = [s for s in build_services(client.app) if isinstance(s, ViberConnectors)]
    opts = viber.options
    assert (opts.request_timeout, opts.max_attempts, opts.refresh) == (3.0, 2, 7.0)


async def test_a_message_crosses_from_the_ingress_process_to_the_egress_one_and_back(
        pool, redis, settings, make_client):
    sim = CarrierSimulator(SimConfig(receipt_delay=0.05))
    await sim.start()
    world = await make_world(pool)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE vendors SET smpp_port = $2, tps = 1000 WHERE id = $1",
                           world.sms_vendor, sim.port)
        await create_account(conn, world.partner_id, "acme", "secret1", user_id=world.user_id)
    port = free_port()
    sides = []
    for role in ("ingress", "egress"):
        client = await make_client(build_app(settings.replace(role=role, smpp_port=port)))
        sides.append(build_services(client.app))
    started = []
    esme_client = None
    try:
        for services in sides:
            for service in services:
                await service.start()
                started.append(service)
        esme = Esme()
        esme_client = SmppClient(ClientConfig(
            "127.0.0.1", port, "acme", "secret1",
            session=SessionConfig(window=10, enquire_link_interval=None, response_timeout=5.0)), esme)
        await esme_client.start()
        results = [await esme_client.submit(submit(f"m{i}")) for i in range(3)]
        # Sent by the egress process's connector (it found the rows by polling the queue),
        # the receipts back through the ingress process's outbox to the bound client.
        await esme.wait(lambda: len(esme.receipts) == 3, within=20)
        assert sorted(m.text for m in sim.received) == ["m0", "m1", "m2"]
        assert {r.tlvs[Tag.RECEIPTED_MESSAGE_ID] for r in esme.receipts} == {
            r.message_id for r in results}
        await eventually(lambda: pool.fetchval(
            "SELECT count(*) = 3 FROM messages WHERE status = 'DELIVERED'"), within=10)
    finally:
        if esme_client is not None:
            await esme_client.close(grace=0.5)
        for service in reversed(started):
            await service.stop()
        await sim.stop()
