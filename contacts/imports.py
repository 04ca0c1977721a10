"""Importing contacts (guide §6.5): the wizard's draft, the background job, the merge.

The wizard makes a **draft** (``contact_imports`` row, status ``draft``) from
an uploaded file (kept in ``contact_import_chunks``), saves its mapping (each
file column: a field key or skipped), the mode (``add_update`` /
``add_only`` / ``update_only``), the stop list choice (``exclude`` the
numbers that have blocks / ``unblock`` the chosen sender IDs / ``block``
them) and the group, then **queues** it. A :class:`contacts.runner.ImportRunner`
takes it and runs :func:`run_import` in a worker process.

How an import runs, with memory bounded whatever the file's size:

1. The file is written from its chunks to a temporary file and read row by
   row (:mod:`contacts.files`). Each row is checked in Python (the phone
   normalised with the importing user's country, each value parsed for its
   field's type) and streamed by one binary ``COPY`` into a temporary staging
   table, rejected rows too, with their reason. Progress is written on a
   second connection, so the page sees it while the import's transaction is open.
2. One transaction merges, set-based: rejected rows are recorded; of the rows
   with the same number the last one counts (the others are rejected as
   repeated); the stop list choice is applied; existing contacts are updated
   (a cell left empty keeps the stored value, custom values are added to the
   others, the group is added to the contact's groups) and new ones inserted,
   as the mode allows; rows that the mode leaves out are counted as skipped.
3. The job's counts and status ``done`` are written in the same transaction:
   an import either happened whole or not at all. A file found malformed
   half-way (a ragged row, a broken XLSX) fails the job and changes nothing.
   A worker that dies leaves its lease to run out; the job is taken again
   (at most three times).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from config.errors import Invalid, NotFound
from contacts import contacts as contact_book
from contacts import fields as fieldmod
from contacts import files, phones, stoplist
from contacts import groups as groupmod
from contacts.fields import FieldDef
from contacts.text import N_

log = logging.getLogger("herald.contacts.import")

Conn = asyncpg.Connection | asyncpg.Pool
CHUNK = 1024 * 1024
MODES = ("add_update", "add_only", "update_only")
STOP_MODES = ("exclude", "unblock", "block")
MAX_ATTEMPTS = 3
LEASE_SECONDS = 60
# An import's COPY and merge statements may take minutes on a busy machine: far past the
# pool's command timeout, which is meant for the requests of the portal and the API.
STATEMENT_TIMEOUT = 3600.0
MAX_ID = 2**63 - 1

REASONS = {
    "bad_phone": N_("Not a valid phone number"),
    "no_phone": N_("No phone number"),
    "bad_date": N_("Not a date (use YYYY-MM-DD)"),
    "bad_number": N_("Not a number"),
    "bad_boolean": N_("Not yes or no"),
    "bad_gender": N_("Not a gender (female, male or other)"),
    "too_long": N_("Text too long"),
    "missing_required": N_("A required field is empty"),
    "duplicate": N_("The same number is on a later row"),
    "bad_text": N_("Text with characters that cannot be stored"),
}
STATUS_LABELS = {"draft": N_("Draft"), "queued": N_("Waiting"), "running": N_("Importing"),
                 "done": N_("Done"), "failed": N_("Failed")}
MODE_LABELS = {"add_update": N_("Add new and update existing"), "add_only": N_("Add new only"),
               "update_only": N_("Update existing only")}
STOP_LABELS = {"exclude": N_("Leave them out of the import"),
               "unblock": N_("Unblock the chosen sender IDs for them"),
               "block": N_("Block the chosen sender IDs for every number of the file")}


@dataclass(frozen=True, slots=True)
class Import:
    id: int
    partner_id: int
    user_id: int | None
    file_name: str
    file_kind: str
    file_size: int
    status: str
    header_row: bool
    mapping: list[str | None]
    mode: str
    stop_mode: str
    stop_senders: list[str]
    group_id: int | None
    country: str | None
    preview: list[list[str]]
    columns: int
    rows_total: int
    rows_done: int
    progress: int
    added: int
    updated: int
    skipped: int
    rejected: int
    error: str
    attempts: int
    created_at: datetime
    queued_at: datetime | None
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed")

    @property
    def header(self) -> list[str]:
        return self.preview[0] if self.header_row and self.preview else []

    @property
    def sample(self) -> list[list[str]]:
        return self.preview[1:] if self.header_row else self.preview


@dataclass(frozen=True, slots=True)
class Reject:
    row_number: int
    reason: str
    detail: str
    raw: list[str]


_COLUMNS = """id, partner_id, user_id, file_name, file_kind, file_size, status, header_row, mapping,
    mode, stop_mode, stop_senders, group_id, country, preview, columns, rows_total, rows_done,
    progress, added, updated, skipped, rejected, error, attempts, created_at, queued_at, finished_at"""


def _import(row: asyncpg.Record) -> Import:
    values = dict(row)
    for key in ("mapping", "preview"):
        if isinstance(values[key], str):
            values[key] = json.loads(values[key])
    values["country"] = values["country"].strip() if values["country"] else None
    return Import(**values)


def valid_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


# Mapping (pure)

_SYNONYMS = {
    "phone": {"phone", "phonenumber", "number", "mobile", "mobilephone", "msisdn", "cell", "tel",
              "telephone", "телефон", "номер", "мобильный", "teléfono", "telefono", "móvil", "movil",
              "telefon", "cep", "ceptelefonu"},
    "first_name": {"firstname", "name", "givenname", "имя", "nombre", "ad", "isim"},
    "last_name": {"lastname", "surname", "familyname", "фамилия", "apellido", "apellidos", "soyad",
                  "soyadı", "soyadi"},
    "birth_date": {"birthdate", "dateofbirth", "birthday", "dob", "датарождения", "fechadenacimiento",
                   "doğumtarihi", "dogumtarihi"},
    "gender": {"gender", "sex", "пол", "género", "genero", "sexo", "cinsiyet"},
    "comments": {"comments", "comment", "notes", "note", "комментарий", "комментарии", "comentarios",
                 "comentario", "yorum", "notlar"},
}


def _word(text: object) -> str:
    return "".join(ch for ch in str(text or "").lower() if ch.isalnum())


def guess_mapping(header: Sequence[object], all_fields: Sequence[FieldDef]) -> list[str | None]:
    """A first mapping of a file's columns from their header names (each field at most once)."""
    names: dict[str, str] = {}
    for spec in all_fields:
        if spec.kind == "system" and spec.key != "phone":
            continue
        for word in (_word(spec.label), spec.variable, _word(spec.key)):
            names.setdefault(word, spec.key)
        for word in _SYNONYMS.get(spec.key, ()):
            names.setdefault(word, spec.key)
    taken: set[str] = set()
    mapping: list[str | None] = []
    for title in header:
        key = names.get(_word(title))
        if key is None or key in taken:
            mapping.append(None)
        else:
            taken.add(key)
            mapping.append(key)
    return mapping


