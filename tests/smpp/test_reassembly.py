"""Reassembler: ordering, duplicates, timeouts and eviction, with the clock passed in."""

from __future__ import annotations

import pytest

from smpp.reassembly import Incomplete, PartKey, Reassembled, Reassembler

KEY = PartKey("447700900001", "12345", reference=7, total=3)


def test_parts_in_any_order_complete_once() -> None:
    r: Reassembler[str] = Reassembler(timeout=30)
    assert r.add(KEY, 3, b"C", now=0, context="pdu3") is None
    assert r.add(KEY, 1, b"A", now=1, context="pdu1") is None
    assert len(r) == 1
    done = r.add(KEY, 2, b"B", now=2, context="pdu2")
    assert done == Reassembled(KEY, b"ABC", ("pdu1", "pdu2", "pdu3"), first_seen=0)
    assert len(r) == 0


def test_order_is_numeric_not_textual() -> None:
    key = PartKey("a", "b", 1, 12)
    r: Reassembler[None] = Reassembler(timeout=30)
    done = None
    for seq in (10, 2, 12, 1, 11, 3, 9, 4, 8, 5, 7, 6):
        done = r.add(key, seq, f"[{seq}]".encode(), now=0)
    assert done is not None
    assert done.payload == b"".join(f"[{n}]".encode() for n in range(1, 13))


def test_duplicates_are_ignored() -> None:
    r: Reassembler[int] = Reassembler(timeout=30)
    assert r.add(KEY, 1, b"A", now=0, context=1) is None
    assert r.add(KEY, 1, b"X", now=1, context=99) is None  # the first copy stays
    assert r.add(KEY, 2, b"B", now=2, context=2) is None
    done = r.add(KEY, 3, b"C", now=3, context=3)
    assert done is not None and done.payload == b"ABC" and done.contexts == (1, 2, 3)
    # A late repeat of a delivered part does not start a new set.
    assert r.add(KEY, 2, b"B", now=4) is None
    assert len(r) == 0
    assert r.expire(now=100) == []


def test_reused_reference_with_new_content_starts_a_new_set() -> None:
    r: Reassembler[None] = Reassembler(timeout=30)
    for seq, chunk in enumerate((b"A", b"B", b"C"), 1):
        r.add(KEY, seq, chunk, now=0)
    assert r.add(KEY, 1, b"D", now=5) is None
    assert len(r) == 1
    r.add(KEY, 2, b"E", now=6)
    done = r.add(KEY, 3, b"F", now=7)
    assert done is not None and done.payload == b"DEF" and done.first_seen == 5


def test_keys_are_kept_apart() -> None:
    r: Reassembler[None] = Reassembler(timeout=30)
    other_sender = KEY._replace(source="447700900002")
    other_total = KEY._replace(total=2)
    r.add(KEY, 1, b"A", now=0)
    r.add(other_sender, 1, b"x", now=0)
    r.add(other_total, 1, b"y", now=0)
    assert len(r) == 3
    done = r.add(other_total, 2, b"z", now=1)
    assert done is not None and done.payload == b"yz" and done.key == other_total


def test_incomplete_sets_expire_and_are_reported() -> None:
    r: Reassembler[str] = Reassembler(timeout=30)
    r.add(KEY, 3, b"C", now=10, context="c")
    r.add(KEY, 1, b"A", now=20, context="a")
    later = PartKey("x", "y", 1, 2)
    r.add(later, 1, b"L", now=25)
    assert r.next_deadline() == 40
    assert r.expire(now=39.9) == []
    assert r.expire(now=40) == [
        Incomplete(KEY, (1, 3), (b"A", b"C"), ("a", "c"), first_seen=10, reason="timeout")
    ]
    assert len(r) == 1 and r.next_deadline() == 55
    # A part arriving after its set expired starts over.
    assert r.add(KEY, 2, b"B", now=41) is None
    assert len(r) == 2


def test_late_part_still_completes_before_expire_runs() -> None:
    r: Reassembler[None] = Reassembler(timeout=30)
    r.add(KEY, 1, b"A", now=0)
    r.add(KEY, 2, b"B", now=0)
    done = r.add(KEY, 3, b"C", now=31)
    assert done is not None and done.payload == b"ABC"


def test_oldest_set_is_evicted_when_full() -> None:
    r: Reassembler[None] = Reassembler(timeout=30, max_pending=2)
    keys = [PartKey("s", "d", ref, 2) for ref in range(3)]
    for now, key in enumerate(keys):
        r.add(key, 1, b"p", now=now)
    assert len(r) == 2
    (evicted,) = r.expire(now=3)
    assert evicted.key == keys[0] and evicted.reason == "evicted"
    assert r.expire(now=3) == []


def test_single_part_completes_at_once() -> None:
    r: Reassembler[str] = Reassembler(timeout=30)
    key = PartKey("s", "d", 0, 1)
    assert r.add(key, 1, b"whole", now=5, context="c") == Reassembled(key, b"whole", ("c",), 5)
    assert len(r) == 0 and r.next_deadline() is None


@pytest.mark.parametrize(("total", "seq"), [(3, 0), (3, 4), (0, 1)])
def test_invalid_position_raises(total: int, seq: int) -> None:
    with pytest.raises(ValueError):
        Reassembler(timeout=30).add(PartKey("s", "d", 0, total), seq, b"", now=0)


def test_constructor_checks() -> None:
    with pytest.raises(ValueError):
        Reassembler(timeout=0)
    with pytest.raises(ValueError):
        Reassembler(timeout=1, max_pending=0)
