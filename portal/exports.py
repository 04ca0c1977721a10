"""Downloads of tabular data as CSV or XLSX, safe to open in a spreadsheet.

Text that a spreadsheet would read as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) gets a leading apostrophe, in both
formats: a value a tenant or a visitor typed (a campaign name, a User-Agent,
a referrer) must never run as a formula on the machine of whoever opens the
report (OWASP "CSV injection"). Numbers and dates stay numbers and dates.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from openpyxl import Workbook

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
XLSX_MAX_ROWS = 1_048_575  # a sheet's rows, less the header
CSV_TYPE = "text/csv"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def neutralise(value: Any) -> Any:
    """``value`` as a cell: text that could start a formula is quoted; other types as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if value is None:
        return ""
    return neutralise(value if not isinstance(value, bool) else ("yes" if value else "no"))


def _csv_text(rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buffer.getvalue()


def csv_header(header: Sequence[str]) -> bytes:
    """The first line of a CSV file, after a byte order mark (Excel reads UTF-8 by it)."""
    return ("\ufeff" + _csv_text([header])).encode()


def csv_rows(rows: Iterable[Sequence[Any]]) -> bytes:
    """Lines of a CSV file: stream a large file as header, then chunks of rows."""
    return _csv_text(rows).encode()


def _xlsx_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)  # Excel has no time zones: the header says UTC
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is not None and not isinstance(value, int | float | str):
        value = str(value)
    return neutralise(value)


class XlsxFile:
    """An XLSX workbook of one sheet, written a chunk of rows at a time (openpyxl's
    write-only mode keeps memory flat); at most :data:`XLSX_MAX_ROWS` rows. Its methods
    are plain Python work: a server calls them in a worker thread."""

    def __init__(self, header: Sequence[str], *, title: str = "Report") -> None:
        self.book = Workbook(write_only=True)
        self.sheet = self.book.create_sheet(title=title[:31] or "Report")
        self.sheet.append([neutralise(h) for h in header])
        self.rows = 0

    @property
    def full(self) -> bool:
        return self.rows >= XLSX_MAX_ROWS

    def add(self, rows: Iterable[Sequence[Any]]) -> None:
        for row in rows:
            if self.full:
                return
            self.sheet.append([_xlsx_cell(v) for v in row])
            self.rows += 1

    def finish(self) -> bytes:
        out = io.BytesIO()
        self.book.save(out)
        return out.getvalue()


def xlsx_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "Report") -> bytes:
    """An XLSX workbook of ``rows`` under ``header`` (see :class:`XlsxFile`)."""
    book = XlsxFile(header, title=title)
    book.add(rows)
    return book.finish()
