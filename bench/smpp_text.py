"""Throughput of the SMPP text helpers: counting, splitting, packing, receipts, reassembly.

Run: .venv/bin/python bench/smpp_text.py [seconds-per-case]
Prints operations per second for each case; nothing is asserted.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime

from smpp.encoding import decode, encode_gsm7, pack_septets, unpack_septets
from smpp.reassembly import PartKey, Reassembler
from smpp.receipts import MessageState, build_receipt, message_ids_match, parse_receipt
from smpp.segments import count_segments, split_message

GSM_160 = "Your order #12345 has shipped. Track it at https://example.test/t/abc " * 3
GSM_160 = GSM_160[:160]
GSM_LONG = ("Sale {today}: 20% off [all] items ~ only €9.99! " * 12)[:600]
UCS2_LONG = ("Привет! Скидка 20% 😀 только сегодня. " * 10)[:400]
RECEIPT = build_receipt(
    "0A1B2C3D",
    MessageState.DELIVERED,
    submit_date=datetime(2024, 5, 1, 12, 30),
    done_date=datetime(2024, 5, 1, 12, 31),
    text="Your order #12345 ha",
)


def measure(name: str, fn: Callable[[], object], seconds: float) -> None:
    fn()
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(100):
            fn()
        count += 100
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - start
    print(f"{name:48s} {count / elapsed:12,.0f} ops/s  {elapsed / count * 1e6:8.2f} µs/op")


def reassemble_three_parts() -> None:
    r: Reassembler[None] = Reassembler(timeout=60)
    key = PartKey("447700900001", "12345", 7, 3)
    r.add(key, 2, b"b" * 153, 0.0)
    r.add(key, 3, b"c" * 40, 0.0)
    r.add(key, 1, b"a" * 153, 0.0)


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    septets = encode_gsm7(GSM_160[:153])
    packed = pack_septets(septets, 1)
    ucs2_bytes = UCS2_LONG.encode("utf-16-be")
    cases: list[tuple[str, Callable[[], object]]] = [
        ("count_segments GSM7 160 chars", lambda: count_segments(GSM_160)),
        ("count_segments GSM7 600 chars with extensions", lambda: count_segments(GSM_LONG)),
        ("count_segments UCS-2 400 chars with emoji", lambda: count_segments(UCS2_LONG)),
        ("count_segments transliterate+latin1 600 chars",
         lambda: count_segments(GSM_LONG, transliterate=True, allow_latin1=True)),
        ("split_message GSM7 600 chars (UDH8)", lambda: split_message(GSM_LONG, reference=1)),
        ("split_message GSM7 600 chars packed",
         lambda: split_message(GSM_LONG, reference=1, gsm7_packed=True)),
        ("split_message UCS-2 400 chars (SAR)",
         lambda: split_message(UCS2_LONG, reference=1, method="sar")),
        ("pack_septets 153 septets", lambda: pack_septets(septets, 1)),
        ("unpack_septets 153 septets", lambda: unpack_septets(packed, 1, 153)),
        ("decode GSM7 160 septets", lambda: decode(septets, 0)),
        ("decode UCS-2 400 chars", lambda: decode(ucs2_bytes, 8)),
        ("parse_receipt", lambda: parse_receipt(RECEIPT)),
        ("message_ids_match hex vs decimal", lambda: message_ids_match("0A1B2C3D", "169552957")),
        ("Reassembler 3 parts (new reassembler)", reassemble_three_parts),
    ]  # fmt: skip
    for name, fn in cases:
        measure(name, fn, seconds)


if __name__ == "__main__":
    main()