def importable(all_fields: Sequence[FieldDef]) -> list[FieldDef]:
    """The fields a column can be mapped to: phone, the built-in and the custom ones."""
    return [f for f in all_fields if f.key == "phone" or f.kind != "system"]


def check_mapping(mapping: Sequence[str | None], all_fields: Sequence[FieldDef], mode: str) -> None:
    """Invalid unless the phone is mapped once, no field twice, and every required field
    is mapped when contacts may be added."""
    known = {f.key: f for f in importable(all_fields)}
    seen: set[str] = set()
    for key in mapping:
        if key is None:
            continue
        if key not in known:
            raise Invalid(N_("Choose one of the options."), field="mapping")
        if key in seen:
            raise Invalid(N_("Each field can take one column only."), field="mapping")
        seen.add(key)
    if "phone" not in seen:
        raise Invalid(N_("Choose the column that holds the phone numbers."), field="mapping")
    if mode != "update_only":
        missing = [f for f in known.values() if f.required and f.key not in seen]
        if missing:
            raise Invalid(N_("Every required field needs a column when contacts may be added."),
                          field="mapping")


# Drafts and the wizard's steps

async def _store_file(conn: asyncpg.Connection, import_id: int, content: bytes) -> None:
    await conn.execute("DELETE FROM contact_import_chunks WHERE import_id = $1", import_id)
    await conn.executemany(
        "INSERT INTO contact_import_chunks (import_id, seq, data) VALUES ($1, $2, $3)",
        [(import_id, seq, content[at : at + CHUNK]) for seq, at in enumerate(range(0, len(content), CHUNK))])


