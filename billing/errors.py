"""Billing's domain errors, each with the HTTP and SMPP answer it maps to."""

from __future__ import annotations

from config.errors import Conflict, Forbidden, Invalid

ESME_RINVSRCADR = 0x0000000A  # SMPP 3.4 §5.1.3: invalid source address
ESME_RINVDSTADR = 0x0000000B  # invalid destination address
ESME_RSUBMITFAIL = 0x00000045  # submit_sm failed


class InsufficientBalance(Conflict):
    """The payer's balance plus credit limit does not cover the amount."""

    http_status = 402
    smpp_status = ESME_RSUBMITFAIL


class StaleSnapshot(Conflict):
    """A batch priced without the payers' lock found, under it, that a balance, pack or status
    it relied on had changed: its transaction must be rolled back and the batch charged again
    under the lock (see :meth:`billing.charging.Priced.record`)."""


class NoRate(Invalid):
    """Neither a pack nor the rate plan covers the destination network."""

    smpp_status = ESME_RINVDSTADR


class PartnerBlocked(Forbidden):
    """A partner on the paying chain is blocked."""

    smpp_status = ESME_RSUBMITFAIL


class SenderNotAllowed(Forbidden):
    """The sender ID is not enabled for this partner and channel."""

    smpp_status = ESME_RINVSRCADR
