"""The message pipeline against a real database: validate, look up, charge, store, enqueue."""

from __future__ import annotations

import random
from decimal import Decimal

from gateway.accept import routing, stoplist
from gateway.accept.msisdn import NumberRules
from gateway.accept.pipeline import Accepted, Reason, Rejected, Submission
from gateway.store.messages import Status, get_message
from tests.gateway.world import DE_MOBILE, RU_MOBILE, SENDER, balance, make_world


def sub(world, to=RU_MOBILE, **kw) -> Submission:
    base = dict(partner_id=world.partner_id, origin="api", sender=SENDER, destination=to,
                text="Hello from Herald")
    base.update(kw)
    return Submission(**base)


async def test_accepted_message_is_charged_stored_and_queued(pool, pipeline):
    world = await make_world(pool)
    (result,) = await pipeline.submit([sub(world, to="+7 916 123-45-67", label="spring",
                                           callback_url="http://127.0.0.1:1/cb", api_key_id=9,
                                           registered_delivery=1)])
    assert isinstance(result, Accepted)
    async with pool.acquire() as conn:
        msg = await get_message(conn, result.message_id)
        queued = await conn.fetchrow("SELECT * FROM send_queue WHERE message_id = $1", msg.id)
        charge = await conn.fetchrow("SELECT * FROM charges WHERE ref = $1", str(msg.id))
    assert msg.status == Status.BILLED and msg.destination == RU_MOBILE
    assert msg.mccmnc == "25001" and msg.parts == 1 and msg.encoding == "gsm7"
    assert msg.cost == Decimal("0.05") and msg.charge_ref == str(msg.id)
    assert (msg.label, msg.callback_url, msg.api_key_id, msg.registered_delivery) == (
        "spring", "http://127.0.0.1:1/cb", 9, 1)
    assert queued["route"] == [world.sms_vendor] and queued["vendor_id"] == world.sms_vendor
    assert charge is not None
    assert await balance(pool, world.partner_id) == Decimal("99.95")


async def test_long_unicode_text_counts_parts_and_charges_each(pool, pipeline):
    world = await make_world(pool)
    (result,) = await pipeline.submit([sub(world, text="Привет! " * 20)])  # 160 UCS-2 units
    assert isinstance(result, Accepted) and result.parts == 3
    assert await balance(pool, world.partner_id) == Decimal("99.85")


async def test_country_rate_when_only_the_mcc_is_known(pool, pipeline):
    world = await make_world(pool)
    (result,) = await pipeline.submit([sub(world, to=DE_MOBILE)])
    assert isinstance(result, Accepted)
    assert await pool.fetchval("SELECT mccmnc FROM messages WHERE id = $1", result.message_id) == "262"


async def test_refusals_each_with_their_reason(pool, pipeline):
    world = await make_world(pool, balance="0.06")
    async with pool.acquire() as conn:
        await stoplist.add(conn, world.partner_id, "79161111111", SENDER, source="mo")
    batch = [
        sub(world, text="   "),
        sub(world, to="12345"),
        sub(world, to="+1 555 0100"),                   # not a valid NANP number
        sub(world, sender="Unknown"),
        sub(world, to="79161111111"),
        sub(world, channel="viber", flash=True),
        sub(world, flash=True, accept_mo=True),
        sub(world, accept_mo=True),                     # MO is off for this partner
        sub(world, to="33612345678"),                   # France: no rate in the plan
        sub(world, to="79160000001"),                   # accepted: 0.05 of 0.06
        sub(world, to="79160000002"),                   # then the balance is short
    ]
    results = await pipeline.submit(batch)
    reasons = [r.reason if isinstance(r, Rejected) else "ok" for r in results]
    assert reasons == [
        Reason.EMPTY_MESSAGE, Reason.INVALID_DESTINATION, Reason.INVALID_DESTINATION,
        Reason.INVALID_SENDER, Reason.STOPPED, Reason.FLASH_NOT_SMS, Reason.MO_WITH_FLASH,
        Reason.MO_DISABLED, Reason.NO_RATE, "ok", Reason.INSUFFICIENT_BALANCE,
    ]
    assert results[3].http_text == "For message: can't validate sender Unknown"
    assert results[3].smpp_status == 0x0A
    assert results[7].http_text == "For message: Partner's MO messages mode is off!"
    assert await pool.fetchval("SELECT count(*) FROM messages") == 1
    assert await pool.fetchval("SELECT count(*) FROM send_queue") == 1
    assert await balance(pool, world.partner_id) == Decimal("0.01")