async def create_draft(conn: asyncpg.Connection, partner_id: int, user_id: int | None, *,
                       file_name: str, kind: str, content: bytes, preview: list[list[str]],
                       all_fields: Sequence[FieldDef], country: str | None) -> Import:
    """A draft import of a checked file (see :mod:`contacts.files`)."""
    columns = max((len(r) for r in preview), default=0)
    mapping = guess_mapping(preview[0] if preview else [], all_fields)
    header_row = any(mapping)
    if not header_row:
        mapping = [None] * columns
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO contact_imports (partner_id, user_id, file_name, file_kind, file_size,
                    preview, columns, mapping, header_row, country)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_COLUMNS}""",
            partner_id, user_id, _safe_name(file_name), kind, len(content), preview, columns,
            mapping, header_row, country)
        await _store_file(conn, row["id"], content)
    return _import(row)


def _safe_name(name: str) -> str:
    name = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return name.replace("/", "_").replace("\\", "_")[-200:] or "contacts"


async def replace_file(conn: asyncpg.Connection, partner_id: int, import_id: int, *,
                       file_name: str, kind: str, content: bytes, preview: list[list[str]],
                       all_fields: Sequence[FieldDef]) -> Import:
    """A new file for a draft: its mapping starts again."""
    draft = await get(conn, partner_id, import_id)
    _must_be_draft(draft)
    columns = max((len(r) for r in preview), default=0)
    mapping = guess_mapping(preview[0] if preview else [], all_fields)
    header_row = any(mapping)
    if not header_row:
        mapping = [None] * columns
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""UPDATE contact_imports SET file_name = $3, file_kind = $4, file_size = $5, preview = $6,
                    columns = $7, mapping = $8, header_row = $9
                WHERE partner_id = $1 AND id = $2 AND status = 'draft' RETURNING {_COLUMNS}""",
            partner_id, import_id, _safe_name(file_name), kind, len(content), preview, columns,
            mapping, header_row)
        if row is None:
            raise NotFound("no such import")
        await _store_file(conn, import_id, content)
    return _import(row)


def _must_be_draft(job: Import) -> None:
    if job.status != "draft":
        raise Invalid(N_("This import has started already; start a new one to change it."))


async def get(conn: Conn, partner_id: int, import_id: int) -> Import:
    if not valid_id(import_id):
        raise NotFound("no such import")
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM contact_imports WHERE partner_id = $1 AND id = $2",
        partner_id, import_id)
    if row is None:
        raise NotFound("no such import")
    return _import(row)


async def save_mapping(conn: asyncpg.Connection, partner_id: int, import_id: int, *,
                       header_row: bool, mapping: Sequence[str | None], mode: str, stop_mode: str,
                       stop_senders: Sequence[str], country: str | None = None) -> Import:
    job = await get(conn, partner_id, import_id)
    _must_be_draft(job)
    all_fields = await fieldmod.list_fields(conn, partner_id)
    if mode not in MODES:
        raise Invalid(N_("Choose one of the options."), field="mode")
    if stop_mode not in STOP_MODES:
        raise Invalid(N_("Choose one of the options."), field="stop_mode")
    mapping = list(mapping)[: job.columns] + [None] * max(0, job.columns - len(mapping))
    check_mapping(mapping, all_fields, mode)
    senders = stoplist.clean_senders(stop_senders) if stop_mode != "exclude" else []
    if stop_mode != "exclude" and not senders:
        raise Invalid(N_("Choose at least one sender ID, or All sender IDs."), field="stop_senders")
    row = await conn.fetchrow(
        f"""UPDATE contact_imports SET header_row = $3, mapping = $4, mode = $5, stop_mode = $6,
                stop_senders = $7, country = $8
            WHERE partner_id = $1 AND id = $2 AND status = 'draft' RETURNING {_COLUMNS}""",
        partner_id, import_id, header_row, mapping, mode, stop_mode, senders, country)
    if row is None:
        raise NotFound("no such import")
    return _import(row)


