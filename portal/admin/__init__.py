"""The Admin Panel: the system owner's and resellers' screens, at /admin, with its own menu.

One module per screen, each with its route table; every handler is guarded
by :data:`portal.admin.common.admin_only` and acts through a billing
``Scope``, so a reseller sees and changes only its own subtree.
"""

from portal.admin import (
    packs,
    partners,
    plans,
    portals,
    refbook,
    senders,
    short_domains,
    smpp,
    users,
    vendors,
)
from portal.admin import routes as message_routes
from portal.admin.common import ADMIN_MENU

ROUTE_TABLES = (
    partners.routes, users.routes, senders.routes, portals.routes, vendors.routes, refbook.routes,
    plans.routes, packs.routes, smpp.routes, message_routes.routes, short_domains.routes,
)

__all__ = ["ADMIN_MENU", "ROUTE_TABLES"]
