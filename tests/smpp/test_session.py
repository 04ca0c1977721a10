"""Sans-I/O sessions: scripted byte exchanges, no sockets and no event loop."""

from __future__ import annotations

import struct

import pytest

from smpp.codec import decode, encode
from smpp.errors import EncodeError, LocalProtocolError, RemoteProtocolError
from smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Outbind,
    QuerySm,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from smpp.session import (
    SENDS,
    TRANSITIONS,
    BadResponse,
    BindType,
    InactivityTimeout,
    PduReceived,
    PeerError,
    RequestAborted,
    RequestTimedOut,
    ResponseReceived,
    Role,
    Session,
    SessionConfig,
    State,
    UnbindReceived,
    WindowFullError,
)

S = CommandStatus


def pdus(data: bytes) -> list:
    """Split octets written by a session back into PDUs."""
    out = []
    while data:
        (length,) = struct.unpack(">I", data[:4])
        out.append(decode(data[:length]))
        data = data[length:]
    return out


def wire(pdu) -> bytes:
    return encode(pdu)


def bound_smsc(bind=None, **config) -> Session:
    smsc = Session(Role.SMSC, SessionConfig(**config))
    bind = bind or BindTransceiver(sequence_number=1, system_id="esme", password="pw")
    [event] = smsc.receive_data(wire(bind), 0.0)
    assert isinstance(event, PduReceived)
    smsc.send(event.pdu.make_response(system_id="SMSC"), 0.0)
    return smsc


def bound_esme(bind_type: BindType = BindType.TRANSCEIVER, **config) -> Session:
    esme = Session(Role.ESME, SessionConfig(**config))
    bind = bind_type.request_class(system_id="esme", password="pw")
    esme.send(bind, 0.0)
    events = esme.receive_data(wire(bind.make_response(system_id="SMSC")), 0.0)
    assert isinstance(events[0], ResponseReceived)
    return esme


# --- binding ---------------------------------------------------------------------------


def test_smsc_bind_flow_in_bytes() -> None:
    smsc = Session(Role.SMSC)
    raw = bytes.fromhex(
        "0000001d 00000009 00000000 00000001 65736d6500 707700 00 34 00 00 00".replace(" ", "")
    )
    [event] = smsc.receive_data(raw, 0.0)
    assert event == PduReceived(BindTransceiver(sequence_number=1, system_id="esme", password="pw"))
    assert smsc.state is State.OPEN
    out = smsc.send(event.pdu.make_response(system_id="SMSC"), 0.0)
    assert out.hex() == "00000015800000090000000000000001534d534300"
    assert smsc.state is State.BOUND_TRX and smsc.bind_type is BindType.TRANSCEIVER
    assert smsc.bind_request == event.pdu


def test_refused_bind_leaves_session_open() -> None:
    smsc = Session(Role.SMSC)
    [event] = smsc.receive_data(wire(BindTransmitter(sequence_number=1)), 0.0)
    out = smsc.send(event.pdu.make_response(S.ESME_RINVPASWD), 0.0)
    assert out.hex() == "00000010800000020000000e00000001"
    assert smsc.state is State.OPEN
    # A new attempt is a fresh bind, not a second one.
    [event] = smsc.receive_data(wire(BindTransmitter(sequence_number=2)), 0.0)
    assert isinstance(event, PduReceived)


def test_second_bind_gets_ralybnd() -> None:
    smsc = bound_smsc()
    [event] = smsc.receive_data(wire(BindTransmitter(sequence_number=9)), 1.0)
    assert isinstance(event, PeerError) and event.status == S.ESME_RALYBND
    assert pdus(smsc.data_to_send()) == [
        BindTransmitterResp(sequence_number=9, command_status=S.ESME_RALYBND)
    ]
    assert smsc.state is State.BOUND_TRX


def test_bind_while_first_is_pending_gets_ralybnd() -> None:
    smsc = Session(Role.SMSC)
    smsc.receive_data(wire(BindTransmitter(sequence_number=1)), 0.0)
    [event] = smsc.receive_data(wire(BindReceiver(sequence_number=2)), 0.0)
    assert event.status == S.ESME_RALYBND


