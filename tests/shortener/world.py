"""Two end users on the default portal and the short domains they may use.

    owner ── client "Alpha" (alpha@short.test) ── may use go.herald.test (granted to the user)
          └─ client "Beta"  (beta@short.test)  ── may use lnk.herald.test (granted to the partner)
    off.herald.test: switched off, granted to every user of the default portal
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from accounts import partners, users
from accounts.partners import NewPartner
from accounts.tenancy import Scope, owner_scope
from shortener import domains

PASSWORD = "correct-horse-battery"
ALPHA_EMAIL = "alpha@short.test"
BETA_EMAIL = "beta@short.test"


@dataclass
class World:
    owner: Scope
    portal_id: int
    alpha: int  # partner ids
    beta: int
    alpha_user: int
    beta_user: int
    go: domains.ShortDomain
    lnk: domains.ShortDomain
    off: domains.ShortDomain


async def build(conn: asyncpg.Connection) -> World:
    owner = await owner_scope(conn)
    portal_id = await conn.fetchval("SELECT id FROM portals WHERE is_default")
    alpha = await partners.create_partner(conn, owner, owner.partner_id, NewPartner("client", "Alpha"))
    beta = await partners.create_partner(conn, owner, owner.partner_id, NewPartner("client", "Beta"))
    alpha_user = await users.create_user(conn, owner, alpha.id, users.NewUser(ALPHA_EMAIL, PASSWORD))
    beta_user = await users.create_user(conn, owner, beta.id, users.NewUser(BETA_EMAIL, PASSWORD))
    go = await domains.create_domain(conn, owner, "GO.herald.test")
    lnk = await domains.create_domain(conn, owner, "lnk.herald.test")
    off = await domains.create_domain(conn, owner, "off.herald.test", enabled=False)
    await domains.add_grant(conn, owner, go.id, "user", alpha_user.id)
    await domains.add_grant(conn, owner, lnk.id, "partner", beta.id)
    await domains.add_grant(conn, owner, off.id, "portal", portal_id)
    return World(owner, portal_id, alpha.id, beta.id, alpha_user.id, beta_user.id, go, lnk, off)
