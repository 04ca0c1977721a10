"""Contacts (guide §6.1): one partner's people, their groups, fields and blocked sender IDs.

``clean`` turns what a form posted into a :class:`ContactInput` (pure); the
rest is SQL on ``contacts`` (see the package doc for the table). A phone is
unique per partner; two contacts with the same number are a Conflict on the
``phone`` field. Blocked sender IDs are ``stop_list`` rows of the contact's
number (:mod:`contacts.stoplist`); they stay when the contact is deleted, as
an opt-out belongs to the number.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from config.errors import Conflict, Invalid, NotFound
from contacts import fields as fieldmod
from contacts import groups as groupmod
from contacts import phones, stoplist
from contacts.fields import FieldDef
from contacts.text import N_

Conn = asyncpg.Connection | asyncpg.Pool
MAX_ID = 2**63 - 1
BULK_MAX = 1000


@dataclass(frozen=True, slots=True)
class ContactInput:
    """A contact as a form gave it, checked: what create and update store."""

    phone: str
    group_ids: tuple[int, ...]
    first_name: str = ""
    last_name: str = ""
    birth_date: date | None = None
    gender: str | None = None
    comments: str = ""
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    partner_id: int
    phone: str
    group_ids: list[int]
    first_name: str
    last_name: str
    birth_date: date | None
    gender: str | None
    comments: str
    fields: dict[str, Any]
    created_by: int | None
    updated_by: int | None
    created_at: datetime
    updated_at: datetime
    blocked: list[str] = field(default_factory=list)  # sender IDs blocked, '*' for all

    @property
    def display_phone(self) -> str:
        return phones.display(self.phone)

    @property
    def user_id(self) -> int | None:
        """Who created the contact or changed it last."""
        return self.updated_by if self.updated_by is not None else self.created_by


# Checking what a form posted (pure)

PHONE_MESSAGE = N_("Enter a valid phone number, with its country code unless it is a number of your country.")
VALUE_MESSAGES = {
    "bad_date": N_("Enter a date as YYYY-MM-DD."),
    "bad_number": N_("Enter a number."),
    "bad_boolean": N_("Choose yes or no."),
    "bad_gender": N_("Choose one of the options."),
    "too_long": N_("This text is too long."),
}


def clean(values: Mapping[str, Any], all_fields: Sequence[FieldDef], group_ids: Sequence[str],
          country: str | None) -> tuple[ContactInput | None, dict[str, str]]:
    """Check a contact form: ``values`` by field key, ``group_ids`` as posted.

    Returns the input and no errors, or None and the message id of each field's error.
    """
    errors: dict[str, str] = {}
    raw_phone = str(values.get("phone", "") or "").strip()
    phone = phones.normalise(raw_phone, country) if raw_phone else None
    if not raw_phone:
        errors["phone"] = N_("This field is required.")
    elif phone is None:
        errors["phone"] = PHONE_MESSAGE
    groups: list[int] = []
    for raw in group_ids:
        try:
            value = int(raw)
        except (TypeError, ValueError):
            continue
        if 0 < value <= MAX_ID:
            groups.append(value)
    if not groups:
        errors["groups"] = N_("Choose at least one group.")
    builtin: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for spec in all_fields:
        if spec.kind == "system":
            continue
        raw = values.get(spec.key)
        raw = raw.strip() if isinstance(raw, str) else raw
        try:
            if spec.key == "gender":
                value = fieldmod.parse_gender(raw)
            elif spec.key == "birth_date":
                day = fieldmod.parse_date(raw)
                if day is not None and day > date.today():
                    raise ValueError("bad_date")
                value = day
            elif spec.kind == "builtin":
                value = fieldmod.parse_builtin_text(raw, 1000 if spec.key == "comments" else 100) or None
            else:
                value = fieldmod.parse_value(spec.data_type, raw)
        except ValueError as exc:
            errors[spec.key] = VALUE_MESSAGES.get(str(exc), VALUE_MESSAGES["too_long"])
            continue
        if isinstance(value, str) and "\x00" in value:
            errors[spec.key] = N_("This text holds characters that cannot be stored.")
            continue
        if value is None:
            if spec.required:
                errors[spec.key] = N_("This field is required.")
            continue
        if spec.kind == "builtin":
            builtin[spec.key] = value
        else:
            custom[spec.variable] = value
    if errors:
        return None, errors
    return ContactInput(
        phone=phone or "", group_ids=tuple(dict.fromkeys(groups)),
        first_name=builtin.get("first_name", ""), last_name=builtin.get("last_name", ""),
        birth_date=builtin.get("birth_date"), gender=builtin.get("gender"),
        comments=builtin.get("comments", ""), fields=custom,
    ), {}


# Reading

_COLUMNS = """c.id, c.partner_id, c.phone, c.group_ids, c.first_name, c.last_name, c.birth_date,
    c.gender, c.comments, c.fields, c.created_by, c.updated_by, c.created_at, c.updated_at"""
_BLOCKED = """ARRAY(SELECT s.sender FROM stop_list s WHERE s.partner_id = c.partner_id
                    AND s.msisdn = c.phone ORDER BY s.sender) AS blocked"""


def _contact(row: asyncpg.Record) -> Contact:
    values = dict(row)
    if isinstance(values["fields"], str):
        values["fields"] = json.loads(values["fields"])
    values.setdefault("blocked", [])
    return Contact(**values)


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


async def get(conn: Conn, partner_id: int, contact_id: int) -> Contact:
    if not valid_id(contact_id):
        raise NotFound("no such contact")
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, {_BLOCKED} FROM contacts c WHERE c.partner_id = $1 AND c.id = $2",
        partner_id, contact_id)
    if row is None:
        raise NotFound("no such contact")
    return _contact(row)


async def for_phone(conn: Conn, partner_id: int, phone: str) -> Contact | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, {_BLOCKED} FROM contacts c WHERE c.partner_id = $1 AND c.phone = $2",
        partner_id, phone)
    return _contact(row) if row is not None else None


@dataclass(frozen=True, slots=True)
class ContactFilter:
    """The Contacts table's filters, checked (see :func:`filter_from`)."""

    phone: str = ""                     # digits the number starts with
    group_ids: tuple[int, ...] = ()     # in any of these groups
    first_name: str = ""                # contains, any case
    last_name: str = ""
    comments: str = ""
    gender: str = ""
    birth_date: date | None = None
    created: date | None = None         # created on that day (UTC)
    updated: date | None = None
    user_id: int | None = None
    custom: Mapping[str, Any] = field(default_factory=dict)  # variable -> value (equality, any case)
    ids: tuple[int, ...] = ()           # only these contacts (export of a selection)
    nothing: bool = False               # a filter nothing can match (a phone filter with letters)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def where(partner_id: int, flt: ContactFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter over ``contacts c`` and its arguments (``$1`` is the partner)."""
    clauses = ["c.partner_id = $1"]
    args: list[Any] = [partner_id]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if flt.nothing:
        clauses.append("false")
    if flt.phone:
        # a range of the unique (partner_id, phone) index: phone is collated "C"
        clauses.append(f"c.phone >= {arg(flt.phone)} AND c.phone < {arg(flt.phone + ':')}")
    if flt.group_ids:
        clauses.append(f"c.group_ids && {arg(list(flt.group_ids))}::bigint[]")
    for column in ("first_name", "last_name", "comments"):
        text = getattr(flt, column)
        if text:
            clauses.append(f"contact_fold(c.{column}) LIKE contact_fold({arg(_like(text))})")
    if flt.gender:
        clauses.append(f"c.gender = {arg(flt.gender)}")
    if flt.birth_date:
        clauses.append(f"c.birth_date = {arg(flt.birth_date)}")
    for column, day in (("created_at", flt.created), ("updated_at", flt.updated)):
        if day:
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            clauses.append(f"c.{column} >= {arg(start)} AND c.{column} < {arg(start + timedelta(days=1))}")
    if flt.user_id is not None:
        clauses.append(f"coalesce(c.updated_by, c.created_by) = {arg(flt.user_id)}")
    if flt.custom:
        # both sides folded by PostgreSQL (contact_fold, 0500): the same rule for both
        clauses.append(
            f"contact_fields_folded(c.fields) @> contact_fields_folded({arg(dict(flt.custom))}::jsonb)")
    if flt.ids:
        clauses.append(f"c.id = ANY({arg(list(flt.ids))}::bigint[])")
    return " AND ".join(clauses), args