async def test_a_stop_for_every_sender_and_a_disabled_sender(pool, pipeline):
    world = await make_world(pool)
    async with pool.acquire() as conn:
        await stoplist.add(conn, world.partner_id, RU_MOBILE)  # '*': all senders
        await conn.execute("UPDATE sender_ids SET status = 'disabled' WHERE channel = 'viber'")
    results = await pipeline.submit([sub(world), sub(world, to="79160000001", channel="viber")])
    assert [r.reason for r in results] == [Reason.STOPPED, Reason.INVALID_SENDER]


async def test_viber_cascade_and_traffic_type(pool, pipeline):
    world = await make_world(pool)
    results = await pipeline.submit([
        sub(world, channel="viber", fallback_channel="sms", fallback_ttl=600,
            traffic_type="TRANSACTION"),
        sub(world, to="79160000001", channel="viber", traffic_type="TRANSACTION",
            image_url="http://127.0.0.1/i.png", button_url="http://127.0.0.1/", button_caption="Go"),
        # a cascade without a TTL takes the configured default
        sub(world, to="79160000000", channel="viber", fallback_channel="sms",
            traffic_type="TRANSACTION"),
    ])
    assert all(isinstance(r, Accepted) for r in results)
    rows = await pool.fetch(
        """SELECT m.channel, m.fallback_channel, m.fallback_ttl, m.traffic_type, m.cost, q.route
           FROM messages m JOIN send_queue q ON q.message_id = m.id WHERE m.id = ANY($1::uuid[])
           ORDER BY m.destination DESC""", [r.message_id for r in results])
    assert [tuple(r) for r in rows] == [
        ("viber", "sms", 600, "transaction", Decimal("0.01"), [world.viber_vendor]),
        ("viber", None, None, "promotion", Decimal("0.02"), [world.viber_vendor]),
        ("viber", "sms", pipeline.settings.viber_fallback_ttl, "transaction", Decimal("0.01"),
         [world.viber_vendor]),
    ]
    assert pipeline.settings.viber_fallback_ttl == 3600


async def test_no_route_refuses_before_charging(pool, pipeline):
    world = await make_world(pool)
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM routes WHERE channel = 'sms'")
    pipeline.invalidate()
    (result,) = await pipeline.submit([sub(world)])
    assert result.reason == Reason.NO_ROUTE
    assert await balance(pool, world.partner_id) == Decimal("100")


async def test_specific_route_is_used_and_listener_hears_commits(pool, pipeline):
    world = await make_world(pool)
    async with pool.acquire() as conn:
        other = await conn.fetchval(
            """INSERT INTO vendors (name, channel, protocol, smpp_host, smpp_port, system_id)
               VALUES ('mts-direct', 'sms', 'smpp', '127.0.0.1', 2776, 'h') RETURNING id""")
        await routing.add_route(conn, routing.Route("sms", other, mccmnc="25001"))
    pipeline.invalidate()
    heard = []
    pipeline.add_listener(heard.extend)
    (result,) = await pipeline.submit([sub(world)])
    route = await pool.fetchval("SELECT route FROM send_queue WHERE message_id = $1",
                                result.message_id)
    assert route == [other, world.sms_vendor]
    assert [m.id for m in heard] == [result.message_id]


def test_number_rules_agree_with_phonenumbers():
    import phonenumbers

    rules = NumberRules()
    samples = ["79161234567", "4915112345678", "447911123456", "12025550123", "33612345678",
               "8613800138000", "5511987654321", "35799123456", "2348031234567", "61412345678",
               "12345", "4400000", "999123456789", "79", "0123456789"]
    def valid(raw: str) -> bool:
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse("+" + raw))
        except phonenumbers.NumberParseException:
            return False

    for raw in samples:
        assert (rules.normalise(raw) is not None) == valid(raw), raw
    # Never refuses a number phonenumbers calls valid (it may accept a few more:
    # the general pattern of a country is the union of its number types).
    rng = random.Random(7)
    codes = list(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
    for _ in range(3000):
        raw = f"{rng.choice(codes)}{rng.randrange(10**8, 10**10)}"[: rng.randrange(8, 16)]
        if valid(raw):
            assert rules.normalise(raw) is not None, raw
    assert rules.normalise("+44 (7700) 900-123") == "447700900123"
    assert rules.normalise("0044 7700 900123") == "447700900123"
    assert rules.normalise("+4477009001２3") is None  # full-width digit