def test_submit_before_bind_gets_rinvbndsts() -> None:
    smsc = Session(Role.SMSC)
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=4, destination_addr="1")), 0.0)
    assert isinstance(event, PeerError) and event.status == S.ESME_RINVBNDSTS
    assert pdus(smsc.data_to_send()) == [
        SubmitSmResp(sequence_number=4, command_status=S.ESME_RINVBNDSTS)
    ]


def test_receiver_bind_may_not_submit() -> None:
    smsc = bound_smsc(BindReceiver(sequence_number=1))
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=2)), 0.0)
    assert event.status == S.ESME_RINVBNDSTS


def test_transmitter_bind_never_receives_deliver_sm() -> None:
    smsc = bound_smsc(BindTransmitter(sequence_number=1))
    with pytest.raises(LocalProtocolError):
        smsc.send(DeliverSm(destination_addr="1"), 0.0)
    # And an ESME bound as transmitter refuses one that arrives anyway.
    esme = bound_esme(BindType.TRANSMITTER)
    [event] = esme.receive_data(wire(DeliverSm(sequence_number=3)), 0.0)
    assert event.status == S.ESME_RINVBNDSTS
    assert pdus(esme.data_to_send()) == [
        DeliverSmResp(sequence_number=3, command_status=S.ESME_RINVBNDSTS)
    ]


def test_esme_cannot_send_deliver_sm_nor_submit_unbound() -> None:
    esme = Session(Role.ESME)
    with pytest.raises(LocalProtocolError):
        esme.send(SubmitSm(), 0.0)
    esme = bound_esme()
    with pytest.raises(LocalProtocolError):
        esme.send(DeliverSm(), 0.0)


def test_esme_bind_refused_then_retry() -> None:
    esme = Session(Role.ESME)
    bind = BindTransceiver(system_id="x")
    esme.send(bind, 0.0)
    with pytest.raises(LocalProtocolError):
        esme.send(BindTransceiver(system_id="x"), 0.0)
    [event] = esme.receive_data(wire(bind.make_response(S.ESME_RBINDFAIL)), 0.0)
    assert isinstance(event, ResponseReceived) and event.response.command_status == S.ESME_RBINDFAIL
    assert esme.state is State.OPEN
    esme.send(BindTransceiver(system_id="x"), 0.0)


def test_outbind_reaches_esme() -> None:
    esme = Session(Role.ESME)
    [event] = esme.receive_data(wire(Outbind(sequence_number=1, system_id="smsc")), 0.0)
    assert isinstance(event, PduReceived) and isinstance(event.pdu, Outbind)
    assert esme.data_to_send() == b""


def test_tables_are_data() -> None:
    assert SubmitSm.command_id in SENDS[Role.ESME][State.BOUND_TX]
    assert DeliverSm.command_id not in SENDS[Role.SMSC][State.BOUND_TX]
    assert TRANSITIONS[State.OPEN][BindTransmitterResp.command_id] is State.BOUND_TX


# --- automatic answers and errors ---------------------------------------------------------


def test_enquire_link_answered_in_any_live_state() -> None:
    for session in (Session(Role.SMSC), bound_smsc()):
        assert session.receive_data(wire(EnquireLink(sequence_number=77)), 0.0) == []
        assert session.data_to_send() == wire(EnquireLinkResp(sequence_number=77))


def test_unknown_command_gets_generic_nack_and_session_goes_on() -> None:
    smsc = bound_smsc()
    raw = struct.pack(">IIII", 20, 0x0000_0099, 0, 31) + b"abcd"
    [event] = smsc.receive_data(raw, 0.0)
    assert isinstance(event, PeerError) and event.status == S.ESME_RINVCMDID and not event.fatal
    assert smsc.data_to_send() == wire(GenericNack(sequence_number=31, command_status=3))
    assert not smsc.should_close
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=32)), 0.0)
    assert isinstance(event, PduReceived)


