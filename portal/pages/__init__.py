"""The portal's pages, one module per area, each with its own route table."""

from portal import admin
from portal.pages import access, account, api_connections, frame, senders

ROUTE_TABLES = (access.routes, frame.routes, account.routes, api_connections.routes, senders.routes,
                *admin.ROUTE_TABLES)