async def preset(conn: asyncpg.Connection, partner_id: int, import_id: int, *, stop_mode: str,
                 stop_senders: Sequence[str], group_id: int | None) -> None:
    """Choices a draft starts with (an import to the Stop List blocks every sender ID)."""
    await conn.execute(
        """UPDATE contact_imports SET stop_mode = $3, stop_senders = $4, group_id = $5
           WHERE partner_id = $1 AND id = $2 AND status = 'draft'""",
        partner_id, import_id, stop_mode, list(stop_senders), group_id)


async def queue(conn: asyncpg.Connection, partner_id: int, import_id: int, group_id: int) -> Import:
    """Start the import into ``group_id``: a runner takes it within a second or two."""
    job = await get(conn, partner_id, import_id)
    _must_be_draft(job)
    all_fields = await fieldmod.list_fields(conn, partner_id)
    check_mapping(job.mapping, all_fields, job.mode)
    group = await groupmod.get(conn, partner_id, group_id)
    row = await conn.fetchrow(
        f"""UPDATE contact_imports SET group_id = $3, status = 'queued', queued_at = now()
            WHERE partner_id = $1 AND id = $2 AND status = 'draft' RETURNING {_COLUMNS}""",
        partner_id, import_id, group.id)
    if row is None:
        raise NotFound("no such import")
    return _import(row)


_HISTORY_AFTER = f"""
SELECT {_COLUMNS} FROM contact_imports
WHERE partner_id = $1 AND status <> 'draft' AND ($2 = '' OR status = $2)
  AND ($3 = '' OR contact_fold(file_name) LIKE '%' || contact_fold($3) || '%' ESCAPE '\\')
  AND id < $4
ORDER BY id DESC LIMIT $5"""
_HISTORY_BEFORE = f"""
SELECT {_COLUMNS} FROM contact_imports
WHERE partner_id = $1 AND status <> 'draft' AND ($2 = '' OR status = $2)
  AND ($3 = '' OR contact_fold(file_name) LIKE '%' || contact_fold($3) || '%' ESCAPE '\\')
  AND id > $4
ORDER BY id LIMIT $5"""


async def list_page(conn: Conn, partner_id: int, *, status: str = "", search: str = "",
                    after: tuple | None = None, before: tuple | None = None,
                    limit: int = 25) -> list[Import]:
    """Imports that were started, newest first."""
    status = status if status in STATUS_LABELS else ""
    search = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    at_after = after[0] if after and len(after) == 1 and valid_id(after[0]) else None
    at_before = before[0] if before and len(before) == 1 and valid_id(before[0]) else None
    if at_after is None and at_before is not None:
        rows = await conn.fetch(_HISTORY_BEFORE, partner_id, status, search, at_before, limit)
        return [_import(r) for r in reversed(rows)]
    rows = await conn.fetch(_HISTORY_AFTER, partner_id, status, search,
                            at_after if at_after is not None else MAX_ID, limit)
    return [_import(r) for r in rows]


async def file_chunks(conn: Conn, partner_id: int, import_id: int) -> AsyncIterator[bytes]:
    """The uploaded file, piece by piece (one query per piece)."""
    await get(conn, partner_id, import_id)
    seq = 0
    while True:
        data = await conn.fetchval(
            "SELECT data FROM contact_import_chunks WHERE import_id = $1 AND seq = $2", import_id, seq)
        if data is None:
            return
        yield bytes(data)
        seq += 1


async def rejects(conn: Conn, partner_id: int, import_id: int, *,
                  batch: int = 5000) -> AsyncIterator[Reject]:
    """Every rejected row of an import, in file order."""
    await get(conn, partner_id, import_id)
    last = 0
    while True:
        rows = await conn.fetch(
            """SELECT row_number, reason, detail, raw FROM contact_import_rejects
               WHERE import_id = $1 AND row_number > $2 ORDER BY row_number LIMIT $3""",
            import_id, last, batch)
        for row in rows:
            yield Reject(**dict(row))
        if len(rows) < batch:
            return
        last = rows[-1]["row_number"]


