"""The provider contract as pure functions: request bodies, answers, status reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from viber.provider import (
    MAX_TTL,
    MIN_TTL,
    BadReport,
    Permanent,
    StatusReport,
    Temporary,
    Throttled,
    ViberMessage,
    build_request,
    build_status_report,
    parse_send_answer,
    parse_status_report,
)
from viber.simulator import ViberSimConfig, check_request, choose_outcome


def test_request_carries_every_field_and_leaves_out_what_is_absent():
    full = ViberMessage("Herald", "79161234567", "Hi", "promotion", image_url="https://i/x.png",
                        button_url="https://b", button_caption="Open", ttl=3600, reference="r1")
    assert build_request(full) == {
        "sender": "Herald", "phone": "79161234567", "text": "Hi", "traffic_type": "promotion",
        "image_url": "https://i/x.png", "button": {"url": "https://b", "caption": "Open"},
        "ttl": 3600, "reference": "r1"}
    bare = build_request(ViberMessage("Herald", "79161234567", "Hi", "transaction"))
    assert bare == {"sender": "Herald", "phone": "79161234567", "text": "Hi",
                    "traffic_type": "transaction"}
    assert check_request(bare) is None and check_request(build_request(full)) is None


def test_half_a_button_is_left_out_and_ttl_is_clamped():
    body = build_request(ViberMessage("S", "1", "t", button_url="https://b", ttl=5))
    assert "button" not in body and body["ttl"] == MIN_TTL
    assert build_request(ViberMessage("S", "1", "t", ttl=10**9))["ttl"] == MAX_TTL
    with pytest.raises(ValueError):
        build_request(ViberMessage("S", "1", "t", traffic_type="spam"))


@pytest.mark.parametrize(("status", "body", "headers", "error", "extra"), [
    (429, b'{"error":"slow down"}', {"Retry-After": "7"}, Throttled, {"retry_after": 7.0}),
    (429, b"", {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, Throttled, {"retry_after": None}),
    (503, b"busy", None, Temporary, {}),
    (500, b"", None, Temporary, {}),
    (200, b"not json", None, Temporary, {}),
    (200, b'{"id":"x"}', None, Temporary, {}),
    (200, b'{"message_id":"  "}', None, Temporary, {}),
    (400, b'{"error":"not a Viber user","code":"no_viber"}', None, Permanent, {"code": "no_viber"}),
    (401, b"", None, Permanent, {}),
    (302, b"", None, Temporary, {}),
])
def test_answers_other_than_accepted_raise_their_kind(status, body, headers, error, extra):
    with pytest.raises(error) as caught:
        parse_send_answer(status, body, headers)
    assert caught.value.status == status
    for name, value in extra.items():
        assert getattr(caught.value, name) == value


def test_accepted_answers_give_the_message_id():
    assert parse_send_answer(200, b'{"message_id":"abc"}') == "abc"
    assert parse_send_answer(202, b'{"message_id": 42}') == "42"


def test_status_reports_round_trip_and_bad_ones_are_refused():
    at = datetime(2026, 12, 3, 8, 0, 0, 123000, tzinfo=UTC)
    body = build_status_report("m1", "undelivered", at, "blocked")
    assert parse_status_report(json.dumps(body).encode()) == StatusReport("m1", "undelivered", at,
                                                                         "blocked")
    assert parse_status_report({"message_id": "m2", "status": "SEEN",
                                "timestamp": 1_764_748_800}).at == datetime(2025, 12, 3, 8, 0,
                                                                            tzinfo=UTC)
    naive = parse_status_report({"message_id": "m", "status": "seen",
                                 "timestamp": "2026-12-03T08:00:00"})
    assert naive.at == datetime(2026, 12, 3, 8, 0, tzinfo=UTC) and naive.error is None
    assert parse_status_report({"message_id": "m", "status": "delivered"}).at is None
    for bad in (b"nope", b"[]", {"status": "delivered"}, {"message_id": "m", "status": "read"},
                {"message_id": "m", "status": "seen", "timestamp": "yesterday"},
                {"message_id": "m", "status": "seen", "timestamp": True},
                {"message_id": "x" * 500, "status": "seen"}):
        with pytest.raises(BadReport):
            parse_status_report(bad)


def test_simulator_outcomes_follow_the_weights():
    config = ViberSimConfig(delivered=1, seen=1, undelivered=2)
    assert [choose_outcome(config, d) for d in (0.0, 0.24, 0.25, 0.49, 0.5, 0.99)] == [
        "delivered", "delivered", "seen", "seen", "undelivered", "undelivered"]
    assert choose_outcome(ViberSimConfig(delivered=0), 0.3) == "silent"
