"""Groups of contacts (guide §6.2): the partner's own, nested or not, and the system "Stop List".

A contact is in at least one group (``contacts.group_ids``, a CHECK). A group's
name is unique per partner whatever its case. Nesting (``parent_id``) never
makes a cycle. The system group of each partner is made with the partner
(trigger, 0500) and can be neither renamed, nested nor deleted.

Deleting groups deletes the contacts that are in no other group (a contact
cannot be left without one) and takes the groups off the others. A group that
a reply template moves contacts into cannot be deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from config.errors import Conflict, Forbidden, Invalid, NotFound
from contacts.text import N_

Conn = asyncpg.Connection | asyncpg.Pool
NAME_MAX = 100
DESCRIPTION_MAX = 1000
MAX_ID = 2**63 - 1
STOP_LIST = "stop_list"


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    partner_id: int
    parent_id: int | None
    kind: str
    name: str
    description: str
    member_count: int
    created_at: datetime
    updated_at: datetime
    name_key: str  # contact_fold(name): the page order

    @property
    def is_stop_list(self) -> bool:
        return self.kind == STOP_LIST

    @property
    def sort_key(self) -> tuple[str, int]:
        return (self.name_key, self.id)


_COLUMNS = ("id, partner_id, parent_id, kind, name, description, member_count, created_at, updated_at, "
            "contact_fold(name) AS name_key")


def _group(row: asyncpg.Record) -> Group:
    return Group(**dict(row))


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


async def get(conn: Conn, partner_id: int, group_id: int) -> Group:
    if not valid_id(group_id):
        raise NotFound("no such group")
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM contact_groups WHERE partner_id = $1 AND id = $2",
        partner_id, group_id)
    if row is None:
        raise NotFound("no such group")
    return _group(row)


async def all_groups(conn: Conn, partner_id: int) -> list[Group]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM contact_groups WHERE partner_id = $1
            ORDER BY kind = 'stop_list' DESC, contact_fold(name), id""", partner_id)
    return [_group(r) for r in rows]


async def stop_list_group(conn: Conn, partner_id: int) -> Group:
    """The partner's system group (made again if it went missing)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM contact_groups WHERE partner_id = $1 AND kind = 'stop_list'",
        partner_id)
    if row is None:
        await conn.execute(
            """INSERT INTO contact_groups (partner_id, kind, name) VALUES ($1, 'stop_list', 'Stop List')
               ON CONFLICT DO NOTHING""", partner_id)
        return await stop_list_group(conn, partner_id)
    return _group(row)


async def owned_ids(conn: Conn, partner_id: int, group_ids: Sequence[int]) -> list[int]:
    """Those of ``group_ids`` that are groups of the partner, in the order given."""
    wanted = [g for g in dict.fromkeys(group_ids) if valid_id(g)]
    if not wanted:
        return []
    rows = await conn.fetch(
        "SELECT id FROM contact_groups WHERE partner_id = $1 AND id = ANY($2::bigint[])",
        partner_id, wanted)
    found = {r["id"] for r in rows}
    return [g for g in wanted if g in found]


_PAGE_AFTER = f"""
SELECT {_COLUMNS} FROM contact_groups
WHERE partner_id = $1 AND ($2 = '' OR contact_fold(name) LIKE '%' || contact_fold($2) || '%' ESCAPE '\\')
  AND ($3::text IS NULL OR (contact_fold(name), id) > ($3, $4::bigint))
  AND ($6::bigint IS NULL OR parent_id = $6)
ORDER BY contact_fold(name), id LIMIT $5"""

_PAGE_BEFORE = f"""
SELECT {_COLUMNS} FROM contact_groups
WHERE partner_id = $1 AND ($2 = '' OR contact_fold(name) LIKE '%' || contact_fold($2) || '%' ESCAPE '\\')
  AND (contact_fold(name), id) < ($3, $4::bigint)
  AND ($6::bigint IS NULL OR parent_id = $6)
ORDER BY contact_fold(name) DESC, id DESC LIMIT $5"""


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def position(cursor: tuple | None) -> tuple[str, int] | None:
    """A groups page position from a decoded cursor; None when it is not one."""
    if (cursor is not None and len(cursor) == 2 and isinstance(cursor[0], str)
            and valid_id(cursor[1])):
        return cursor[0], cursor[1]
    return None


async def list_page(conn: Conn, partner_id: int, *, search: str = "", parent_id: int | None = None,
                    after: tuple | None = None, before: tuple | None = None,
                    limit: int = 25) -> list[Group]:
    """Groups by name (any case), after or before a (lower name, id) position."""
    search = _like(search.lower())
    if parent_id is not None and not valid_id(parent_id):
        return []
    back = position(before)
    if back is not None and position(after) is None:
        rows = await conn.fetch(_PAGE_BEFORE, partner_id, search, back[0], back[1], limit, parent_id)
        return [_group(r) for r in reversed(rows)]
    at = position(after)
    rows = await conn.fetch(_PAGE_AFTER, partner_id, search, at[0] if at else None,
                            at[1] if at else 0, limit, parent_id)
    return [_group(r) for r in rows]


def _check(name: str, description: str) -> tuple[str, str]:
    name = " ".join(name.split())
    if not name:
        raise Invalid(N_("This field is required."), field="name")
    if len(name) > NAME_MAX:
        raise Invalid(N_("Use at most 100 characters."), field="name")
    if "\x00" in name or "\x00" in description:
        raise Invalid(N_("This text holds characters that cannot be stored."), field="name")
    description = description.strip()
    if len(description) > DESCRIPTION_MAX:
        raise Invalid(N_("Use at most 1000 characters."), field="description")
    return name, description


async def create(conn: asyncpg.Connection, partner_id: int, *, name: str, description: str = "",
                 parent_id: int | None = None, user_id: int | None = None) -> Group:
    name, description = _check(name, description)
    if parent_id is not None:
        parent = await get(conn, partner_id, parent_id)
        if parent.is_stop_list:
            raise Invalid(N_("Groups cannot be put in the Stop List."), field="parent_id")
    try:
        async with conn.transaction():  # a savepoint when the caller has a transaction open
            row = await conn.fetchrow(
                f"""INSERT INTO contact_groups (partner_id, name, description, parent_id, created_by)
                    VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
                partner_id, name, description, parent_id, user_id)
    except asyncpg.UniqueViolationError:
        raise Conflict(N_("A group with this name exists."), field="name") from None
    return _group(row)