def test_bad_command_length_nacks_and_closes() -> None:
    smsc = bound_smsc(max_command_length=4096)
    good = wire(SubmitSm(sequence_number=2))
    bad = struct.pack(">IIII", 1_000_000, 4, 0, 3)
    events = smsc.receive_data(good + bad, 0.0)
    assert isinstance(events[0], PduReceived)
    assert isinstance(events[1], PeerError) and events[1].fatal
    assert events[1].status == S.ESME_RINVCMDLEN
    err = events[1].exception()
    assert isinstance(err, RemoteProtocolError) and err.fatal and err.status == S.ESME_RINVCMDLEN
    assert smsc.data_to_send() == wire(GenericNack(sequence_number=3, command_status=2))
    assert smsc.should_close
    assert smsc.receive_data(good, 0.0) == []


def test_bad_field_gets_own_response_with_field_status() -> None:
    smsc = bound_smsc()
    body = b"\x00\x00\x00src\x00\x01\x01" + b"9" * 30  # destination_addr never ends
    raw = struct.pack(">IIII", 16 + len(body), 4, 0, 12) + body
    [event] = smsc.receive_data(raw, 0.0)
    assert isinstance(event, PeerError) and event.status == S.ESME_RINVDSTADR
    assert pdus(smsc.data_to_send()) == [
        SubmitSmResp(sequence_number=12, command_status=S.ESME_RINVDSTADR)
    ]


def test_bytes_split_anywhere() -> None:
    smsc = bound_smsc()
    stream = b"".join(
        wire(SubmitSm(sequence_number=i, short_message=b"x" * i)) for i in range(2, 8)
    )
    events = []
    for i in range(len(stream)):
        events += smsc.receive_data(stream[i : i + 1], 0.0)
    assert [e.pdu.sequence_number for e in events] == list(range(2, 8))


def test_responding_to_nothing_is_a_local_error() -> None:
    smsc = bound_smsc()
    with pytest.raises(LocalProtocolError):
        smsc.send(SubmitSmResp(sequence_number=99), 0.0)
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=5)), 0.0)
    with pytest.raises(LocalProtocolError):
        smsc.send(DeliverSmResp(sequence_number=5), 0.0)  # wrong response type
    smsc.send(event.pdu.make_response(message_id="a"), 0.0)
    with pytest.raises(LocalProtocolError):
        smsc.send(event.pdu.make_response(message_id="a"), 0.0)  # answered twice


def test_encode_error_changes_nothing() -> None:
    smsc = bound_smsc()
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=5)), 0.0)
    with pytest.raises(EncodeError):
        smsc.send(event.pdu.make_response(message_id="x" * 80), 0.0)
    smsc.send(event.pdu.make_response(message_id="ok"), 0.0)
    assert smsc.awaiting_our_response == 0


# --- sequence numbers and windows ------------------------------------------------------------


def test_sequence_numbers_wrap_to_one() -> None:
    esme = bound_esme(window=5)
    esme._seq = 0x7FFFFFFE  # as if two billion requests had gone before
    a, b = SubmitSm(), SubmitSm()
    esme.send(a, 0.0)
    esme.send(b, 0.0)
    assert (a.sequence_number, b.sequence_number) == (0x7FFFFFFF, 1)


def test_sequence_numbers_skip_those_still_pending() -> None:
    esme = bound_esme(window=5)
    first = SubmitSm()
    esme.send(first, 0.0)
    assert first.sequence_number == 2  # the bind took 1
    esme._seq = 0x7FFFFFFF
    nxt = SubmitSm()
    esme.send(nxt, 0.0)
    assert nxt.sequence_number == 1
    again = SubmitSm()
    esme.send(again, 0.0)
    assert again.sequence_number == 3  # 2 is still awaiting its response


def test_local_window_tells_sender_to_wait() -> None:
    esme = bound_esme(window=2)
    a, b = SubmitSm(), SubmitSm()
    esme.send(a, 0.0)
    esme.send(b, 0.0)
    assert esme.window_free == 0
    with pytest.raises(WindowFullError):
        esme.send(SubmitSm(), 0.0)
    # Keep-alive and unbind are never blocked by the window.
    esme.send(EnquireLink(), 0.0)
    [event] = esme.receive_data(wire(SubmitSmResp(sequence_number=a.sequence_number)), 0.5)
    assert isinstance(event, ResponseReceived) and event.request is a and event.sent_at == 0.0
    assert esme.window_free == 1
    esme.send(SubmitSm(), 0.6)


