"""Fuzzing the server: random and mutated PDUs from many peers, one well-behaved peer watching.

The server must never fail inside its own code, must answer (or, when framing
is lost, close) only the peer that misbehaved, and the bound peer must keep
being served throughout. Iterations are bounded and seeded so the test is
fast and repeatable; set ``SMPP_FUZZ_ITERATIONS`` for a longer soak.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import struct

from smpp.codec import DEFAULT_MAX_COMMAND_LENGTH, FrameReader, encode
from smpp.pdu import (
    PDU_CLASSES,
    BindTransceiver,
    BindTransmitter,
    CommandId,
    CommandStatus,
    DataSm,
    DeliverSm,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    QuerySm,
    SmeAddress,
    SubmitMulti,
    SubmitSm,
    Tag,
)

from .smsc_helpers import DemoSmsc, RawPeer, start_server

S = CommandStatus
ITERATIONS = int(os.environ.get("SMPP_FUZZ_ITERATIONS", "400"))
SEED = int(os.environ.get("SMPP_FUZZ_SEED", "24301"))
SENTINEL_SEQ = 0x7ABCDEF0

SAMPLES = [
    SubmitSm(
        source_addr="Herald",
        destination_addr="447700900123",
        short_message=b"hello fuzz",
        tlvs={Tag.SAR_MSG_REF_NUM: 7, Tag.SAR_TOTAL_SEGMENTS: 2, Tag.SAR_SEGMENT_SEQNUM: 1},
    ),
    SubmitMulti(dest_addresses=[SmeAddress(1, 1, "4477")], short_message=b"x"),
    DataSm(destination_addr="4477", tlvs={Tag.MESSAGE_PAYLOAD: b"p" * 40}),
    QuerySm(message_id="abc"),
    DeliverSm(esm_class=4, short_message=b"id:1 stat:DELIVRD"),
    BindTransmitter(system_id="alice", password="secret"),
    EnquireLink(),
]


def mutate(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        if op == 0 and out:  # flip bytes in the body
            i = (
                rng.randrange(min(len(out), 16), len(out))
                if len(out) > 16
                else rng.randrange(len(out))
            )
            out[i] = rng.randrange(256)
        elif op == 1:  # lie about the length
            struct.pack_into(">I", out, 0, rng.choice([0, 8, 15, 16, len(out) + 3, 0xFFFFFFFF]))
        elif op == 2:  # cut the body, keep the length consistent
            cut = rng.randint(16, max(16, len(out)))
            del out[cut:]
            struct.pack_into(">I", out, 0, len(out))
        elif op == 3:  # any command id, any status
            struct.pack_into(">I", out, 4, rng.choice([*PDU_CLASSES, rng.getrandbits(32)]))
            struct.pack_into(">I", out, 8, rng.getrandbits(32) if rng.random() < 0.3 else 0)
        elif op == 4:  # garbage TLVs at the end
            out += struct.pack(">HH", rng.getrandbits(16), rng.randrange(8)) + rng.randbytes(
                rng.randrange(8)
            )
            struct.pack_into(">I", out, 0, len(out))
        else:  # responses nobody asked for
            struct.pack_into(">I", out, 4, struct.unpack(">I", out[4:8])[0] | 0x80000000)
    return bytes(out)


def fuzz_payload(rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 120))
    if kind == 1:
        body = rng.randbytes(rng.randrange(0, 200))
        cid = rng.choice(list(CommandId))
        return struct.pack(">IIII", 16 + len(body), cid, 0, rng.getrandbits(31)) + body
    pdus = []
    for _ in range(rng.randint(1, 3)):
        pdu = rng.choice(SAMPLES)
        pdu.sequence_number = rng.randrange(1, 0x7FFFFFFF)
        pdus.append(mutate(rng, encode(pdu)) if kind == 2 else encode(pdu))
    return b"".join(pdus)


async def drain_answers(peer: RawPeer) -> tuple[list, bool]:
    """Read until our sentinel's answer (True) or the server hanging up (False)."""
    answers = []
    try:
        async with asyncio.timeout(3.0):
            while True:
                try:
                    pdu = await peer.read_pdu(wait=3.0)
                except (asyncio.IncompleteReadError, ConnectionResetError):
                    return answers, False
                if isinstance(pdu, EnquireLinkResp) and pdu.sequence_number == SENTINEL_SEQ:
                    return answers, True
                answers.append(pdu)
    except TimeoutError:
        raise AssertionError(f"server neither answered nor closed; got {answers}") from None


async def test_fuzzed_peers_never_hurt_the_server_or_each_other(caplog) -> None:
    rng = random.Random(SEED)
    smsc = DemoSmsc()
    server = await start_server(smsc)
    caplog.set_level(logging.WARNING, logger="smpp")
    good = await RawPeer.connect(server.port)
    try:
        assert (await good.bind()).command_status == S.ESME_ROK
        closed_by_server = answered = 0
        for i in range(ITERATIONS):
            bad = await RawPeer.connect(server.port)
            if rng.random() < 0.5:
                await bad.bind("bob", "hunter2", BindTransceiver)
            payload = fuzz_payload(rng)
            # Mirror the server's framing to know whether the stream stays in step.
            mirror = FrameReader(DEFAULT_MAX_COMMAND_LENGTH)
            mirror.feed(payload)
            if mirror.error is None and mirror.buffered:
                # Complete a frame left open, so the sentinel is read as a PDU of its own.
                held = mirror.buffered
                head = bytes(mirror._buf[:4]).ljust(4, b"\0")
                payload = payload.ljust(len(payload) - held + 4, b"\0")
                (claimed,) = struct.unpack(">I", head)
                if 16 <= claimed <= DEFAULT_MAX_COMMAND_LENGTH:
                    payload += b"\0" * (claimed - max(4, held))
            data = payload + encode(EnquireLink(sequence_number=SENTINEL_SEQ))
            mirror = FrameReader(DEFAULT_MAX_COMMAND_LENGTH)
            mirror.feed(data)
            try:
                await bad.send_raw(data)
            except (ConnectionResetError, BrokenPipeError):
                pass
            answers, alive = await drain_answers(bad)
            if mirror.error is not None:
                # Framing lost: generic_nack ESME_RINVCMDLEN, then the server hangs up.
                assert not alive, f"iteration {i}: stayed open after framing was lost"
                assert answers and answers[-1] == GenericNack(
                    sequence_number=mirror.error.sequence_number, command_status=S.ESME_RINVCMDLEN
                )
                closed_by_server += 1
            elif alive:
                answered += 1
            await bad.close()
            if i % 20 == 19:
                # The well-behaved session is served all along.
                reply = await good.request(SubmitSm(destination_addr="4477", short_message=b"ok"))
                assert reply.command_status == S.ESME_ROK, f"iteration {i}: {reply}"
                assert (await good.request(EnquireLink())).command_status == S.ESME_ROK
        print(f"fuzz: {answered} peers answered, {closed_by_server} hung up on")
        assert closed_by_server > 5 and answered > 5  # both paths were exercised
        assert server.sessions("alice"), "the good session was dropped"
        crashes = [
            r.getMessage()
            for r in caplog.records
            if "failed on received data" in r.getMessage() or "timer failed" in r.getMessage()
        ]
        assert not crashes
    finally:
        await good.close()
        await server.close(grace=1.0)
