"""Pipeline.submit_fanouts (the API's one text to many numbers) decides and stores exactly what
Pipeline.submit of one Submission per destination does; the number rule it relies on."""

from __future__ import annotations

import dataclasses

import phonenumbers
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.accept import stoplist
from gateway.accept.msisdn import NumberRules
from gateway.accept.pipeline import Accepted, Fanout, Rejected, Submission, for_destinations
from gateway.store.messages import INSERT_COLUMNS
from tests.gateway.world import SENDER, make_world

_RULES = NumberRules()

# valid, repeated, written differently, invalid, stopped, unknown network, no rate (France)
_NUMBERS = ["79161234567", "79161234567", "+7 916 123-45-68", "12345", "79161111111",
            "4915112345678", "33612345678", "0079160000003", "+1 555 0100", "79160000004"]


def _templates(partner_id: int) -> list[Submission]:
    base = Submission(partner_id=partner_id, origin="api", sender=SENDER, destination="",
                      text="Hello from Herald", label="x", registered_delivery=1)
    return [
        base,
        dataclasses.replace(base, text="Привет! " * 20),            # three parts
        dataclasses.replace(base, text="   "),                      # empty
        dataclasses.replace(base, sender="Unknown"),                # sender not usable
        dataclasses.replace(base, accept_mo=True),                  # MO is off
        dataclasses.replace(base, channel="viber", flash=True),     # flash only on SMS
        dataclasses.replace(base, text="a" * 160 * 256),            # more parts than possible
        dataclasses.replace(base, channel="viber", traffic_type="transaction"),
    ]


def _comparable(result):
    # ids differ between the two runs; everything else must not
    return ("accepted", result.parts) if isinstance(result, Accepted) else result


async def _stored(pool, ids) -> list[tuple]:
    columns = [c for c in INSERT_COLUMNS if c not in ("id", "charge_ref", "created_at", "billed_at")]
    rows = await pool.fetch(f"SELECT {', '.join(columns)} FROM messages WHERE id = ANY($1::uuid[])"
                            " ORDER BY destination, parts, channel", ids)
    return [tuple(r) for r in rows]


async def test_fanouts_decide_and_store_as_one_submission_per_destination(pool, pipeline):
    world = await make_world(pool, balance="1000")
    async with pool.acquire() as conn:
        await stoplist.add(conn, world.partner_id, "79161111111", SENDER, source="mo")
    templates = _templates(world.partner_id)
    one_by_one = await pipeline.submit(
        [s for t in templates for s in for_destinations(t, _NUMBERS)])
    fanned = await pipeline.submit_fanouts([Fanout(t, _NUMBERS) for t in templates])
    given_msisdns = await pipeline.submit_fanouts(
        [Fanout(t, _NUMBERS, [pipeline.normalise(n) for n in _NUMBERS]) for t in templates])
    assert [_comparable(r) for r in fanned] == [_comparable(r) for r in one_by_one]
    assert [_comparable(r) for r in given_msisdns] == [_comparable(r) for r in one_by_one]
    kinds = {r.reason for r in one_by_one if isinstance(r, Rejected)}
    assert {"empty_message", "invalid_sender", "mo_disabled", "flash_not_sms", "too_long",
            "invalid_destination", "stop_list", "no_rate"} <= kinds
    accepted = [r.message_id for r in one_by_one if isinstance(r, Accepted)]
    assert len(accepted) > 10
    for run in (fanned, given_msisdns):
        ids = [r.message_id for r in run if isinstance(r, Accepted)]
        assert len(set(ids)) == len(ids) == len(accepted)
        assert await _stored(pool, ids) == await _stored(pool, accepted)


async def test_a_fanout_without_destinations_and_an_empty_call(pipeline, pool):
    world = await make_world(pool)
    template = _templates(world.partner_id)[0]
    assert await pipeline.submit_fanouts([]) == []
    (only,) = await pipeline.submit_fanouts([Fanout(template, []), Fanout(template, ["12345"])])
    assert isinstance(only, Rejected) and only.http_text == "For message: invalid destination number '12345'"


_CODES = [str(c) for c in phonenumbers.COUNTRY_CODE_TO_REGION_CODE]


@settings(max_examples=2000, deadline=None)
@given(st.one_of(
    st.text(alphabet="0123456789+ -()./", max_size=20),
    st.builds(lambda cc, rest: cc + rest, st.sampled_from(_CODES),
              st.text(alphabet="0123456789", min_size=4, max_size=12)),
))
def test_normalising_a_normalised_number_changes_nothing(raw):
    # The API normalises each number once (to drop repeats) and hands the result to the
    # pipeline, which used to normalise it again: the two agree when this holds.
    once = _RULES.normalise(raw)
    if once is not None:
        assert _RULES.normalise(once) == once
