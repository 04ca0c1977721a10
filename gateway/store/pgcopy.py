"""PostgreSQL's binary COPY, written by Herald for the messages and the send queue: each
value exactly as asyncpg writes it, the columns that repeat encoded once while they
repeat, and asyncpg's own COPY for a value the encoder is not sure of."""

from __future__ import annotations

import operator
import struct
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_INT8_OID = 20


class Unsupported(Exception):
    """A value the encoder leaves to asyncpg."""


def _text(value: object) -> bytes:
    if not isinstance(value, str):
        raise Unsupported
    data = value.encode()
    return len(data).to_bytes(4, "big") + data


def _integer(size: int) -> Callable[[object], bytes]:
    low, high = -(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1
    length = size.to_bytes(4, "big")

    def encode(value: object) -> bytes:
        # asyncpg takes any int (an IntEnum such as DataCoding) by its int value, but not a bool
        if not isinstance(value, int) or type(value) is bool:
            raise Unsupported
        number = int(value)
        if not low <= number <= high:
            raise Unsupported
        return length + number.to_bytes(size, "big", signed=True)

    return encode


_TRUE, _FALSE = b"\x00\x00\x00\x01\x01", b"\x00\x00\x00\x01\x00"


def _boolean(value: object) -> bytes:
    if value is True:
        return _TRUE
    if value is False:
        return _FALSE
    raise Unsupported


def _uuid(value: object) -> bytes:
    if not isinstance(value, uuid.UUID):
        raise Unsupported
    return b"\x00\x00\x00\x10" + value.bytes


def _timestamptz(value: object) -> bytes:
    if type(value) is not datetime or value.utcoffset() is None:
        raise Unsupported  # naive: asyncpg reads it as local time
    micros = (value - _PG_EPOCH) // _MICROSECOND
    return b"\x00\x00\x00\x08" + micros.to_bytes(8, "big", signed=True)


def _numeric(value: object) -> bytes:
    """A finite Decimal as asyncpg's numeric_encode_binary writes it (base-10000 digits)."""
    if type(value) is not Decimal or not value.is_finite():
        raise Unsupported
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)
    if exponent < 0 and -exponent > 0x3FFF:
        raise Unsupported
    dweight = len(digits) + exponent - 1
    weight = (dweight + 4) // 4 - 1 if dweight >= 0 else -((-dweight - 1) // 4 + 1)
    padding = (weight + 1) * 4 - (dweight + 1)
    count = (len(digits) + padding + 3) // 4
    if not -0x8000 <= weight <= 0x7FFF or count > 0xFFFF:
        raise Unsupported
    padded = (0,) * 4 + tuple(digits) + (0,) * 4
    j = 4 - padding
    groups = []
    for _ in range(count):
        groups.append(padded[j] * 1000 + padded[j + 1] * 100 + padded[j + 2] * 10 + padded[j + 3])
        j += 4
    head = struct.pack(">ihhHh", 8 + 2 * count, count, weight, 0x4000 if sign else 0,
                       -exponent if exponent < 0 else 0)
    return head + struct.pack(f">{count}H", *groups)


_INT8 = _integer(8)


def _bigint_array(value: object) -> bytes:
    """A one-dimensional ``bigint[]`` without NULLs (a route)."""
    if not isinstance(value, (tuple, list)) or not value:
        raise Unsupported
    # dimensions, has-nulls flag, element type, then (length, lower bound) of the dimension
    body = struct.pack(">iiiii", 1, 0, _INT8_OID, len(value), 1)
    body += b"".join(_INT8(v) for v in value)
    return len(body).to_bytes(4, "big") + body


ENCODERS: dict[str, Callable[[object], bytes]] = {
    "text": _text, "character": _text, "uuid": _uuid, "bigint": _INT8,
    "integer": _integer(4), "smallint": _integer(2), "boolean": _boolean, "numeric": _numeric,
    "timestamp with time zone": _timestamptz, "bigint[]": _bigint_array,
}
"""The column types the encoder writes (``format_type`` names), each with its encoder."""


def _unknown(value: object) -> bytes:
    raise Unsupported  # a column type the encoder does not know: asyncpg's


class CopyTable:
    """How the rows of one table are written: the columns of a row, in order, with their
    types; ``repeated``, the columns that usually keep their values from one row to the
    next, encoded once while they do (never a boolean one: 1 == True, but only a bool is
    a boolean to asyncpg).

    The binary data lists the other columns first: :attr:`copy_columns` is its order.
    """

    def __init__(self, columns: Sequence[tuple[str, str]], repeated: Sequence[str] = ()) -> None:
        self.columns = tuple(name for name, _ in columns)
        types = dict(columns)
        shared = [c for c in self.columns if c in repeated and types[c] != "boolean"]
        each = [c for c in self.columns if c not in shared]
        self.copy_columns = (*each, *shared)
        index = {name: i for i, name in enumerate(self.columns)}
        self._each = _getter([index[c] for c in each])
        self._each_encoders = tuple(ENCODERS.get(types[c], _unknown) for c in each)
        self._shared = _getter([index[c] for c in shared]) if shared else None
        self._shared_encoders = tuple(ENCODERS.get(types[c], _unknown) for c in shared)
        self._row_start = len(self.columns).to_bytes(2, "big")

    def encode(self, rows: Sequence[Sequence]) -> bytes | None:
        """Binary COPY data of ``rows`` (values in :attr:`columns` order) for the columns
        :attr:`copy_columns`; None when a value is one the encoder leaves to asyncpg."""
        parts = [_HEADER]
        append = parts.append
        each_of, each_encoders = self._each, self._each_encoders
        shared_of, shared_encoders = self._shared, self._shared_encoders
        row_start, null = self._row_start, _NULL
        last: tuple | None = None
        block = b""
        try:
            for row in rows:
                append(row_start)
                for encode, value in zip(each_encoders, each_of(row)):  # noqa: B905 (same length)
                    append(null if value is None else encode(value))
                if shared_of is not None:
                    key = shared_of(row)
                    if key != last:  # equal values encode alike (no boolean among them)
                        block = b"".join([null if v is None else encode(v)
                                          for encode, v in zip(shared_encoders, key, strict=True)])
                        last = key
                    append(block)
        except Unsupported:
            return None
        append(_TRAILER)
        return b"".join(parts)


def _getter(indexes: list[int]) -> Callable[[Sequence], tuple]:
    """The values at ``indexes`` of a row, as a tuple (one or more)."""
    if len(indexes) == 1:
        (i,) = indexes
        return lambda row: (row[i],)
    return operator.itemgetter(*indexes)


async def copy(conn: asyncpg.Connection, name: str, table: CopyTable, rows: Sequence[Sequence]
               ) -> None:
    """Write ``rows`` into the table ``name`` with one binary COPY (asyncpg's own when a
    value is one :meth:`CopyTable.encode` leaves to it)."""
    if not rows:
        return
    data = table.encode(rows)
    if data is None:
        await conn.copy_records_to_table(name, records=rows, columns=table.columns)
    else:
        # a buffer is sent as it is (a file would be read in the executor's threads)
        await conn.copy_to_table(name, source=memoryview(data), columns=table.copy_columns,
                                 format="binary")
