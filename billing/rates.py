"""Rates per network: a price per message part for an MCC/MNC, or for a whole country (MNC '*').

Shared by vendor products and rate plans: the row type, the CSV price-list
format and the in-memory lookup with its country fallback.

Price-list CSV (what resellers export, edit and upload)::

    mcc,mnc,price,country
    250,01,0.031000,RU
    250,*,0.045000,RU

``country`` (and any later column) is informative and ignored on import.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from billing.mcc import COUNTRIES_BY_MCC
from billing.refbook import RejectedRow
from config.errors import Invalid

_MCC = re.compile(r"^[0-9]{3}$")
_MNC = re.compile(r"^([0-9]{2,3}|\*)$")
MAX_PRICE = Decimal("999999")
_QUANTUM = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class RateRow:
    mcc: str
    mnc: str        # '*' for the whole country
    price: Decimal

    @property
    def label(self) -> str:
        return self.mcc if self.mnc == "*" else f"{self.mcc}/{self.mnc}"


def check_rate(mcc: str, mnc: str, price: str | Decimal) -> RateRow | str:
    """A RateRow, or the reason the values are refused."""
    mcc, mnc = mcc.strip(), (mnc.strip() or "*")
    if not _MCC.match(mcc):
        return "MCC must be 3 digits"
    if not _MNC.match(mnc):
        return "MNC must be 2 or 3 digits, or * for the whole country"
    try:
        value = Decimal(str(price).strip())
    except InvalidOperation:
        return f"price {price!r} is not a number"
    if not value.is_finite() or value < 0 or value > MAX_PRICE:
        return f"price must be from 0 to {MAX_PRICE}"
    if value != value.quantize(_QUANTUM):
        return "price has more than 6 decimal places"
    return RateRow(mcc, mnc, value.quantize(_QUANTUM))


def parse_rates_csv(text: str) -> tuple[list[RateRow], list[RejectedRow]]:
    """Good rows and rejected rows (1-based line numbers, header on line 1)."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip().lower() for h in next(reader, [])]
    if header[:3] != ["mcc", "mnc", "price"]:
        raise Invalid("the first line must be the header mcc,mnc,price", field="file")
    good: dict[tuple[str, str], tuple[int, RateRow]] = {}
    rejected: list[RejectedRow] = []
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejected.append(RejectedRow(line, f"unreadable CSV: {exc}", ""))
            continue
        if not any(f.strip() for f in fields):
            continue
        raw = ",".join(fields)
        if len(fields) < 3:
            rejected.append(RejectedRow(line, f"expected at least 3 columns, found {len(fields)}", raw))
            continue
        outcome = check_rate(fields[0], fields[1], fields[2])
        if isinstance(outcome, str):
            rejected.append(RejectedRow(line, outcome, raw))
        elif (outcome.mcc, outcome.mnc) in good:
            first = good[(outcome.mcc, outcome.mnc)][0]
            rejected.append(RejectedRow(line, f"{outcome.label} repeats line {first}", raw))
        else:
            good[(outcome.mcc, outcome.mnc)] = (line, outcome)
    return [r for _, r in good.values()], rejected


def rates_to_csv(rows: Iterable[RateRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("mcc", "mnc", "price", "country"))
    for r in sorted(rows, key=lambda r: (r.mcc, r.mnc)):
        writer.writerow((r.mcc, r.mnc, f"{r.price:f}", "/".join(COUNTRIES_BY_MCC.get(r.mcc, ()))))
    return out.getvalue()


class RateTable:
    """Price lookup for one product or plan: the network's rate, else the country's.

    Keys are strings: MCC+MNC for a network ("25001", "310150"), the MCC alone
    for a country. The two never collide (5-6 characters against 3), and a
    message whose network is unknown ("250") meets the country rate directly.
    """

    __slots__ = ("_rates",)

    def __init__(self, rows: Iterable[RateRow] = ()) -> None:
        self._rates: dict[str, Decimal] = {
            (r.mcc if r.mnc == "*" else r.mcc + r.mnc): r.price for r in rows
        }

    def __len__(self) -> int:
        return len(self._rates)

    def rate_for(self, mcc: str, mnc: str | None) -> Decimal | None:
        """The price per part for MCC/MNC (``mnc`` None: network unknown), or None if not covered."""
        return self.lookup(mcc + mnc if mnc else mcc)

    def lookup(self, mccmnc: str) -> Decimal | None:
        """The price per part for "25001" (else its country "250"), or None if not covered."""
        price = self._rates.get(mccmnc)
        if price is None and len(mccmnc) > 3:
            price = self._rates.get(mccmnc[:3])
        return price

    def covers(self, row: RateRow) -> bool:
        """Whether a derived plan may sell this row: the base has the network or its country."""
        if row.mnc == "*":
            return row.mcc in self._rates
        return self.rate_for(row.mcc, row.mnc) is not None

    def rows(self) -> list[RateRow]:
        return [RateRow(key[:3], key[3:] or "*", price) for key, price in sorted(self._rates.items())]