async def delete_drafts(conn: Conn, older_than_hours: int = 24) -> int:
    """Drafts nobody finished (their files take room)."""
    result = await conn.execute(
        "DELETE FROM contact_imports WHERE status = 'draft' AND created_at < now() - make_interval(hours => $1)",
        older_than_hours)
    return int(result.split()[-1])


# The rows of a file (pure)

STAGING_COLUMNS = ("row_number", "phone", "first_name", "last_name", "birth_date", "gender",
                   "comments", "fields", "missing_required", "reason", "detail", "raw")


@dataclass
class RowPlan:
    """How the cells of a row become a staging record (see :meth:`record`)."""

    phone: int
    country: str | None
    builtins: list[tuple[int, str]]             # (column, built-in key)
    custom: list[tuple[int, str, str]]           # (column, variable, data type)
    # built-in keys and custom variables whose empty cell leaves a new contact incomplete
    required: set[str] = field(default_factory=set)
    header_row: bool = True

    @classmethod
    def build(cls, job: Import, all_fields: Sequence[FieldDef]) -> RowPlan:
        by_key = {f.key: f for f in all_fields}
        phone = -1
        builtins: list[tuple[int, str]] = []
        custom: list[tuple[int, str, str]] = []
        for column, key in enumerate(job.mapping):
            if key is None or key not in by_key:
                continue
            spec = by_key[key]
            if key == "phone":
                phone = column
            elif spec.kind == "builtin":
                builtins.append((column, key))
            elif spec.kind == "custom":
                custom.append((column, spec.variable, spec.data_type))
        mapped = {k for _, k in builtins} | {v for _, v, _ in custom}
        return cls(phone, job.country, builtins, custom, required_keys(all_fields) & mapped,
                   job.header_row)

    def record(self, number: int, cells: Sequence[Any]) -> tuple:
        """The staging record of one row (a rejected row carries its reason)."""
        raw_phone = cells[self.phone] if self.phone < len(cells) else None
        if raw_phone is None or (isinstance(raw_phone, str) and not raw_phone.strip()):
            return self._reject(number, cells, "no_phone", "")
        phone = phones.normalise(raw_phone, self.country)
        if phone is None:
            return self._reject(number, cells, "bad_phone", fieldmod.display_value("text", raw_phone)[:100])
        first = last = comments = gender = None
        birth: date | None = None
        missing = False
        try:
            for column, key in self.builtins:
                raw = cells[column]
                if key == "gender":
                    gender = fieldmod.parse_gender(raw)
                    value: Any = gender
                elif key == "birth_date":
                    birth = fieldmod.parse_date(raw)
                    value = birth
                else:
                    value = fieldmod.parse_builtin_text(raw, 1000 if key == "comments" else 100) or None
                    if key == "first_name":
                        first = value
                    elif key == "last_name":
                        last = value
                    else:
                        comments = value
                if value is None and key in self.required:
                    missing = True
            values = {}
            for column, variable, data_type in self.custom:
                value = fieldmod.parse_value(data_type, cells[column])
                if value is not None:
                    values[variable] = value
                elif variable in self.required:
                    missing = True
        except ValueError as exc:
            return self._reject(number, cells, str(exc), "")
        for text in (first, last, comments, *values.values()):
            if isinstance(text, str) and "\x00" in text:
                return self._reject(number, cells, "bad_text", "")
        return (number, phone, first, last, birth, gender, comments,
                json.dumps(values, ensure_ascii=False) if values else None, missing, None, None,
                _raw(cells) if missing else None)

    @staticmethod
    def _reject(number: int, cells: Sequence[Any], reason: str, detail: str) -> tuple:
        return (number, None, None, None, None, None, None, None, False, reason, detail, _raw(cells))


def _raw(cells: Sequence[Any]) -> list[str]:
    return [fieldmod.display_value("text", c)[:1000].replace("\x00", "") for c in cells]


