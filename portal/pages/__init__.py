"""The portal's pages, one module per area, each with its own route table."""

from portal import admin
from portal.pages import (
    access,
    account,
    api_connections,
    contacts,
    frame,
    groups,
    imports,
    senders,
    shortener,
    stoplist,
)

ROUTE_TABLES = (access.routes, frame.routes, account.routes, api_connections.routes, senders.routes,
                contacts.routes, groups.routes, stoplist.routes, imports.routes, shortener.routes,
                *admin.ROUTE_TABLES)
