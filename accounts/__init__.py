"""Who is who: the partner tree, portals, users, sender IDs and tenancy scopes.

Every function an admin or portal screen calls takes a :class:`accounts.tenancy.Scope`
(the acting partner) right after the connection; objects outside the scope's
subtree are :class:`config.errors.NotFound`. Money lives in :mod:`billing`.
"""