def required_keys(all_fields: Sequence[FieldDef]) -> set[str]:
    """Required custom fields by variable and built-ins by key (what RowPlan checks)."""
    keys = set()
    for spec in all_fields:
        if spec.required and spec.kind == "builtin":
            keys.add(spec.key)
        elif spec.required and spec.kind == "custom":
            keys.add(spec.variable)
    return keys


# Running an import

_STAGING = """
CREATE TEMP TABLE import_staging (
    row_number bigint NOT NULL, phone text COLLATE "C", first_name text, last_name text,
    birth_date date, gender text, comments text, fields text, missing_required boolean NOT NULL,
    reason text, detail text, raw text[]
) ON COMMIT DROP"""

_MERGE_TABLE = """
CREATE TEMP TABLE import_merge ON COMMIT DROP AS
SELECT s.*, c.id AS contact_id
FROM (SELECT s.row_number, s.phone, s.first_name, s.last_name, s.birth_date, s.gender, s.comments,
             s.fields::jsonb AS fields, s.missing_required, s.raw,
             first_value(s.row_number) OVER w AS kept_row,
             row_number() OVER w AS rank
      FROM import_staging s WHERE s.reason IS NULL
      WINDOW w AS (PARTITION BY s.phone ORDER BY s.row_number DESC)) s
LEFT JOIN contacts c ON c.partner_id = $1 AND c.phone = s.phone"""

_REJECTED = """
INSERT INTO contact_import_rejects (import_id, row_number, reason, detail, raw)
SELECT $1, row_number, reason, coalesce(detail, ''), coalesce(raw, '{}') FROM import_staging
WHERE reason IS NOT NULL"""

_REPEATED = """
INSERT INTO contact_import_rejects (import_id, row_number, reason, detail, raw)
SELECT $1, row_number, 'duplicate', kept_row::text, coalesce(raw, '{}') FROM import_merge WHERE rank > 1"""

_EXCLUDE_STOPPED = """
DELETE FROM import_merge m WHERE m.rank = 1
  AND EXISTS (SELECT 1 FROM stop_list s WHERE s.partner_id = $1 AND s.msisdn = m.phone)"""

_UNBLOCK = """
DELETE FROM stop_list s USING import_merge m
WHERE s.partner_id = $1 AND s.msisdn = m.phone AND m.rank = 1 AND s.sender = ANY($2::text[])"""

_BLOCK = """
INSERT INTO stop_list (partner_id, msisdn, sender, source, created_by)
SELECT $1, m.phone, x.sender, 'import', $3 FROM import_merge m, unnest($2::text[]) x(sender)
WHERE m.rank = 1
ON CONFLICT DO NOTHING"""

_UPDATE = """
UPDATE contacts c SET
    first_name = coalesce(m.first_name, c.first_name),
    last_name = coalesce(m.last_name, c.last_name),
    birth_date = coalesce(m.birth_date, c.birth_date),
    gender = coalesce(m.gender, c.gender),
    comments = coalesce(m.comments, c.comments),
    fields = CASE WHEN m.fields IS NULL THEN c.fields ELSE c.fields || m.fields END,
    group_ids = CASE WHEN c.group_ids @> ARRAY[$2::bigint] THEN c.group_ids
                     ELSE c.group_ids || $2::bigint END,
    updated_by = $3, updated_at = now()
FROM import_merge m
WHERE m.rank = 1 AND m.contact_id = c.id AND c.partner_id = $1"""

_INSERT = """
INSERT INTO contacts (partner_id, phone, group_ids, first_name, last_name, birth_date, gender,
                      comments, fields, created_by)
SELECT $1, m.phone, ARRAY[$2::bigint], coalesce(m.first_name, ''), coalesce(m.last_name, ''),
       m.birth_date, m.gender, coalesce(m.comments, ''), coalesce(m.fields, '{}'), $3
FROM import_merge m
WHERE m.rank = 1 AND m.contact_id IS NULL AND NOT m.missing_required
ON CONFLICT (partner_id, phone) DO NOTHING"""

_INCOMPLETE = """
INSERT INTO contact_import_rejects (import_id, row_number, reason, detail, raw)
SELECT $1, row_number, 'missing_required', '', coalesce(raw, '{}') FROM import_merge
WHERE rank = 1 AND contact_id IS NULL AND missing_required"""

