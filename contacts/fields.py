"""The fields of a contact: system, built-in optional and custom, and what their values may be.

* **System** fields (phone, groups, creation date, last updated, user) are
  always there; their label and rules cannot change.
* **Built-in** optional fields (first name, last name, date of birth, gender,
  comments) are columns of ``contacts``; a partner may rename them and make
  them required (a ``contact_fields`` row with ``builtin``), not delete them.
* **Custom** fields are a partner's own: a name, a ``variable`` derived from
  it (lower case, letters and digits only: "Loyalty Level" → ``loyaltylevel``,
  the campaign placeholder ``{loyaltylevel}``), a data type, required or not.
  Values live in ``contacts.fields`` under the variable.

Keys name a field everywhere (table columns, import mapping, forms):
``phone``, ``groups``, ``created``, ``updated``, ``user``, the built-in
column names, and ``cf.<id>`` for a custom field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

import asyncpg

from config.errors import Conflict, Forbidden, Invalid, NotFound
from contacts.text import N_

Conn = asyncpg.Connection | asyncpg.Pool
DATA_TYPES = ("text", "number", "date", "boolean")
TYPE_LABELS = {"text": N_("Text"), "number": N_("Number"), "date": N_("Date"),
               "boolean": N_("Yes / no")}
NAME_MAX = 60
TEXT_MAX = 500
CUSTOM_PREFIX = "cf."
MAX_CUSTOM_FIELDS = 100


@dataclass(frozen=True, slots=True)
class FieldDef:
    key: str            # see the module doc
    label: str          # a message id (system, built-in not renamed) or the partner's text
    variable: str       # campaign placeholder, without braces
    data_type: str
    kind: str           # 'system' | 'builtin' | 'custom'
    required: bool = False
    id: int | None = None
    renamed: bool = False  # a built-in field's label is the partner's own

    @property
    def translate(self) -> bool:
        """Whether the label is a message id (else it is shown as the partner wrote it)."""
        return self.kind == "system" or (self.kind == "builtin" and not self.renamed)

    @property
    def editable(self) -> bool:
        return self.kind != "system"

    @property
    def placeholder(self) -> str:
        return "{" + self.variable + "}"


SYSTEM: tuple[FieldDef, ...] = (
    FieldDef("phone", N_("Phone"), "phone", "text", "system", required=True),
    FieldDef("groups", N_("Groups"), "groups", "text", "system", required=True),
    FieldDef("created", N_("Creation date"), "created", "date", "system"),
    FieldDef("updated", N_("Last updated"), "updated", "date", "system"),
    FieldDef("user", N_("User"), "user", "text", "system"),
)
BUILTIN: tuple[FieldDef, ...] = (
    FieldDef("first_name", N_("First name"), "firstname", "text", "builtin"),
    FieldDef("last_name", N_("Last name"), "lastname", "text", "builtin"),
    FieldDef("birth_date", N_("Date of birth"), "dateofbirth", "date", "builtin"),
    FieldDef("gender", N_("Gender"), "gender", "text", "builtin"),
    FieldDef("comments", N_("Comments"), "comments", "text", "builtin"),
)
BUILTIN_KEYS = {f.key: f for f in BUILTIN}
RESERVED_VARIABLES = frozenset(f.variable for f in (*SYSTEM, *BUILTIN)) | {"name", "id"}
GENDERS = {"female": N_("Female"), "male": N_("Male"), "other": N_("Other")}


def derive_variable(name: str) -> str:
    """The placeholder of a field named ``name``: lower case, letters and digits only."""
    variable = "".join(ch for ch in name.lower() if ch.isalnum())[:NAME_MAX]
    if not variable:
        raise Invalid(N_("The name needs at least one letter or digit."), field="name")
    return variable


def custom_key(field_id: int) -> str:
    return f"{CUSTOM_PREFIX}{field_id}"


# Values

_TRUE = frozenset({"true", "yes", "y", "1", "x", "да", "sí", "si", "evet", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "нет", "hayır", "hayir", "off"})
_GENDER_WORDS = {
    "female": "female", "f": "female", "woman": "female", "женский": "female", "ж": "female",
    "mujer": "female", "femenino": "female", "kadın": "female", "kadin": "female",
    "male": "male", "m": "male", "man": "male", "мужской": "male", "м": "male",
    "hombre": "male", "masculino": "male", "erkek": "male",
    "other": "other", "o": "other", "другой": "other", "otro": "other", "diğer": "other",
}
_DMY = re.compile(r"^(\d{1,2})[./](\d{1,2})[./](\d{4})$")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


def parse_date(raw: object) -> date | None:
    """A date from a cell: a date or datetime, ``YYYY-MM-DD``, ``DD.MM.YYYY`` or ``DD/MM/YYYY``."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        return raw.date()
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    if not text:
        return None
    if len(text) == 10 and text[4] == "-":
        try:
            return date.fromisoformat(text)  # the usual case, in C
        except ValueError:
            pass
    if text[:10] != text and len(text) > 10 and text[10] in " T":
        text = text[:10]  # a time of day that came along ("2001-05-17 00:00:00")
    match = _ISO.match(text)
    try:
        if match:
            year, month, day = (int(g) for g in match.groups())
            return date(year, month, day)
        match = _DMY.match(text)
        if match:
            day, month, year = (int(g) for g in match.groups())
            return date(year, month, day)
    except ValueError:
        pass
    raise ValueError("bad_date")


