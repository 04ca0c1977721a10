"""The numbering reference book: E.164 number prefix → E.212 MCC/MNC, country and network.

Lookups are longest-prefix matches done in memory by :class:`PrefixTable`
(one dict probed from the longest stored prefix length down; a lookup costs
a handful of dict probes). The durable copy is the ``number_prefixes`` table,
which the system owner imports and exports as CSV::

    prefix,mcc,mnc,country,network
    7916,250,01,RU,MTS
    49,262,,DE,

An empty MNC means the network is not known (the country is). Import keeps
the good rows and reports every rejected row with its line number and the
reason. :func:`default_entries` builds a world table from the ``phonenumbers``
package (country calling codes and the national leading digits of countries
sharing a code, plus its carrier prefixes for network names) and the MCC
table in :mod:`billing.mcc`; no packaged source gives MNCs, so they are
left unknown there.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg

from accounts.tenancy import Conn, Scope, require_owner
from billing.mcc import COUNTRIES_BY_MCC, main_mcc
from config.errors import Invalid

HEADER = ("prefix", "mcc", "mnc", "country", "network")


@dataclass(frozen=True, slots=True)
class Network:
    """What a number's prefix tells: MCC, MNC (None when unknown), country and network name."""

    prefix: str
    mcc: str
    mnc: str | None
    country: str
    network: str = ""

    @property
    def mccmnc(self) -> str:
        """MCC and MNC run together ("25001", "310150"); just the MCC when the MNC is unknown."""
        return self.mcc + (self.mnc or "")


def split_mccmnc(mccmnc: str) -> tuple[str, str | None]:
    """("250", "01") from "25001"; ("250", None) from "250". 5 characters mean a 2-digit MNC."""
    if len(mccmnc) not in (3, 5, 6) or not mccmnc.isdigit():
        raise Invalid(f"not an MCCMNC: {mccmnc!r}")
    return mccmnc[:3], (mccmnc[3:] or None)


class PrefixTable:
    """Longest-prefix lookup of digit strings, in memory.

    Entries sit in one dict keyed by prefix. For each two-digit head the
    table keeps the prefix lengths that occur under it, longest first, so a
    lookup probes only lengths that can match (usually two to four probes).
    """

    __slots__ = ("_entries", "_lengths", "_short")

    def __init__(self, entries: Iterable[Network] = ()) -> None:
        self._entries: dict[str, Network] = {}
        for entry in entries:
            self._entries[entry.prefix] = entry
        by_head: dict[str, set[int]] = {}
        for prefix in self._entries:
            if len(prefix) >= 2:
                by_head.setdefault(prefix[:2], set()).add(len(prefix))
        # one-digit prefixes (+1, +7) may apply under any head: probe length 1 last
        short = (1,) if any(len(p) == 1 for p in self._entries) else ()
        self._short = short
        self._lengths: dict[str, tuple[int, ...]] = {
            head: tuple(sorted(lengths, reverse=True)) + short for head, lengths in by_head.items()
        }

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, digits: str) -> Network | None:
        """The entry with the longest prefix of ``digits`` (an E.164 number without '+'), or None."""
        get = self._entries.get
        for n in self._lengths.get(digits[:2], self._short):
            hit = get(digits[:n])
            if hit is not None:
                return hit
        return None

    def entries(self) -> list[Network]:
        return sorted(self._entries.values(), key=lambda e: e.prefix)


# -- the default world table --------------------------------------------------------------------

def _expand(pattern: str, limit: int = 2000) -> list[str] | None:
    """Digit strings matched by a leading-digits pattern made of digits, [classes] and (?:a|b) groups.

    phonenumbers writes the national leading digits of countries sharing a
    calling code this way ("8001|8[024]9"). Anything else (quantifiers...) → None.
    """
    pos = 0

    def alternation() -> list[str]:
        nonlocal pos
        options = sequence()
        while pos < len(pattern) and pattern[pos] == "|":
            pos += 1
            options = options + sequence()
        return options

    def sequence() -> list[str]:
        nonlocal pos
        results = [""]
        while pos < len(pattern) and pattern[pos] not in "|)":
            choices = atom()
            results = [r + c for r in results for c in choices]
            if len(results) > limit:
                raise ValueError("too many")
        return results

    def atom() -> list[str]:
        nonlocal pos
        ch = pattern[pos]
        if ch.isdigit():
            pos += 1
            return [ch]
        if ch == "[":
            end = pattern.index("]", pos)
            body, pos = pattern[pos + 1:end], end + 1
            digits: list[str] = []
            i = 0
            while i < len(body):
                if i + 2 < len(body) and body[i + 1] == "-":
                    digits += [str(d) for d in range(int(body[i]), int(body[i + 2]) + 1)]
                    i += 3
                else:
                    if not body[i].isdigit():
                        raise ValueError(body)
                    digits.append(body[i])
                    i += 1
            return digits
        if pattern.startswith("(?:", pos):
            pos += 3
            inner = alternation()
            if pos >= len(pattern) or pattern[pos] != ")":
                raise ValueError("unclosed group")
            pos += 1
            return inner
        raise ValueError(ch)

    try:
        result = alternation()
    except (ValueError, IndexError):
        return None
    return result if pos == len(pattern) else None


