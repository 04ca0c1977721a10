"""Reassembly of incoming multi-part messages, with a clock passed in.

Parts of one message share a key: source address, destination address, reference number
and total count (3GPP TS 23.040 §9.2.3.24.1, or the SAR TLVs of SMPP 3.4 §5.3.2.22-24).
They may arrive in any order and more than once. :class:`Reassembler` collects them and
hands back the message when the last one arrives; :meth:`Reassembler.expire` reports the
sets that did not complete in time.

The reassembler joins payload *bytes* and knows nothing of alphabets: decode the joined
payload with :func:`smpp.encoding.decode` and the ``data_coding`` of the first part.
Joining before decoding is what keeps a UCS-2 character whose surrogate pair a sender cut
in two. Packed GSM 7-bit parts must be unpacked, each after its own fill bits, before
they are added.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar

T = TypeVar("T")


class PartKey(NamedTuple):
    """What the parts of one message have in common."""

    source: str
    destination: str
    reference: int
    total: int


@dataclass(frozen=True, slots=True)
class Reassembled(Generic[T]):
    """A complete message: payloads joined in sequence order, and each part's context."""

    key: PartKey
    payload: bytes
    contexts: tuple[T, ...]
    first_seen: float


@dataclass(frozen=True, slots=True)
class Incomplete(Generic[T]):
    """A set given up on: the parts that did arrive, in sequence order.

    ``reason`` is ``"timeout"``, or ``"evicted"`` when the reassembler held too many sets.
    """

    key: PartKey
    sequences: tuple[int, ...]
    payloads: tuple[bytes, ...]
    contexts: tuple[T, ...]
    first_seen: float
    reason: str


@dataclass(slots=True)
class _Pending(Generic[T]):
    first_seen: float
    parts: dict[int, tuple[bytes, T]] = field(default_factory=dict)


class Reassembler(Generic[T]):
    """Collects parts until a message is whole.

    ``timeout`` runs from the first part of a set. Sets are given up only by
    :meth:`expire` (a part that completes a late set still completes it). At most
    ``max_pending`` sets are held; beyond that the one begun first is evicted and reported
    by the next :meth:`expire`. After a set completes, a repeat of one of its parts with the same
    payload is ignored until ``timeout`` has passed; a part with a different payload
    starts a new set (the sender has reused the reference).
    """

    def __init__(self, timeout: float, *, max_pending: int = 10_000) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: dict[PartKey, _Pending[T]] = {}
        self._completed: dict[PartKey, tuple[float, dict[int, bytes]]] = {}
        self._evicted: list[Incomplete[T]] = []

    def __len__(self) -> int:
        """Sets waiting for parts."""
        return len(self._pending)

    def add(
        self,
        key: PartKey,
        sequence: int,
        payload: bytes,
        now: float,
        context: T = None,  # type: ignore[assignment]
    ) -> Reassembled[T] | None:
        """Add part ``sequence`` (1-based) of ``key``; return the message if now complete.

        ``context`` is anything the caller wants back with the message (the part's PDU,
        its ``data_coding``...). A single-part key (total 1) completes at once. A
        duplicate part is ignored and returns None. Raises :class:`ValueError` when
        ``sequence`` is not within 1..total.
        """
        if key.total < 1 or not 1 <= sequence <= key.total:
            raise ValueError(f"part {sequence} of {key.total} is not a valid position")
        if key.total == 1:
            return Reassembled(key, bytes(payload), (context,), now)
        done = self._completed.get(key)
        if done is not None:
            if done[1].get(sequence) == payload:
                return None  # a repeat of a part already delivered
            del self._completed[key]
        pending = self._pending.get(key)
        if pending is None:
            self._make_room()
            pending = self._pending[key] = _Pending(first_seen=now)
        if sequence in pending.parts:
            return None
        pending.parts[sequence] = (bytes(payload), context)
        if len(pending.parts) < key.total:
            return None
        del self._pending[key]
        ordered = [pending.parts[seq] for seq in range(1, key.total + 1)]
        self._completed[key] = (
            now + self.timeout,
            {seq: part[0] for seq, part in pending.parts.items()},
        )
        return Reassembled(
            key,
            b"".join(part[0] for part in ordered),
            tuple(part[1] for part in ordered),
            pending.first_seen,
        )

    def expire(self, now: float) -> list[Incomplete[T]]:
        """Give up on sets older than ``timeout`` at ``now``; return them with any evicted."""
        gone = self._evicted
        self._evicted = []
        for key in [k for k, p in self._pending.items() if p.first_seen + self.timeout <= now]:
            gone.append(self._incomplete(key, self._pending.pop(key), "timeout"))
        for key in [k for k, (until, _) in self._completed.items() if until <= now]:
            del self._completed[key]
        return gone

    def next_deadline(self) -> float | None:
        """The earliest time a pending set expires, for scheduling :meth:`expire`."""
        if not self._pending:
            return None
        return min(p.first_seen for p in self._pending.values()) + self.timeout

    def _make_room(self) -> None:
        # Dicts keep insertion order, so the first key is the set begun longest ago.
        while len(self._pending) >= self.max_pending:
            oldest = next(iter(self._pending))
            self._evicted.append(self._incomplete(oldest, self._pending.pop(oldest), "evicted"))
        while len(self._completed) >= self.max_pending:
            del self._completed[next(iter(self._completed))]

    @staticmethod
    def _incomplete(key: PartKey, pending: _Pending[T], reason: str) -> Incomplete[T]:
        sequences = tuple(sorted(pending.parts))
        return Incomplete(
            key,
            sequences,
            tuple(pending.parts[s][0] for s in sequences),
            tuple(pending.parts[s][1] for s in sequences),
            pending.first_seen,
            reason,
        )