def parse_value(data_type: str, raw: object) -> object:
    """A custom field's value as stored in ``contacts.fields`` (None: empty).

    Raises ``ValueError`` with a reason code: ``bad_number``, ``bad_date``,
    ``bad_boolean`` or ``too_long``.
    """
    if raw is None:
        return None
    if data_type == "text":
        text = raw if isinstance(raw, str) else _cell_text(raw)
        text = text.strip()
        if len(text) > TEXT_MAX:
            raise ValueError("too_long")
        return text or None
    if data_type == "number":
        if isinstance(raw, bool):
            raise ValueError("bad_number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float):
            if not math.isfinite(raw):
                raise ValueError("bad_number")
            return int(raw) if raw.is_integer() and abs(raw) < 2**53 else raw
        text = str(raw).strip()
        if text.isdigit() and text.isascii() and len(text) < 19:
            return int(text)  # the usual case
        text = text.replace(" ", "").replace("\u00a0", "").replace(",", ".")
        if not text:
            return None
        if len(text) > 40:
            raise ValueError("bad_number")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueError("bad_number") from None
        if not number.is_finite():
            raise ValueError("bad_number")
        if number == number.to_integral_value() and abs(number) < 2**63:
            return int(number)
        return float(number)
    if data_type == "date":
        day = parse_date(raw)
        return day.isoformat() if day else None
    if data_type == "boolean":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, int | float):
            if raw in (0, 1):
                return bool(raw)
            raise ValueError("bad_boolean")
        text = str(raw).strip().lower()
        if not text:
            return None
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("bad_boolean")
    raise ValueError("bad_type")


def parse_gender(raw: object) -> str | None:
    """'female', 'male', 'other' or None (empty); ValueError("bad_gender") otherwise."""
    if raw is None:
        return None
    text = str(raw).strip().lower()
    if not text:
        return None
    found = _GENDER_WORDS.get(text)
    if found is None:
        raise ValueError("bad_gender")
    return found


def parse_builtin_text(raw: object, limit: int) -> str:
    text = (raw if isinstance(raw, str) else _cell_text(raw)).strip()
    if len(text) > limit:
        raise ValueError("too_long")
    return text