def _country_entries() -> dict[str, Network]:
    import phonenumbers
    from phonenumbers import PhoneMetadata

    table: dict[str, Network] = {}
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        geographic = [r for r in regions if main_mcc(r)]
        if not geographic:
            continue  # international networks and services (+800, +881...): no country
        main = geographic[0]
        table[str(cc)] = Network(str(cc), main_mcc(main), None, main)
        for region in geographic[1:]:
            meta = PhoneMetadata.metadata_for_region(region)
            lead = meta.leading_digits if meta else None
            for digits in (_expand(lead) or []) if lead else []:
                prefix = f"{cc}{digits}"
                table[prefix] = Network(prefix, main_mcc(region), None, region)
    # Canada shares +1 with the United States and has no leading-digit rule in the
    # metadata: ask phonenumbers which region each area code's numbers belong to.
    for area in range(200, 1000):
        for local in ("2345678", "4567890"):
            number = phonenumbers.parse(f"+1{area}{local}")
            region = phonenumbers.region_code_for_number(number)
            if region == "CA":
                table[f"1{area}"] = Network(f"1{area}", main_mcc("CA"), None, "CA")
                break
            if region:
                break
    return table


def default_entries() -> list[Network]:
    """The world reference book built from the phonenumbers package (see the module doc)."""
    from phonenumbers.carrierdata import CARRIER_DATA

    countries = _country_entries()
    by_country = PrefixTable(countries.values())
    entries = dict(countries)
    for prefix, names in CARRIER_DATA.items():
        name = names.get("en") or next(iter(names.values()), "")
        where = by_country.lookup(prefix)
        if where is None or not name:
            continue
        entries[prefix] = Network(prefix, where.mcc, None, where.country, name[:100])
    return sorted(entries.values(), key=lambda e: e.prefix)


# -- CSV ----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str
    text: str


@dataclass(frozen=True, slots=True)
class ImportReport:
    accepted: int
    rejected: tuple[RejectedRow, ...]


_PREFIX = re.compile(r"^[0-9]{1,15}$")
_MCC = re.compile(r"^[0-9]{3}$")
_MNC = re.compile(r"^[0-9]{2,3}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")


def _check_row(fields: list[str]) -> Network | str:
    """A Network, or the reason the row is refused."""
    if len(fields) != len(HEADER):
        return f"expected {len(HEADER)} columns, found {len(fields)}"
    prefix, mcc, mnc, country, network = (f.strip() for f in fields)
    prefix = prefix.lstrip("+")
    country = country.upper()
    if not _PREFIX.match(prefix):
        return "prefix must be 1 to 15 digits"
    if not _MCC.match(mcc):
        return "MCC must be 3 digits"
    if mnc and not _MNC.match(mnc):
        return "MNC must be 2 or 3 digits, or empty when unknown"
    if not _COUNTRY.match(country):
        return "country must be a 2-letter ISO 3166 code"
    known = COUNTRIES_BY_MCC.get(mcc)
    if known and country not in known:
        return f"MCC {mcc} belongs to {'/'.join(known)}, not {country}"
    if len(network) > 100:
        return "network name longer than 100 characters"
    return Network(prefix, mcc, mnc or None, country, network)


