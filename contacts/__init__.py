"""Contacts: a partner's audience, its groups and custom fields, the stop list screens, imports.

Contacts belong to a partner (every user of that partner shares them). Pure
logic (phone numbers, field values, file rows, export cells) is in plain
functions; SQL sits in one module per aggregate. Every function takes the
acting ``partner_id`` and treats an object of another partner as
:class:`config.errors.NotFound`.

Schema (migration ``gateway/migrations/0500_contacts.sql``)
-----------------------------------------------------------
``contacts``
    ``id``, ``partner_id``; ``phone``: E.164 digits without ``+`` (as
    ``stop_list.msisdn`` and ``messages.destination``), unique per partner,
    collated "C" so a prefix filter is a range of the unique index;
    ``group_ids bigint[]``: the groups it is in (at least one, a CHECK);
    built-in optional fields ``first_name``, ``last_name``, ``birth_date``,
    ``gender`` ('female' | 'male' | 'other' | NULL), ``comments``;
    ``fields jsonb``: custom values keyed by the field's ``variable``
    (text as JSON strings, numbers as numbers, dates as ``"YYYY-MM-DD"``,
    booleans as booleans); ``created_by`` / ``updated_by`` (users.id) and
    ``created_at`` / ``updated_at``.
    Indexes: primary key ``(partner_id, id)`` (newest-first pages),
    ``(partner_id, phone)`` unique, GIN on ``group_ids`` (``group_ids && ARRAY[...]`` = "in any of
    these groups"), GIN ``jsonb_path_ops`` on ``contact_fields_folded(fields)``
    (the values in lower case: ``contact_fields_folded(fields) @>
    '{"city": "paris"}'`` is a case-blind equality filter on any field).
``contact_groups``
    ``id``, ``partner_id``, ``name`` (unique per partner, any case),
    ``description``, ``parent_id`` (nesting, same partner), ``kind``
    ('user', or 'stop_list' for the system group every partner has),
    ``member_count`` (updates and deletes of ``contacts`` keep it by statement
    triggers; code that inserts contacts adds to it with
    :func:`contacts.contacts.count_new`).
``contact_fields``
    A partner's custom fields: ``name`` (label), ``variable`` (derived from
    the name, unique: the campaign placeholder ``{variable}``),
    ``data_type`` ('text' | 'number' | 'date' | 'boolean'), ``required``,
    ``position``; rows with ``builtin`` keep a partner's label and required
    flag for a built-in optional field (``variable`` = its key).
``stop_list`` (0304, the pipeline's)
    ``(partner_id, msisdn, sender)`` with ``sender = '*'`` for all sender
    IDs; this package adds ``created_by``. The one record of what is blocked:
    the Stop List screen and the contacts' "blocked sender IDs" read it, the
    pipeline checks it.
``contact_imports`` / ``contact_import_chunks`` / ``contact_import_rejects``
    An import job (the wizard's choices, status draft → queued → running →
    done | failed, progress, counts), its file in 1 MiB pieces, and every
    rejected row with its number and reason.

The Stop List system group
--------------------------
Blocks live in ``stop_list`` only. The group "Stop List" is where contacts
that must get nothing are kept: putting a contact in it (moving or adding it
there, or importing into it) also blocks all its sender IDs (``'*'``), and
moving it out of it to another group lifts that ``'*'`` block (blocks of single
sender IDs, such as opt-outs, stay). Campaigns leave the group out.

Modules
-------
phones    phone numbers: E.164 digits from what a user typed, with a default country
fields    system, built-in and custom fields, and what their values may be
groups    groups, nesting, the system group, deleting with the contacts left alone
contacts  contacts: checks of a form, pages, streamed reads, group moves, the stop list
stoplist  the stop list's screens: numbers with their blocked sender IDs
files     reading CSV, XLS and XLSX row by row, and refusing malformed files
imports   import drafts, the wizard's choices, the streamed COPY and the set-based merge
runner    the background service that takes queued imports (worker: one import's process)
export    streamed CSV and XLSX, formula injection neutralised
"""
