"""Codec speed: Herald's SMPP codec against ``smpp.pdu3`` (Jasmin's codec).

Both encode and then decode the same 160-character ``submit_sm`` in a loop,
one after the other, pinned to the same CPU core. ``smpp.pdu3`` installs a
top-level package named ``smpp`` that clashes with ours, so it is installed
under ``var/pdu3`` (``pip install --target``) and timed in a subprocess
started with ``-S`` (no site-packages, hence no editable install of Herald on
the path) and ``var/pdu3`` first on ``sys.path``.

Usage: ``.venv/bin/python bench/smpp_codec.py [--seconds 2]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PDU3_DIR = ROOT / "var" / "pdu3"
CPU = 0

SHORT_MESSAGE = b"Herald bench: the quick brown fox jumps over the lazy dog. " * 3
SHORT_MESSAGE = SHORT_MESSAGE[:160]

PDU3_PROGRAM = r"""
import io, os, sys, time
sys.path.insert(0, sys.argv[1])
try:
    os.sched_setaffinity(0, {int(sys.argv[3])})
except (AttributeError, OSError):
    pass
from smpp.pdu.operations import SubmitSM
from smpp.pdu.pdu_encoding import PDUEncoder
from smpp.pdu.pdu_types import AddrNpi, AddrTon, RegisteredDelivery, RegisteredDeliveryReceipt

encoder = PDUEncoder()
pdu = SubmitSM(
    seqNum=1,
    source_addr=b"Herald",
    source_addr_ton=AddrTon.ALPHANUMERIC,
    destination_addr=b"447700900123",
    dest_addr_ton=AddrTon.INTERNATIONAL,
    dest_addr_npi=AddrNpi.ISDN,
    short_message=SHORT_MESSAGE,
    registered_delivery=RegisteredDelivery(RegisteredDeliveryReceipt.SMSC_DELIVERY_RECEIPT_REQUESTED),
)
seconds = float(sys.argv[2])
best = 0.0
for _ in range(3):
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(200):
            encoder.decode(io.BytesIO(encoder.encode(pdu)))
        n += 200
        elapsed = time.perf_counter() - start
        if elapsed >= seconds / 3:
            break
    best = max(best, n / elapsed)
print(encoder.encode(pdu).hex())
print(best)
"""


def ensure_pdu3() -> None:
    if (PDU3_DIR / "smpp" / "pdu" / "operations.py").exists():
        return
    print(f"installing smpp.pdu3 into {PDU3_DIR} ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(PDU3_DIR), "smpp.pdu3"],
        check=True,
    )


def measure_pdu3(seconds: float) -> tuple[float, str]:
    program = PDU3_PROGRAM.replace("SHORT_MESSAGE", repr(SHORT_MESSAGE))
    out = subprocess.run(
        [sys.executable, "-S", "-c", program, str(PDU3_DIR), str(seconds), str(CPU)],
        check=True,
        capture_output=True,
        text=True,
        cwd=str(PDU3_DIR),
    ).stdout.split()
    return float(out[1]), out[0]


def measure_herald(seconds: float) -> tuple[float, str]:
    from smpp.codec import decode, encode
    from smpp.pdu import Npi, RegisteredDelivery, SubmitSm, Ton

    pdu = SubmitSm(
        sequence_number=1,
        source_addr="Herald",
        source_addr_ton=Ton.ALPHANUMERIC,
        destination_addr="447700900123",
        dest_addr_ton=Ton.INTERNATIONAL,
        dest_addr_npi=Npi.ISDN,
        short_message=SHORT_MESSAGE,
        registered_delivery=RegisteredDelivery.RECEIPT_ALWAYS,
    )
    assert decode(encode(pdu)) == pdu
    best = 0.0
    for _ in range(3):
        n = 0
        start = time.perf_counter()
        while True:
            for _ in range(200):
                decode(encode(pdu))
            n += 200
            elapsed = time.perf_counter() - start
            if elapsed >= seconds / 3:
                break
        best = max(best, n / elapsed)
    return best, encode(pdu).hex()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per codec")
    args = parser.parse_args()
    try:
        os.sched_setaffinity(0, {CPU})
    except (AttributeError, OSError):
        pass
    ensure_pdu3()
    ours, our_hex = measure_herald(args.seconds)
    theirs, their_hex = measure_pdu3(args.seconds)
    same = "identical" if our_hex == their_hex else "DIFFERENT"
    print("encode+decode of a 160-character submit_sm, one core, best of 3")
    print(f"  herald smpp.codec : {ours:12,.0f} PDUs/s  ({1e6 / ours:6.2f} µs each)")
    print(f"  smpp.pdu3 (Jasmin): {theirs:12,.0f} PDUs/s  ({1e6 / theirs:6.2f} µs each)")
    print(f"  ratio             : {ours / theirs:.1f}x   (wire octets {same})")


if __name__ == "__main__":
    main()