def test_peer_over_window_is_throttled() -> None:
    smsc = bound_smsc(peer_window=2)
    events = smsc.receive_data(b"".join(wire(SubmitSm(sequence_number=i)) for i in (2, 3, 4)), 0.0)
    assert [type(e) for e in events] == [PduReceived, PduReceived, PeerError]
    assert events[2].status == S.ESME_RTHROTTLED
    assert pdus(smsc.data_to_send()) == [
        SubmitSmResp(sequence_number=4, command_status=S.ESME_RTHROTTLED)
    ]
    smsc.send(events[0].pdu.make_response(message_id="m"), 0.0)
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=5)), 0.0)
    assert isinstance(event, PduReceived)


def test_unknown_status_in_response_is_an_int() -> None:
    esme = bound_esme()
    req = SubmitSm()
    esme.send(req, 0.0)
    raw = struct.pack(">IIII", 16, 0x80000004, 0x0000_0401, req.sequence_number)
    [event] = esme.receive_data(raw, 0.0)
    assert isinstance(event, ResponseReceived) and event.response.command_status == 0x401


def test_generic_nack_answers_a_request() -> None:
    esme = bound_esme()
    req = QuerySm(message_id="x")
    esme.send(req, 0.0)
    [event] = esme.receive_data(
        wire(GenericNack(sequence_number=req.sequence_number, command_status=3)), 0.0
    )
    assert isinstance(event, ResponseReceived) and isinstance(event.response, GenericNack)
    assert esme.outstanding == 0


def test_unexpected_and_malformed_responses() -> None:
    esme = bound_esme()
    [event] = esme.receive_data(wire(SubmitSmResp(sequence_number=55, message_id="x")), 0.0)
    assert isinstance(event, PeerError) and event.status is None
    req = SubmitSm()
    esme.send(req, 0.0)
    body = b"x" * 70  # message_id without NUL
    raw = struct.pack(">IIII", 16 + len(body), 0x80000004, 0, req.sequence_number) + body
    [event] = esme.receive_data(raw, 0.0)
    assert isinstance(event, BadResponse) and event.request is req
    assert esme.outstanding == 0 and esme.data_to_send() == b""


# --- timers ---------------------------------------------------------------------------------


def test_response_timeout() -> None:
    esme = bound_esme(response_timeout=10.0, enquire_link_interval=None)
    a = SubmitSm()
    esme.send(a, 1.0)
    b = SubmitSm()
    esme.send(b, 2.0)
    assert esme.next_deadline() == 11.0
    assert esme.tick(10.9) == []
    assert esme.tick(11.0) == [RequestTimedOut(a)]
    assert esme.tick(12.5) == [RequestTimedOut(b)]
    assert esme.outstanding == 0 and esme.next_deadline() is None
    # A late response is now unexpected.
    [event] = esme.receive_data(wire(SubmitSmResp(sequence_number=a.sequence_number)), 13.0)
    assert isinstance(event, PeerError)


def test_keepalive_enquire_link() -> None:
    esme = bound_esme(enquire_link_interval=30.0, response_timeout=10.0)
    assert esme.next_deadline() == 30.0
    assert esme.tick(29.0) == [] and esme.data_to_send() == b""
    assert esme.tick(30.0) == []
    [link] = pdus(esme.data_to_send())
    assert isinstance(link, EnquireLink)
    assert esme.tick(31.0) == [] and esme.data_to_send() == b""  # only one at a time
    # The answer is consumed by the session; the application hears nothing.
    assert (
        esme.receive_data(wire(EnquireLinkResp(sequence_number=link.sequence_number)), 32.0) == []
    )
    assert esme.next_deadline() == 62.0


def test_keepalive_without_answer_times_out() -> None:
    esme = bound_esme(enquire_link_interval=30.0, response_timeout=10.0)
    esme.tick(30.0)
    [_link] = pdus(esme.data_to_send())
    [event] = esme.tick(40.0)
    assert isinstance(event, RequestTimedOut) and isinstance(event.request, EnquireLink)


