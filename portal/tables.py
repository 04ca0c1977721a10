"""The table component: filters, column settings, keyset pages, bulk and row actions.

A page declares a :class:`TableSpec` (columns, filters, bulk actions, the sort
key of a row) and a fetch function; :func:`load` reads the filters and the
page position from the query string, asks the fetch function for one page
plus one row, and returns a :class:`TableView` that the ``render_table`` macro
in ``templates/macros/tables.html`` draws.

Pages are keyset pages: the position is the sort key of the first or last row
shown, encoded in an opaque cursor, so a deep page costs what the first one
does and rows added meanwhile do not shift the page. Each user's column
choice (shown or hidden, and order) is kept in ``users.ui_prefs['tables']``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

PREFS_SECTION = "tables"
_KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,40}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str  # message id
    hideable: bool = True
    default: bool = True  # shown until the user says otherwise
    numeric: bool = False  # right-aligned
    translate: bool = True  # False: ``label`` is a partner's own text (a custom field), shown as is


@dataclass(frozen=True, slots=True)
class Filter:
    key: str
    label: str  # message id
    kind: str = "search"  # 'search', 'select' or 'date' (YYYY-MM-DD)
    choices: Sequence[tuple[str, str]] = ()  # (value, label message id) for 'select'
    translate_choices: bool = True  # False: the choices' labels are a partner's own (group names)
    translate: bool = True  # False: ``label`` is a partner's own text


@dataclass(frozen=True, slots=True)
class BulkAction:
    key: str
    label: str  # message id
    url: str  # POST target; receives the selected row ids as ``ids``
    danger: bool = False


@dataclass(frozen=True, slots=True)
class TableSpec:
    """What a table shows; ``sort_key`` gives a row's keyset position, ``row_id`` its id."""

    id: str
    columns: tuple[Column, ...]
    sort_key: Callable[[Any], tuple]
    row_id: Callable[[Any], Any]
    filters: tuple[Filter, ...] = ()
    bulk_actions: tuple[BulkAction, ...] = ()
    row_actions: bool = False  # the template renders a hover-actions cell
    page_size: int = 25
    label: str = ""  # accessible name of the table (message id)

    def __post_init__(self) -> None:
        if not _KEY.match(self.id):
            raise ValueError(f"table id {self.id!r} must match {_KEY.pattern}")


@dataclass(frozen=True, slots=True)
class ColumnSetting:
    column: Column
    visible: bool


def column_layout(spec: TableSpec, prefs: Mapping[str, Any] | None) -> list[ColumnSetting]:
    """Every column in the user's order, each with whether it is shown.

    ``prefs`` is ``{"order": [keys], "hidden": [keys]}``. Columns the user never
    saw (added later) go last with their default visibility; columns that
    cannot be hidden are always shown.
    """
    by_key = {c.key: c for c in spec.columns}
    prefs = prefs or {}
    order = [k for k in prefs.get("order", []) if k in by_key]
    order += [c.key for c in spec.columns if c.key not in order]
    hidden = set(prefs.get("hidden", []))
    known = set(prefs.get("order", []))
    settings = []
    for key in order:
        column = by_key[key]
        if not column.hideable:
            visible = True
        elif key in known:
            visible = key not in hidden
        else:
            visible = column.default
        settings.append(ColumnSetting(column, visible))
    return settings


def clean_prefs(spec_columns: Sequence[str], order: Sequence[str], visible: Sequence[str]) -> dict:
    """Stored form of a column choice posted by the settings form (unknown keys dropped)."""
    order_clean = [k for k in dict.fromkeys(order) if _KEY.match(k)][:100]
    allowed = set(spec_columns) if spec_columns else set(order_clean)
    order_clean = [k for k in order_clean if k in allowed]
    shown = set(visible)
    return {"order": order_clean, "hidden": [k for k in order_clean if k not in shown]}


def valid_table_id(table_id: str) -> bool:
    return bool(_KEY.match(table_id))


# Cursors: a row's sort key as opaque, URL-safe text.