_CLAIM_GONE = "UPDATE contact_imports SET status = 'failed', error = $2, finished_at = now(), lease_until = NULL WHERE id = $1"


def _count(result: str) -> int:
    return int(result.split()[-1])


class _Timed:
    """A connection whose statements log their time (debug level: where a merge spends it)
    and may run for up to ``STATEMENT_TIMEOUT``."""

    def __init__(self, conn: asyncpg.Connection, import_id: int) -> None:
        self._conn = conn
        self._id = import_id

    def __getattr__(self, name: str):
        method = getattr(self._conn, name)
        if name not in ("execute", "fetchval", "fetchrow", "fetch"):
            return method

        async def timed(sql: str, *args):
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            try:
                return await method(sql, *args, timeout=STATEMENT_TIMEOUT)
            finally:
                log.debug("event=contact_import_statement id=%s s=%.2f sql=%s", self._id,
                          loop.time() - t0, " ".join(sql.split())[:60])

        return timed


class _Progress:
    """Writes how far an import is, at most twice a second, on its own connection."""

    def __init__(self, pool: asyncpg.Pool, import_id: int) -> None:
        self.pool = pool
        self.import_id = import_id
        self._last = 0.0

    async def __call__(self, rows: int, percent: int, *, force: bool = False) -> None:
        loop = asyncio.get_running_loop()
        if not force and loop.time() - self._last < 0.5:
            return
        self._last = loop.time()
        await self.pool.execute(
            """UPDATE contact_imports SET rows_done = $2, progress = $3,
                   lease_until = now() + make_interval(secs => $4)
               WHERE id = $1 AND status = 'running'""",
            self.import_id, rows, max(0, min(100, percent)), LEASE_SECONDS)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


async def _write_file(conn: asyncpg.Connection, import_id: int, path: Path) -> None:
    """The stored file back on disk (piece by piece: a spreadsheet needs a seekable file)."""
    seq = 0
    while True:
        data = await conn.fetchval(
            "SELECT data FROM contact_import_chunks WHERE import_id = $1 AND seq = $2", import_id, seq)
        if data is None:
            return
        await asyncio.to_thread(_append, path, data)
        seq += 1


async def _records(reader: files.RowReader, plan: RowPlan, progress: _Progress,
                   counter: list[int]) -> AsyncIterator[tuple]:
    """The staging records of a file, yielding to the loop now and then for the progress."""
    first = True
    n = 0
    for number, cells in reader.rows():
        if first:
            first = False
            if plan.header_row:
                continue
        n += 1
        yield plan.record(number, cells)
        if n % 2000 == 0:
            counter[0] = n
            share = reader.position / reader.size if reader.size else 0
            await progress(n, int(90 * share))
    counter[0] = n


async def run_import(pool: asyncpg.Pool, import_id: int, *,
                     on_stage: Callable[[str], None] | None = None) -> Import:
    """Run a claimed import (status ``running``) to its end: ``done`` or ``failed``.

    See the module doc. Returns the job as it ended.
    """
    progress = _Progress(pool, import_id)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with pool.acquire() as conn:
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM contact_imports WHERE id = $1", import_id)
        if row is None:
            raise NotFound("no such import")
        job = _import(row)
        all_fields = await fieldmod.list_fields(conn, job.partner_id)
        plan = RowPlan.build(job, all_fields)
        with tempfile.TemporaryDirectory(prefix="herald-import-") as folder:
            path = Path(folder) / f"upload.{job.file_kind}"
            await _write_file(conn, import_id, path)
            reader = files.RowReader(path, job.file_kind)
            counter = [0]
            try:
                async with conn.transaction():
                    await conn.execute("SET LOCAL work_mem = '64MB'")
                    await conn.execute(_STAGING)
                    if on_stage:
                        on_stage("copy")
                    await conn.copy_records_to_table(
                        "import_staging", records=_records(reader, plan, progress, counter),
                        columns=STAGING_COLUMNS, timeout=STATEMENT_TIMEOUT)
                    await progress(counter[0], 90, force=True)
                    copied = loop.time()
                    if on_stage:
                        on_stage("merge")
                    counts = await _merge(conn, job, progress, counter[0])
                    log.info("event=contact_import_timing id=%s rows=%s read_and_copy_s=%.1f merge_s=%.1f",
                             import_id, counter[0], copied - started, loop.time() - copied)
                    row = await conn.fetchrow(
                        f"""UPDATE contact_imports SET status = 'done', progress = 100, rows_done = $2,
                                rows_total = $2, added = $3, updated = $4, skipped = $5, rejected = $6,
                                finished_at = now(), lease_until = NULL, error = ''
                            WHERE id = $1 RETURNING {_COLUMNS}""",
                        import_id, counter[0], counts["added"], counts["updated"], counts["skipped"],
                        counts["rejected"])
            except files.FileRefused as exc:
                where = f" (line {exc.line})" if exc.line else ""
                await conn.execute(_CLAIM_GONE, import_id, exc.message + where)
                row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM contact_imports WHERE id = $1", import_id)
    return _import(row)