# How many of the newest rows (past the page's position) a filtered page first looks through
# in id order before it asks the indexes of its filters instead. See list_page.
NEAR_ROWS = 20_000


def _filtered(flt: ContactFilter) -> bool:
    return any((flt.phone, flt.group_ids, flt.first_name, flt.last_name, flt.comments, flt.gender,
                flt.birth_date, flt.created, flt.updated, flt.user_id is not None, flt.custom,
                flt.ids, flt.nothing))


async def list_page(conn: Conn, partner_id: int, flt: ContactFilter, *,
                    after: tuple | None = None, before: tuple | None = None,
                    limit: int = 25) -> list[Contact]:
    """Newest first, after (or before) a contact id; with ``before`` still newest first.

    A filtered page is read in two steps. The planner assumes matching rows
    are spread evenly over the ids, so it walks the (partner_id, id) index
    from the newest row and filters as it goes; when the matches are all old
    (an imported group filtered by a phone prefix) that walk reads the whole
    table. So the walk is first bounded to the ``NEAR_ROWS`` rows after the
    position; if they do not fill the page, the rest comes from the filters'
    own indexes (GIN on groups and fields, the phone range), sorted by id:
    cheap, since a filter that found fewer than a page in 20,000 rows is selective.
    """
    at_after = after[0] if after and len(after) == 1 and valid_id(after[0]) else None
    at_before = before[0] if before and len(before) == 1 and valid_id(before[0]) else None
    backwards = at_after is None and at_before is not None
    clause, args = where(partner_id, flt)
    n = len(args)
    if backwards:
        position, order, cmp, near_op = at_before, "ASC", ">", "<="
    else:
        position, order, cmp, near_op = at_after, "DESC", "<", ">="
    past = f" AND c.id {cmp} ${n + 2}" if position is not None else ""
    select = f"SELECT {_COLUMNS}, {_BLOCKED} FROM contacts c WHERE {clause}{past}"
    extra = [position] if position is not None else []
    if not _filtered(flt):
        rows = await conn.fetch(f"{select} ORDER BY c.id {order} LIMIT ${n + 1}", *args, limit, *extra)
    else:
        bound = await conn.fetchval(
            f"""SELECT c.id FROM contacts c WHERE c.partner_id = $1{past.replace(f"${n + 2}", "$3")}
                ORDER BY c.id {order} OFFSET $2 LIMIT 1""",
            partner_id, NEAR_ROWS, *extra)
        if bound is None:
            rows = await conn.fetch(f"{select} ORDER BY c.id {order} LIMIT ${n + 1}", *args, limit, *extra)
        else:
            at = f"${n + len(extra) + 2}"
            rows = await conn.fetch(f"{select} AND c.id {near_op} {at} ORDER BY c.id {order} LIMIT ${n + 1}",
                                    *args, limit, *extra, bound)
            if len(rows) < limit:
                # "c.id + 0": not the id index's order, so the filters' indexes are used
                rows += await conn.fetch(
                    f"{select} AND c.id {cmp} {at} ORDER BY c.id + 0 {order} LIMIT ${n + 1}",
                    *args, limit - len(rows), *extra, bound)
    if backwards:
        rows = list(reversed(rows))
    return [_contact(r) for r in rows]