def encode_cursor(key: Sequence[Any]) -> str:
    parts = []
    for value in key:
        if isinstance(value, datetime):
            parts.append(["d", value.isoformat()])
        elif isinstance(value, bool) or not isinstance(value, int | str):
            raise TypeError(f"cursor values must be datetime, int or str, not {type(value)}")
        elif isinstance(value, int):
            parts.append(["i", value])
        else:
            parts.append(["s", value])
    raw = json.dumps(parts, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple | None:
    """The sort key in a cursor, or None when it is not one of ours."""
    if not cursor or len(cursor) > 500:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        values: list[Any] = []
        for tag, value in parts:
            if tag == "d":
                values.append(datetime.fromisoformat(value))
            elif tag == "i" and isinstance(value, int):
                values.append(value)
            elif tag == "s" and isinstance(value, str):
                values.append(value)
            else:
                return None
        return tuple(values)
    except (ValueError, TypeError):
        return None


# Loading one page

Fetch = Callable[..., Awaitable[list[Any]]]


@dataclass(slots=True)
class TableView:
    """Everything the ``render_table`` macro needs."""

    spec: TableSpec
    rows: list[Any]
    layout: list[ColumnSetting]
    filters: dict[str, str]
    next_url: str | None
    prev_url: str | None
    first_url: str | None
    path: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[Column]:
        return [s.column for s in self.layout if s.visible]

    @property
    def selectable(self) -> bool:
        return bool(self.spec.bulk_actions)

    @property
    def filtered(self) -> bool:
        return any(self.filters.values())

    def row_id(self, row: Any) -> Any:
        return self.spec.row_id(row)


async def load(
    request: web.Request, spec: TableSpec, fetch: Fetch, *, prefs: Mapping[str, Any] | None = None,
) -> TableView:
    """One page of rows for the request's filters and position.

    ``fetch(filters=..., after=..., before=..., limit=...)`` returns rows in
    display order after (or before) the given sort key.
    """
    query = request.rel_url.query
    filters = {}
    for flt in spec.filters:
        # NUL cannot reach PostgreSQL text: a filter holding one would be a 500, not a filter
        value = query.get(flt.key, "").replace("\x00", "").strip()[:200]
        if flt.kind == "select" and value not in {v for v, _ in flt.choices}:
            value = ""
        elif flt.kind == "date" and not _DATE.match(value):
            value = ""
        filters[flt.key] = value
    after = decode_cursor(query.get("after", ""))
    before = decode_cursor(query.get("before", "")) if after is None else None
    size = spec.page_size
    rows = await fetch(filters=filters, after=after, before=before, limit=size + 1)
    has_more = len(rows) > size
    if before is not None:
        rows = rows[1:] if has_more else rows  # the extra row is the farthest back
        has_prev, has_next = has_more, True
    else:
        rows = rows[:size]
        has_prev, has_next = after is not None, has_more

    def link(**position: str) -> str:
        params = {k: v for k, v in filters.items() if v}
        params.update(position)
        return str(request.rel_url.with_query(params))

    next_url = link(after=encode_cursor(spec.sort_key(rows[-1]))) if has_next and rows else None
    prev_url = link(before=encode_cursor(spec.sort_key(rows[0]))) if has_prev and rows else None
    first_url = link() if has_prev else None
    return TableView(
        spec=spec, rows=rows, layout=column_layout(spec, prefs), filters=filters,
        next_url=next_url, prev_url=prev_url, first_url=first_url, path=request.path,
    )


def table_prefs(ui_prefs: Mapping[str, Any], table_id: str) -> Mapping[str, Any]:
    """The stored column settings of one table from a user's ``ui_prefs``."""
    return (ui_prefs or {}).get(PREFS_SECTION, {}).get(table_id, {})


def selected_ids(form: Mapping[str, Any] | Any) -> list[int]:
    """Row ids posted by a bulk action (``ids``), ignoring anything not an integer."""
    raw = form.getall("ids", []) if hasattr(form, "getall") else form.get("ids", [])
    ids = []
    for value in raw:
        try:
            ids.append(int(value))
        except (TypeError, ValueError):
            continue
    return ids[:1000]
