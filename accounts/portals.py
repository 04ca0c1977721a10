"""White-label portals: created by the system owner or a reseller, found by host name."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from accounts.tenancy import Conn, Scope
from config.errors import Conflict, Forbidden, Invalid, NotFound

LANGUAGES = ("en", "es", "ru", "tr")
# RFC 1123 host names: labels of letters, digits and hyphens, not starting or ending with one.
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True, slots=True)
class Portal:
    id: int
    owner_partner_id: int | None
    name: str
    host: str
    is_default: bool
    logo_url: str
    primary_color: str
    support_email: str
    terms_text: str
    privacy_text: str
    allow_signup: bool
    require_2fa: bool
    languages: tuple[str, ...]
    default_language: str
    created_at: datetime


_COLUMNS = ", ".join(f"t.{f.name}" for f in fields(Portal))


def _portal(row: asyncpg.Record) -> Portal:
    values = dict(row)
    values["languages"] = tuple(values["languages"])
    return Portal(**values)


def normalise_host(host: str) -> str:
    """Lower-case host name without port or trailing dot; Invalid when it is not a host name."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8080
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    if host.startswith("[") or (host.replace(".", "").isdigit()):
        return host  # literal addresses are allowed as-is (local setups)
    if not host or len(host) > 253 or not all(_LABEL.match(label) for label in host.split(".")):
        raise Invalid("not a valid host name", field="host")
    return host


_FOR_HOST = f"""
SELECT {_COLUMNS} FROM portals t
WHERE lower(t.host) = $1 OR t.is_default
ORDER BY t.is_default ASC LIMIT 1"""


async def portal_for_host(conn: Conn, host: str) -> Portal:
    """The portal serving ``host`` (port ignored), else the default portal."""
    try:
        key = normalise_host(host)
    except Invalid:
        key = ""
    row = await conn.fetchrow(_FOR_HOST, key)
    if row is None:
        raise NotFound("no portal serves this host and there is no default portal")
    return _portal(row)


@dataclass(frozen=True, slots=True)
class NewPortal:
    name: str
    host: str
    logo_url: str = ""
    primary_color: str = "#2563eb"
    support_email: str = ""
    terms_text: str = ""
    privacy_text: str = ""
    allow_signup: bool = False
    require_2fa: bool = False
    languages: tuple[str, ...] = LANGUAGES
    default_language: str = "en"


def _check(values: dict[str, Any]) -> dict[str, Any]:
    if "name" in values:
        values["name"] = values["name"].strip()
        if not values["name"]:
            raise Invalid("a portal needs a name", field="name")
    if "host" in values:
        values["host"] = normalise_host(values["host"])
    if "languages" in values:
        langs = tuple(dict.fromkeys(values["languages"]))
        if not langs or any(lang not in LANGUAGES for lang in langs):
            raise Invalid(f"languages must be among {', '.join(LANGUAGES)}", field="languages")
        values["languages"] = list(langs)
    if "default_language" in values and "languages" in values:
        if values["default_language"] not in values["languages"]:
            raise Invalid("the default language must be one of the portal's languages",
                          field="default_language")
    return values


_INSERT = f"""
INSERT INTO portals AS t (owner_partner_id, name, host, logo_url, primary_color, support_email,
    terms_text, privacy_text, allow_signup, require_2fa, languages, default_language)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
RETURNING {_COLUMNS}"""


async def create_portal(conn: asyncpg.Connection, scope: Scope, new: NewPortal) -> Portal:
    """A portal owned by the acting partner (system owner or reseller)."""
    if scope.kind == "client":
        raise Forbidden("only the system owner and resellers create portals")
    v = _check({f.name: getattr(new, f.name) for f in fields(NewPortal)})
    try:
        async with conn.transaction():  # a savepoint: a Conflict leaves the caller's transaction usable
            row = await conn.fetchrow(
                _INSERT, scope.partner_id, v["name"], v["host"], v["logo_url"], v["primary_color"],
                v["support_email"], v["terms_text"], v["privacy_text"], v["allow_signup"],
                v["require_2fa"], v["languages"], v["default_language"],
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("another portal already uses this host name", field="host") from exc
    return _portal(row)


_VISIBLE_PORTAL = """EXISTS (SELECT 1 FROM partners p WHERE p.id = t.owner_partner_id AND $1 = ANY(p.path))"""


async def get_portal(conn: Conn, scope: Scope, portal_id: int) -> Portal:
    """A portal owned by the scope or a partner below it."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM portals t WHERE t.id = $2 AND {_VISIBLE_PORTAL}",
        scope.partner_id, portal_id,
    )
    if row is None:
        raise NotFound("no such portal")
    return _portal(row)


async def list_portals(conn: Conn, scope: Scope) -> list[Portal]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM portals t WHERE {_VISIBLE_PORTAL} ORDER BY t.id", scope.partner_id
    )
    return [_portal(r) for r in rows]


_EDITABLE = {f.name for f in fields(NewPortal)}


async def update_portal(conn: asyncpg.Connection, scope: Scope, portal_id: int, **changes: Any) -> Portal:
    """Change a portal the scope owns (or a partner below it owns)."""
    unknown = set(changes) - _EDITABLE
    if unknown:
        raise Invalid(f"cannot change {', '.join(sorted(unknown))}")
    current = await get_portal(conn, scope, portal_id)
    if "default_language" in changes and "languages" not in changes:
        changes["languages"] = current.languages
    v = _check(dict(changes))
    if not v:
        return current
    names = sorted(v)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"UPDATE portals t SET {sets} WHERE t.id = $1 RETURNING {_COLUMNS}",
                portal_id, *[v[n] for n in names],
            )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("another portal already uses this host name", field="host") from exc
    return _portal(row)