async def stream(conn: asyncpg.Connection, partner_id: int, flt: ContactFilter, *,
                 prefetch: int = 2000) -> AsyncIterator[Contact]:
    """Every contact the filter matches, newest first, from one cursor (an export).

    One plan for the whole export (the planner picks the filters' indexes or
    the id order as the filter asks), read ``prefetch`` rows at a time in a
    read-only transaction that stays open while the download lasts.
    """
    clause, args = where(partner_id, flt)
    sql = f"SELECT {_COLUMNS}, {_BLOCKED} FROM contacts c WHERE {clause} ORDER BY c.id DESC"
    if conn.is_in_transaction():
        async for row in conn.cursor(sql, *args, prefetch=prefetch):
            yield _contact(row)
        return
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in conn.cursor(sql, *args, prefetch=prefetch):
            yield _contact(row)


async def count(conn: Conn, partner_id: int, flt: ContactFilter) -> int:
    clause, args = where(partner_id, flt)
    return await conn.fetchval(f"SELECT count(*) FROM contacts c WHERE {clause}", *args)


# Writing

async def count_new(conn: Conn, group_ids: Sequence[int], n: int = 1) -> None:
    """Add ``n`` new contacts to the member counts of ``group_ids`` (every INSERT into
    contacts calls this; updates and deletes are counted by triggers, see 0500)."""
    if group_ids and n:
        await conn.execute(
            "SELECT contact_groups_count(jsonb_object_agg(g::text, $2::bigint)) FROM unnest($1::bigint[]) g",
            list(dict.fromkeys(group_ids)), n)


