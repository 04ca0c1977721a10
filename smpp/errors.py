"""Exceptions of the SMPP library.

Every exception derives from :class:`SmppError`. Two families matter to
callers:

- :class:`DecodeError` and its subclasses: bytes from the peer could not be
  turned into a PDU. Each carries the ``command_status`` to answer with and
  says whether framing was lost (the connection must then be closed).
- :class:`LocalProtocolError` (this side misused the library, e.g. sent a
  ``deliver_sm`` on a transmitter bind) versus :class:`RemoteProtocolError`
  (the peer broke the protocol), in the manner of h11.
"""

from __future__ import annotations


class SmppError(Exception):
    """Root of every exception raised by :mod:`smpp`."""


class DecodeError(SmppError):
    """Bytes that do not form a valid PDU.

    ``status`` is the ``command_status`` the receiver should answer with,
    ``command_id`` and ``sequence_number`` come from the header when it could
    be read (``None`` / ``0`` otherwise). ``fatal`` is true when the byte
    stream can no longer be split into PDUs.
    """

    fatal = False

    def __init__(
        self,
        message: str,
        *,
        status: int,
        command_id: int | None = None,
        sequence_number: int = 0,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.field = field


class FramingError(DecodeError):
    """``command_length`` is out of bounds: the stream cannot be resynchronised.

    SMPP 3.4 §2.6 / §4.3: answer ``generic_nack`` with ``ESME_RINVCMDLEN`` and
    close the connection.
    """

    fatal = True


class UnknownCommandError(DecodeError):
    """A ``command_id`` that SMPP 3.4 does not define (answer ``generic_nack``)."""


class BodyError(DecodeError):
    """A mandatory field or TLV failed to decode.

    ``field`` names it; ``status`` is the status tied to that field in the
    codec table (for example ``ESME_RINVDSTADR`` for ``destination_addr``).
    The PDU's own response carries it back to the peer.
    """


class EncodeError(SmppError, ValueError):
    """A PDU holds a value that cannot be put on the wire (too long, out of range)."""


class LocalProtocolError(SmppError):
    """This side asked the session to do something SMPP does not allow here."""


class RemoteProtocolError(SmppError):
    """The peer broke the protocol.

    ``status`` is what the session answered (``None`` when nothing could be
    answered) and ``fatal`` tells whether the connection must be closed.
    """

    def __init__(self, message: str, *, status: int | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.fatal = fatal


class ConnectionClosedError(SmppError):
    """The connection went away (or was never up) while a caller waited on it."""
