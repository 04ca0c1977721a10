"""Exporting contacts, stop list rows and rejected import rows as CSV or XLSX, streamed.

Rows come from an async iterator (a query read in batches) and leave as
bytes as they are made: CSV line by line, XLSX through openpyxl's write-only
mode (each row goes to a temporary file as it is written; the finished
workbook is then sent in pieces). Nothing holds the whole export in memory.

Formula injection: a spreadsheet program runs a cell that starts with ``=``,
``+``, ``-`` or ``@`` (or a tab or carriage return before one) as a formula,
so ``=HYPERLINK("http://evil", "Click")`` typed into a contact's comments
would become a live link in the partner's Excel. :func:`safe_cell` puts an
apostrophe before such a value (spreadsheets show it as text and hide the
apostrophe), except for plain numbers like ``-12.5`` or ``+447700900123``;
XLSX cells are written as strings, never as formulas, as well.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from contacts import phones
from contacts.fields import FieldDef, display_value
from contacts.text import N_

_NUMBER = re.compile(r"^[+-]?\d+([.,]\d+)?$")
_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")
XLSX_MAX_ROWS = 1_048_575  # the sheet's limit, less the header
BLOCKED_LABEL = N_("Blocked sender IDs")


def safe_cell(value: object) -> str:
    """``value`` as text that no spreadsheet runs as a formula."""
    text = "" if value is None else str(value)
    if text.startswith(_TRIGGERS) and not _NUMBER.match(text):
        return "'" + text
    return text


async def csv_chunks(header: Sequence[str], rows: AsyncIterator[Sequence[object]],
                     *, batch: int = 500) -> AsyncIterator[bytes]:
    """A CSV file (UTF-8 with BOM, so Excel reads it as UTF-8) in pieces of ``batch`` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    yield b"\xef\xbb\xbf" + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    count = 0
    async for row in rows:
        writer.writerow([safe_cell(c) for c in row])
        count += 1
        if count % batch == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _xlsx_writer(path: Path, header: Sequence[str]):
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Contacts")

    def cells(values: Sequence[object]) -> list:
        out = []
        for value in values:
            cell = WriteOnlyCell(sheet, value=safe_cell(value))
            cell.data_type = "s"  # a string, whatever it looks like: never a formula
            out.append(cell)
        return out

    sheet.append(cells(header))

    def add(batch: list[Sequence[object]]) -> None:
        for values in batch:
            sheet.append(cells(values))

    def close() -> None:
        book.save(path)

    return add, close


async def write_xlsx(path: Path, header: Sequence[str], rows: AsyncIterator[Sequence[object]],
                     *, batch: int = 2000) -> int:
    """Write an XLSX workbook of ``rows`` to ``path`` (the sheet's limit at most); returns the count.

    The rows are turned into XML in a thread, a batch at a time, while the next
    batch is read: the event loop stays free for other requests.
    """
    add, close = await asyncio.to_thread(_xlsx_writer, path, header)
    pending: list[Sequence[object]] = []
    count = 0
    async for row in rows:
        if count >= XLSX_MAX_ROWS:
            break
        pending.append(row)
        count += 1
        if len(pending) >= batch:
            await asyncio.to_thread(add, pending)
            pending = []
    if pending:
        await asyncio.to_thread(add, pending)
    await asyncio.to_thread(close)
    return count


async def file_chunks(path: Path, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """A file's bytes in pieces, read in a thread."""
    handle = await asyncio.to_thread(open, path, "rb")
    try:
        while block := await asyncio.to_thread(handle.read, size):
            yield block
    finally:
        await asyncio.to_thread(handle.close)


# Contacts as rows (pure)

def contact_header(all_fields: Sequence[FieldDef], translate: Callable[[str], str]) -> list[str]:
    labels = []
    for spec in all_fields:
        labels.append(translate(spec.label) if spec.translate else spec.label)
    labels.append(translate(BLOCKED_LABEL))
    return labels


def contact_cells(contact: Any, all_fields: Sequence[FieldDef], group_names: Mapping[int, str],
                  user_names: Mapping[int, str], *, all_senders: str = "*") -> list[str]:
    """One contact as the cells of an export, in the order of ``all_fields``."""
    cells: list[str] = []
    for spec in all_fields:
        key = spec.key
        if key == "phone":
            cells.append(phones.display(contact.phone))
        elif key == "groups":
            cells.append(", ".join(group_names.get(g, str(g)) for g in contact.group_ids))
        elif key == "created":
            cells.append(contact.created_at.strftime("%Y-%m-%d %H:%M"))
        elif key == "updated":
            cells.append(contact.updated_at.strftime("%Y-%m-%d %H:%M"))
        elif key == "user":
            uid = contact.user_id
            cells.append(user_names.get(uid, "") if uid is not None else "")
        elif key == "birth_date":
            cells.append(contact.birth_date.isoformat() if contact.birth_date else "")
        elif key == "gender":
            cells.append(contact.gender or "")
        elif spec.kind == "builtin":
            cells.append(getattr(contact, key) or "")
        else:
            cells.append(display_value(spec.data_type, contact.fields.get(spec.variable)))
    cells.append(", ".join(all_senders if s == "*" else s for s in contact.blocked))
    return cells