async def _group_ids(conn: Conn, partner_id: int, wanted: Sequence[int]) -> list[int]:
    found = await groupmod.owned_ids(conn, partner_id, wanted)
    if len(found) != len(set(wanted)) or not found:
        raise Invalid(N_("Choose at least one group."), field="groups")
    return found


async def create(conn: asyncpg.Connection, partner_id: int, data: ContactInput, *,
                 user_id: int | None, blocked: Sequence[str] = ()) -> Contact:
    """A new contact; Conflict on ``phone`` when the partner has one with this number."""
    async with conn.transaction():
        group_ids = await _group_ids(conn, partner_id, data.group_ids)
        try:
            async with conn.transaction():
                row = await conn.fetchrow(
                    f"""INSERT INTO contacts AS c (partner_id, phone, group_ids, first_name, last_name,
                            birth_date, gender, comments, fields, created_by)
                        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}""",
                    partner_id, data.phone, group_ids, data.first_name, data.last_name,
                    data.birth_date, data.gender, data.comments, dict(data.fields), user_id)
        except asyncpg.UniqueViolationError:
            raise Conflict(N_("A contact with this phone number exists."), field="phone") from None
        await count_new(conn, group_ids)
        stop = await groupmod.stop_list_group(conn, partner_id)
        senders = list(blocked)
        if stop.id in group_ids:
            senders.append(stoplist.ALL)
        if senders:
            await stoplist.block(conn, partner_id, [data.phone], senders, user_id=user_id)
    return await get(conn, partner_id, row["id"])


async def update(conn: asyncpg.Connection, partner_id: int, contact_id: int, data: ContactInput, *,
                 user_id: int | None, blocked: Sequence[str] | None = None) -> Contact:
    """Change every field of a contact; ``blocked`` (when given) becomes its blocked sender IDs."""
    async with conn.transaction():
        before = await get(conn, partner_id, contact_id)
        group_ids = await _group_ids(conn, partner_id, data.group_ids)
        try:
            async with conn.transaction():
                await conn.execute(
                    """UPDATE contacts SET phone = $3, group_ids = $4, first_name = $5, last_name = $6,
                           birth_date = $7, gender = $8, comments = $9, fields = $10, updated_by = $11,
                           updated_at = now()
                       WHERE partner_id = $1 AND id = $2""",
                    partner_id, contact_id, data.phone, group_ids, data.first_name, data.last_name,
                    data.birth_date, data.gender, data.comments, dict(data.fields), user_id)
        except asyncpg.UniqueViolationError:
            raise Conflict(N_("A contact with this phone number exists."), field="phone") from None
        stop = await groupmod.stop_list_group(conn, partner_id)
        if blocked is not None:
            wanted = set(blocked)
            if stop.id in group_ids:
                wanted.add(stoplist.ALL)
            current = set(await stoplist.senders_of(conn, partner_id, data.phone))
            if current - wanted:
                await stoplist.unblock(conn, partner_id, [data.phone], sorted(current - wanted))
            if wanted - current:
                await stoplist.block(conn, partner_id, [data.phone], sorted(wanted - current),
                                     user_id=user_id)
        elif stop.id in group_ids and stop.id not in before.group_ids:
            await stoplist.block(conn, partner_id, [data.phone], [stoplist.ALL], user_id=user_id)
    return await get(conn, partner_id, contact_id)


def _ids(ids: Sequence[int]) -> list[int]:
    return [i for i in dict.fromkeys(ids) if valid_id(i)][:BULK_MAX]


async def delete(conn: Conn, partner_id: int, ids: Sequence[int]) -> int:
    result = await conn.execute(
        "DELETE FROM contacts WHERE partner_id = $1 AND id = ANY($2::bigint[])", partner_id, _ids(ids))
    return int(result.split()[-1])


async def add_to_group(conn: asyncpg.Connection, partner_id: int, ids: Sequence[int],
                       group_id: int, *, user_id: int | None) -> int:
    """Add contacts to a group (the Stop List blocks all their sender IDs). Returns how many joined."""
    async with conn.transaction():
        group = await groupmod.get(conn, partner_id, group_id)
        rows = await conn.fetch(
            """UPDATE contacts SET group_ids = group_ids || $3::bigint, updated_by = $4, updated_at = now()
               WHERE partner_id = $1 AND id = ANY($2::bigint[]) AND NOT group_ids @> ARRAY[$3::bigint]
               RETURNING phone""", partner_id, _ids(ids), group.id, user_id)
        if group.is_stop_list and rows:
            await stoplist.block(conn, partner_id, [r["phone"] for r in rows], [stoplist.ALL],
                                 user_id=user_id)
    return len(rows)


