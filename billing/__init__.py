"""Money: the reference book, vendors, rates, plans, packs, pricing, charging, the ledger.

Pure logic (pricing, rate tables, prefix lookup, CSV checks) is in plain
functions; SQL sits in one module per aggregate. Screens pass an
:class:`accounts.tenancy.Scope` (the acting partner) right after the connection;
objects outside the scope's subtree are :class:`config.errors.NotFound`.
"""