def parse_csv(text: str) -> tuple[list[Network], list[RejectedRow]]:
    """Good entries and rejected rows (1-based line numbers; the header is line 1)."""
    text = text.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(h.strip().lower() for h in header) != HEADER:
        raise Invalid(f"the first line must be the header {','.join(HEADER)}", field="file")
    good: dict[str, tuple[int, Network]] = {}
    rejected: list[RejectedRow] = []
    while True:
        start = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            rejected.append(RejectedRow(start, f"unreadable CSV: {exc}", ""))
            continue
        if not any(f.strip() for f in fields):
            continue
        outcome = _check_row(fields)
        raw = ",".join(fields)
        if isinstance(outcome, str):
            rejected.append(RejectedRow(start, outcome, raw))
        elif outcome.prefix in good:
            rejected.append(RejectedRow(start, f"prefix {outcome.prefix} repeats line {good[outcome.prefix][0]}", raw))
        else:
            good[outcome.prefix] = (start, outcome)
    return [n for _, n in good.values()], rejected


def to_csv(entries: Iterable[Network]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for e in entries:
        writer.writerow((e.prefix, e.mcc, e.mnc or "", e.country, e.network))
    return out.getvalue()


# -- SQL ----------------------------------------------------------------------------------------

_UPSERT = """
INSERT INTO number_prefixes (prefix, mcc, mnc, country, network)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
ON CONFLICT (prefix) DO UPDATE SET mcc = excluded.mcc, mnc = excluded.mnc, country = excluded.country,
    network = excluded.network, updated_at = now()"""
_BUMP = "UPDATE refbook_state SET revision = revision + 1, updated_at = now() RETURNING revision"


async def _store(conn: asyncpg.Connection, entries: Sequence[Network]) -> None:
    await conn.execute(
        _UPSERT, [e.prefix for e in entries], [e.mcc for e in entries], [e.mnc for e in entries],
        [e.country for e in entries], [e.network for e in entries],
    )


async def import_csv(conn: asyncpg.Connection, scope: Scope, text: str, *, replace: bool = False) -> ImportReport:
    """Load a CSV (system owner only): good rows are upserted, bad rows reported.

    ``replace`` first removes every prefix the file does not list.
    """
    require_owner(scope)
    good, rejected = parse_csv(text)
    async with conn.transaction():
        if replace:
            await conn.execute("DELETE FROM number_prefixes WHERE NOT (prefix = ANY($1::text[]))",
                               [e.prefix for e in good])
        await _store(conn, good)
        await conn.execute(_BUMP)
    return ImportReport(len(good), tuple(rejected))


async def export_csv(conn: Conn, scope: Scope) -> str:
    require_owner(scope)
    return to_csv(await all_entries(conn))


async def all_entries(conn: Conn) -> list[Network]:
    rows = await conn.fetch("SELECT prefix, mcc, mnc, country, network FROM number_prefixes ORDER BY prefix")
    return [Network(r["prefix"], r["mcc"], r["mnc"], r["country"], r["network"]) for r in rows]


async def load_prefix_table(conn: Conn) -> tuple[int, PrefixTable]:
    """(revision, table) of the stored reference book, for in-process lookups."""
    revision = await conn.fetchval("SELECT revision FROM refbook_state")
    return revision, PrefixTable(await all_entries(conn))


async def revision(conn: Conn) -> int:
    """Bumped on every change: reload the table when it differs from the one you hold."""
    return await conn.fetchval("SELECT revision FROM refbook_state")


async def seed_default(conn: asyncpg.Connection) -> int:
    """Fill an empty reference book with :func:`default_entries`; returns rows added (0 if not empty)."""
    async with conn.transaction():
        await conn.execute("LOCK TABLE number_prefixes IN SHARE ROW EXCLUSIVE MODE")
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM number_prefixes)"):
            return 0
        entries = default_entries()
        await _store(conn, entries)
        await conn.execute(_BUMP)
    return len(entries)


class ReferenceBook:
    """One process's in-memory reference book, reloaded when the stored revision moves.

    The pipeline keeps one and calls :meth:`refresh` now and then (one cheap
    query); :meth:`lookup` never touches the database.
    """

    def __init__(self) -> None:
        self.revision = -1
        self.table = PrefixTable()

    async def refresh(self, conn: Conn) -> bool:
        """Reload if the stored book changed since the last load; True when it reloaded."""
        current = await revision(conn)
        if current == self.revision:
            return False
        self.revision, self.table = await load_prefix_table(conn)
        return True

    def lookup(self, digits: str) -> Network | None:
        """The longest-prefix entry for an E.164 number given as digits (no '+')."""
        return self.table.lookup(digits)