async def update(conn: asyncpg.Connection, partner_id: int, group_id: int, *, name: str,
                 description: str) -> Group:
    group = await get(conn, partner_id, group_id)
    if group.is_stop_list:
        raise Forbidden(N_("The Stop List is a system group: it cannot be changed."))
    name, description = _check(name, description)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""UPDATE contact_groups SET name = $3, description = $4, updated_at = now()
                    WHERE partner_id = $1 AND id = $2 RETURNING {_COLUMNS}""",
                partner_id, group_id, name, description)
    except asyncpg.UniqueViolationError:
        raise Conflict(N_("A group with this name exists."), field="name") from None
    return _group(row)


_ANCESTORS = """
WITH RECURSIVE up(id, parent_id) AS (
    SELECT id, parent_id FROM contact_groups WHERE partner_id = $1 AND id = $2
    UNION
    SELECT g.id, g.parent_id FROM contact_groups g JOIN up ON g.id = up.parent_id
)
SELECT id FROM up"""


async def nest(conn: asyncpg.Connection, partner_id: int, group_id: int,
               parent_id: int | None) -> Group:
    """Put a group inside another (``parent_id``), or back at the top (None)."""
    async with conn.transaction():
        # one nesting change at a time per partner: two crossing moves cannot make a cycle
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('contact_groups/' || $1::text, 0))",
                           str(partner_id))
        group = await get(conn, partner_id, group_id)
        if group.is_stop_list:
            raise Forbidden(N_("The Stop List is a system group: it cannot be changed."))
        if parent_id is not None:
            parent = await get(conn, partner_id, parent_id)
            if parent.is_stop_list:
                raise Invalid(N_("Groups cannot be put in the Stop List."), field="parent_id")
            chain = {r["id"] for r in await conn.fetch(_ANCESTORS, partner_id, parent_id)}
            if group_id in chain:
                raise Invalid(N_("A group cannot be put inside itself or one of its own groups."),
                              field="parent_id")
        row = await conn.fetchrow(
            f"""UPDATE contact_groups SET parent_id = $3, updated_at = now()
                WHERE partner_id = $1 AND id = $2 RETURNING {_COLUMNS}""",
            partner_id, group_id, parent_id)
    return _group(row)


async def reply_template_groups(conn: Conn, partner_id: int, group_ids: Sequence[int]) -> list[int]:
    """Those of ``group_ids`` that a reply template of the partner moves contacts into."""
    rows = await conn.fetch(
        """SELECT DISTINCT g FROM reply_templates r,
                  LATERAL (VALUES (r.subscribe_group_id), (r.unsubscribe_group_id)) v(g)
           WHERE r.partner_id = $1 AND g = ANY($2::bigint[])""",
        partner_id, list(group_ids))
    return [r["g"] for r in rows]


async def delete(conn: asyncpg.Connection, partner_id: int,
                 group_ids: Sequence[int]) -> tuple[int, int]:
    """Delete groups; contacts in no other group go with them. Returns (groups, contacts)."""
    async with conn.transaction():
        ids = await owned_ids(conn, partner_id, group_ids)
        if not ids:
            raise NotFound("no such group")
        rows = await conn.fetch(
            "SELECT id, kind FROM contact_groups WHERE partner_id = $1 AND id = ANY($2::bigint[]) FOR UPDATE",
            partner_id, ids)
        if any(r["kind"] == STOP_LIST for r in rows):
            raise Forbidden(N_("The Stop List is a system group: it cannot be deleted."))
        if await reply_template_groups(conn, partner_id, ids):
            raise Conflict(N_("A reply template moves contacts into this group: change the template first."))
        gone = await conn.execute(
            """DELETE FROM contacts WHERE partner_id = $1 AND group_ids && $2::bigint[]
                                      AND group_ids <@ $2::bigint[]""",
            partner_id, ids)
        await conn.execute(
            """UPDATE contacts SET group_ids = ARRAY(SELECT g FROM unnest(group_ids) g
                                                     WHERE g <> ALL($2::bigint[])),
                                   updated_at = now()
               WHERE partner_id = $1 AND group_ids && $2::bigint[]""",
            partner_id, ids)
        deleted = await conn.execute(
            "DELETE FROM contact_groups WHERE partner_id = $1 AND id = ANY($2::bigint[])",
            partner_id, ids)
    return int(deleted.split()[-1]), int(gone.split()[-1])


async def contacts_only_in(conn: Conn, partner_id: int, group_ids: Sequence[int]) -> int:
    """How many contacts deleting ``group_ids`` would delete (shown before confirming)."""
    return await conn.fetchval(
        """SELECT count(*) FROM contacts WHERE partner_id = $1 AND group_ids && $2::bigint[]
                                         AND group_ids <@ $2::bigint[]""",
        partner_id, list(group_ids))
