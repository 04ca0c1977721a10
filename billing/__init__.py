"""Billing: partners, portals, users, sender IDs, the reference book, vendors, plans, packs, the ledger.

Pure logic (pricing, rate tables, prefix lookup, CSV checks) is in plain
functions; SQL sits in one module per aggregate. Every function an admin
or portal screen calls takes a :class:`billing.tenancy.Scope` (the acting
partner) right after the connection; objects outside the scope's subtree
are :class:`config.errors.NotFound`.

Map
---
tenancy   Scope, load_scope, owner_scope, VISIBLE/MANAGED SQL fragments, fetch_scoped
partners  create_partner, get_partner, list_partners, update_partner, set_status, set_credit_limit
portals   portal_for_host, create_portal, get_portal, list_portals, update_portal
users     create_user, get_user, list_users, authenticate, find_by_email, set_password, hash/verify_password
senders   request_sender_id, approve, decline, cancel, unsubscribe, change_period, expire_due,
          is_usable / usable (pipeline) / usable_senders, list_sender_ids, events, documents
refbook   PrefixTable.lookup (in memory), load_prefix_table, revision, import_csv, export_csv,
          seed_default, default_entries
vendors   create_vendor, update_vendor, enabled_vendors, create_product, set_product_rates,
          import_product_rates_csv, offers_for (routing)
plans     create_plan, set_rates, import_rates_csv, export_rates_csv, offer_plan, available_plans,
          subscribe, unsubscribe, active_plans, below_cost
packs     create_pack, offer_pack, available_packs, purchase_pack, subscriptions, cancel_subscription
pricing   ChargeRequest, price_batch (pure), traffic_of, reason codes
charging  Charger.charge / charge_messages, refund, settle_delivered (pipeline)
ledger    adjust_balance (top-ups, payments), balance_of, list_transactions, transaction_details,
          margin_report
"""