async def remove_from_group(conn: asyncpg.Connection, partner_id: int, ids: Sequence[int],
                            group_id: int, *, user_id: int | None) -> int:
    """Take contacts out of a group, those in another group too only (a contact keeps one)."""
    async with conn.transaction():
        group = await groupmod.get(conn, partner_id, group_id)
        rows = await conn.fetch(
            """UPDATE contacts SET group_ids = array_remove(group_ids, $3::bigint), updated_by = $4,
                                   updated_at = now()
               WHERE partner_id = $1 AND id = ANY($2::bigint[]) AND group_ids @> ARRAY[$3::bigint]
                 AND cardinality(group_ids) > 1
               RETURNING phone""", partner_id, _ids(ids), group.id, user_id)
        if group.is_stop_list and rows:
            await stoplist.unblock(conn, partner_id, [r["phone"] for r in rows], [stoplist.ALL])
    return len(rows)


async def move_to_group(conn: asyncpg.Connection, partner_id: int, ids: Sequence[int],
                        group_id: int, *, user_id: int | None) -> int:
    """Make a group the only group of contacts (see the package doc for the Stop List)."""
    async with conn.transaction():
        group = await groupmod.get(conn, partner_id, group_id)
        stop = group if group.is_stop_list else await groupmod.stop_list_group(conn, partner_id)
        rows = await conn.fetch(
            """WITH old AS (SELECT id, group_ids FROM contacts
                            WHERE partner_id = $1 AND id = ANY($2::bigint[]) FOR UPDATE)
               UPDATE contacts c SET group_ids = ARRAY[$3::bigint], updated_by = $4, updated_at = now()
               FROM old WHERE c.id = old.id
               RETURNING c.phone, old.group_ids @> ARRAY[$5::bigint] AS was_stopped""",
            partner_id, _ids(ids), group.id, user_id, stop.id)
        if group.is_stop_list:
            if rows:
                await stoplist.block(conn, partner_id, [r["phone"] for r in rows], [stoplist.ALL],
                                     user_id=user_id)
        else:
            left = [r["phone"] for r in rows if r["was_stopped"]]
            if left:
                await stoplist.unblock(conn, partner_id, left, [stoplist.ALL])
    return len(rows)


async def move_to_stop_list(conn: asyncpg.Connection, partner_id: int, ids: Sequence[int],
                            senders: Sequence[str], *, user_id: int | None) -> int:
    """Block sender IDs (``'*'``: all) for contacts, adding to the blocks they have."""
    senders = stoplist.clean_senders(senders)
    if not senders:
        raise Invalid(N_("Choose at least one sender ID, or All sender IDs."), field="senders")
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT phone FROM contacts WHERE partner_id = $1 AND id = ANY($2::bigint[])",
            partner_id, _ids(ids))
        if rows:
            await stoplist.block(conn, partner_id, [r["phone"] for r in rows], senders,
                                 user_id=user_id)
    return len(rows)


async def phones_of(conn: Conn, partner_id: int, ids: Sequence[int]) -> list[str]:
    rows = await conn.fetch(
        "SELECT phone FROM contacts WHERE partner_id = $1 AND id = ANY($2::bigint[]) ORDER BY phone",
        partner_id, _ids(ids))
    return [r["phone"] for r in rows]


async def move_by_reply(conn: asyncpg.Connection, partner_id: int, phone: str, group_id: int,
                        *, create_missing: bool) -> None:
    """A reply template's group action: the contact with ``phone`` moves to ``group_id``.

    A number that is no contact yet becomes one in that group when
    ``create_missing`` (a subscribe); a group that went missing is ignored.
    """
    try:
        group = await groupmod.get(conn, partner_id, group_id)
    except NotFound:
        return
    existing = await conn.fetchval(
        "SELECT id FROM contacts WHERE partner_id = $1 AND phone = $2", partner_id, phone)
    if existing is not None:
        await move_to_group(conn, partner_id, [existing], group.id, user_id=None)
    elif create_missing:
        made = await conn.execute(
            """INSERT INTO contacts (partner_id, phone, group_ids) VALUES ($1, $2, ARRAY[$3::bigint])
               ON CONFLICT (partner_id, phone) DO NOTHING""", partner_id, phone, group.id)
        if made == "INSERT 0 1":
            await count_new(conn, [group.id])
        if group.is_stop_list:
            await stoplist.block(conn, partner_id, [phone], [stoplist.ALL], user_id=None)