def _cell_text(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    if isinstance(raw, datetime):
        return raw.date().isoformat() if raw.time() == datetime.min.time() else raw.isoformat(" ")
    if isinstance(raw, date):
        return raw.isoformat()
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def display_value(data_type: str, value: object) -> str:
    """A stored custom value as text for a table cell or an export (booleans as yes/no)."""
    if value is None:
        return ""
    if data_type == "boolean" and isinstance(value, bool):
        return "yes" if value else "no"
    return _cell_text(value)


# SQL

_FIELDS = """
SELECT id, name, variable, data_type, required, builtin, position FROM contact_fields
WHERE partner_id = $1 ORDER BY position, id"""


def _custom(row: asyncpg.Record) -> FieldDef:
    return FieldDef(custom_key(row["id"]), row["name"], row["variable"], row["data_type"], "custom",
                    required=row["required"], id=row["id"])


async def list_fields(conn: Conn, partner_id: int) -> list[FieldDef]:
    """Every field of the partner's contacts: system, then built-in, then custom (by position)."""
    rows = await conn.fetch(_FIELDS, partner_id)
    overrides = {r["variable"]: r for r in rows if r["builtin"]}
    builtins = []
    for spec in BUILTIN:
        row = overrides.get(spec.key)
        if row is not None:
            spec = replace(spec, label=row["name"], required=row["required"], id=row["id"],
                           renamed=row["name"] != spec.label)
        builtins.append(spec)
    return [*SYSTEM, *builtins, *(_custom(r) for r in rows if not r["builtin"])]


def custom_fields(all_fields: Sequence[FieldDef]) -> list[FieldDef]:
    return [f for f in all_fields if f.kind == "custom"]


def field_by_key(all_fields: Sequence[FieldDef], key: str) -> FieldDef:
    for spec in all_fields:
        if spec.key == key:
            return spec
    raise NotFound("no such field")


def _check_name(name: str) -> str:
    name = " ".join(name.split())
    if "\x00" in name:
        raise Invalid(N_("This text holds characters that cannot be stored."), field="name")
    if not name:
        raise Invalid(N_("This field is required."), field="name")
    if len(name) > NAME_MAX:
        raise Invalid(N_("Use at most 60 characters."), field="name")
    return name


async def create_field(conn: asyncpg.Connection, partner_id: int, *, name: str, data_type: str,
                       required: bool = False) -> FieldDef:
    """A new custom field; Conflict when its name or variable is taken."""
    name = _check_name(name)
    if data_type not in DATA_TYPES:
        raise Invalid(N_("Choose one of the options."), field="data_type")
    variable = derive_variable(name)
    if variable in RESERVED_VARIABLES:
        raise Conflict(N_("This name gives the variable of a built-in field. Choose another name."),
                       field="name")
    count = await conn.fetchval(
        "SELECT count(*) FROM contact_fields WHERE partner_id = $1 AND NOT builtin", partner_id)
    if count >= MAX_CUSTOM_FIELDS:
        raise Invalid(N_("You have 100 custom fields, the most there can be."), field="name")
    try:
        async with conn.transaction():  # a savepoint when the caller has a transaction open
            row = await conn.fetchrow(
                """INSERT INTO contact_fields (partner_id, name, variable, data_type, required, position)
                   VALUES ($1, $2, $3, $4, $5,
                           (SELECT coalesce(max(position), 0) + 1 FROM contact_fields WHERE partner_id = $1))
                   RETURNING id, name, variable, data_type, required, builtin, position""",
                partner_id, name, variable, data_type, required,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(N_("A field with this name or the same variable exists."),
                       field="name") from None
    return _custom(row)


async def update_field(conn: asyncpg.Connection, partner_id: int, key: str, *, name: str,
                       required: bool) -> FieldDef:
    """Rename a built-in or custom field, or change whether it is required."""
    name = _check_name(name)
    if key in BUILTIN_KEYS:
        spec = BUILTIN_KEYS[key]
        try:
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO contact_fields (partner_id, name, variable, data_type, required, builtin)
                       VALUES ($1, $2, $3, $4, $5, true)
                       ON CONFLICT (partner_id, variable) DO UPDATE SET name = $2, required = $5""",
                    partner_id, name, spec.key, spec.data_type, required,
                )
        except asyncpg.UniqueViolationError:
            raise Conflict(N_("Another field has this name."), field="name") from None
        return field_by_key(await list_fields(conn, partner_id), key)
    field_id = _custom_id(key)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                """UPDATE contact_fields SET name = $3, required = $4
                   WHERE partner_id = $1 AND id = $2 AND NOT builtin
                   RETURNING id, name, variable, data_type, required, builtin, position""",
                partner_id, field_id, name, required,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict(N_("Another field has this name."), field="name") from None
    if row is None:
        raise NotFound("no such field")
    return _custom(row)


def _custom_id(key: str) -> int:
    if key in {f.key for f in SYSTEM}:
        raise Forbidden(N_("System fields cannot be changed."))
    if not key.startswith(CUSTOM_PREFIX) or not key[len(CUSTOM_PREFIX):].isdigit():
        raise NotFound("no such field")
    value = int(key[len(CUSTOM_PREFIX):])
    if value >= 2**63:
        raise NotFound("no such field")
    return value


async def delete_field(conn: asyncpg.Connection, partner_id: int, key: str) -> None:
    """Delete a custom field and its value in every contact of the partner."""
    if key in BUILTIN_KEYS:
        raise Forbidden(N_("Built-in fields cannot be deleted; hide the column instead."))
    field_id = _custom_id(key)
    async with conn.transaction():
        variable = await conn.fetchval(
            "DELETE FROM contact_fields WHERE partner_id = $1 AND id = $2 AND NOT builtin RETURNING variable",
            partner_id, field_id,
        )
        if variable is None:
            raise NotFound("no such field")
        await conn.execute(
            "UPDATE contacts SET fields = fields - $2 WHERE partner_id = $1 AND fields ? $2",
            partner_id, variable,
        )


async def reorder(conn: Conn, partner_id: int, keys: Sequence[str]) -> None:
    """Custom fields in the order of ``keys`` (other keys are ignored)."""
    ids = []
    for key in keys:
        try:
            ids.append(_custom_id(key))
        except (NotFound, Forbidden):
            continue
    await conn.execute(
        """UPDATE contact_fields f SET position = o.n
           FROM unnest($2::bigint[]) WITH ORDINALITY AS o(id, n)
           WHERE f.partner_id = $1 AND f.id = o.id AND NOT f.builtin""",
        partner_id, ids,
    )