async def _merge(conn: asyncpg.Connection, job: Import, progress: _Progress,
                 read: int) -> dict[str, int]:
    """The set-based merge of the staged rows (see the module doc); returns the counts."""
    conn = _Timed(conn, job.id)
    partner_id, group_id, user_id = job.partner_id, job.group_id, job.user_id
    if group_id is None:
        group_id = (await groupmod.stop_list_group(conn, partner_id)).id
    rejected = _count(await conn.execute(_REJECTED, job.id))
    await conn.execute(_MERGE_TABLE, partner_id)
    await conn.execute("ANALYZE import_merge")
    repeated = _count(await conn.execute(_REPEATED, job.id))
    rows = await conn.fetchval("SELECT count(*) FROM import_merge WHERE rank = 1")
    skipped = 0
    if job.stop_mode == "exclude":
        skipped += _count(await conn.execute(_EXCLUDE_STOPPED, partner_id))
    elif job.stop_mode == "unblock":
        await conn.execute(_UNBLOCK, partner_id, job.stop_senders)
    elif job.stop_mode == "block":
        await conn.execute(_BLOCK, partner_id, job.stop_senders, user_id)
    await progress(read, 93, force=True)
    group = await groupmod.get(conn, partner_id, group_id)
    updated = added = incomplete = 0
    if job.mode in ("add_update", "update_only"):
        updated = _count(await conn.execute(_UPDATE, partner_id, group_id, user_id))
    await progress(read, 96, force=True)
    if job.mode in ("add_update", "add_only"):
        incomplete = _count(await conn.execute(_INCOMPLETE, job.id))
        added = _count(await conn.execute(_INSERT, partner_id, group_id, user_id))
        await contact_book.count_new(conn, [group_id], added)
    if group.is_stop_list:
        await conn.execute(_BLOCK, partner_id, [stoplist.ALL], user_id)
    skipped += rows - skipped - updated - added - incomplete
    return {"added": added, "updated": updated, "skipped": skipped,
            "rejected": rejected + repeated + incomplete}


async def claim(pool: Conn) -> tuple[int, int] | None:
    """Take the oldest import that is due (queued, or running with its lease run out):
    (id, attempts) with status ``running`` and a fresh lease, or None."""
    row = await pool.fetchrow(
        """UPDATE contact_imports SET status = 'running', attempts = attempts + 1,
               lease_until = now() + make_interval(secs => $1)
           WHERE id = (SELECT id FROM contact_imports
                       WHERE status = 'queued' OR (status = 'running' AND lease_until < now())
                       ORDER BY queued_at, id FOR UPDATE SKIP LOCKED LIMIT 1)
           RETURNING id, attempts""", LEASE_SECONDS)
    return (row["id"], row["attempts"]) if row else None


async def fail(pool: Conn, import_id: int, message: str) -> None:
    await pool.execute(_CLAIM_GONE, import_id, message)


async def renew(pool: Conn, import_id: int) -> None:
    await pool.execute(
        """UPDATE contact_imports SET lease_until = now() + make_interval(secs => $2)
           WHERE id = $1 AND status = 'running'""", import_id, LEASE_SECONDS)