def test_inactivity_timeout_reported_once() -> None:
    smsc = bound_smsc(inactivity_timeout=60.0, enquire_link_interval=None)
    assert smsc.next_deadline() == 60.0
    assert smsc.tick(59.0) == []
    assert smsc.tick(60.5) == [InactivityTimeout(60.5)]
    assert smsc.tick(70.0) == []
    smsc.receive_data(wire(EnquireLink(sequence_number=8)), 71.0)
    assert smsc.next_deadline() == 131.0


# --- unbinding and closing ----------------------------------------------------------------


def test_graceful_unbind_from_esme() -> None:
    esme = bound_esme()
    sub = SubmitSm()
    esme.send(sub, 0.0)
    unbind = Unbind()
    esme.send(unbind, 0.0)
    assert esme.state is State.UNBOUND
    with pytest.raises(LocalProtocolError):
        esme.send(SubmitSm(), 0.0)
    # The answer to the submit still arrives and counts.
    [event] = esme.receive_data(
        wire(SubmitSmResp(sequence_number=sub.sequence_number, message_id="m")), 0.1
    )
    assert event.response.message_id == "m"
    assert not esme.should_close
    [event] = esme.receive_data(wire(UnbindResp(sequence_number=unbind.sequence_number)), 0.2)
    assert isinstance(event, ResponseReceived)
    assert esme.should_close


def test_peer_unbind_is_answered() -> None:
    smsc = bound_smsc()
    [event] = smsc.receive_data(wire(Unbind(sequence_number=40)), 0.0)
    assert isinstance(event, UnbindReceived)
    assert smsc.data_to_send() == wire(UnbindResp(sequence_number=40))
    assert smsc.state is State.UNBOUND and smsc.should_close
    [event] = smsc.receive_data(wire(SubmitSm(sequence_number=41)), 0.0)
    assert event.status == S.ESME_RINVBNDSTS


def test_connection_lost_aborts_pending_requests() -> None:
    esme = bound_esme(response_timeout=60.0)
    a, b = SubmitSm(), SubmitSm()
    esme.send(a, 0.0)
    esme.send(b, 0.0)
    esme.tick(30.0)  # a keep-alive is pending too, but it is the session's own
    assert esme.connection_lost() == [RequestAborted(a), RequestAborted(b)]
    assert esme.state is State.CLOSED and esme.should_close
    assert esme.receive_data(wire(SubmitSmResp(sequence_number=2)), 1.0) == []
    with pytest.raises(LocalProtocolError):
        esme.send(SubmitSm(), 1.0)


# --- two sessions talking -------------------------------------------------------------------


def test_esme_and_smsc_sessions_talk() -> None:
    esme = Session(Role.ESME)
    smsc = Session(Role.SMSC)
    now = 0.0

    def to_smsc(data: bytes) -> list:
        return smsc.receive_data(data, now)

    def to_esme(data: bytes) -> list:
        return esme.receive_data(data, now)

    [bind_ev] = to_smsc(esme.send(BindTransceiver(system_id="a", password="b"), now))
    [bound] = to_esme(smsc.send(bind_ev.pdu.make_response(system_id="SMSC"), now))
    assert isinstance(bound.response, BindTransceiverResp)
    assert esme.state is smsc.state is State.BOUND_TRX

    [sub_ev] = to_smsc(esme.send(SubmitSm(destination_addr="4477", short_message=b"hi"), now))
    [resp_ev] = to_esme(smsc.send(sub_ev.pdu.make_response(message_id="id-1"), now))
    assert resp_ev.response.message_id == "id-1"

    [dlv_ev] = to_esme(
        smsc.send(DeliverSm(esm_class=4, short_message=b"id:id-1 stat:DELIVRD"), now)
    )
    assert dlv_ev.pdu.is_receipt
    [ack] = to_smsc(esme.send(dlv_ev.pdu.make_response(), now))
    assert isinstance(ack.response, DeliverSmResp)

    [unbind_ev] = to_smsc(esme.send(Unbind(), now))
    assert isinstance(unbind_ev, UnbindReceived)
    [done] = to_esme(smsc.data_to_send())
    assert isinstance(done.response, UnbindResp)
    assert esme.should_close and smsc.should_close
