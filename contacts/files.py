"""Reading contact files: CSV, XLS and XLSX as rows of cells, one row at a time.

What a file is comes from its first bytes, not its name: a ZIP is XLSX, an
OLE2 compound file is XLS, anything else must be CSV text. Every refusal is
:class:`FileRefused` with a reason code and a message id the portal shows:

* larger than 10 MB (the portal stops reading at 10 MB and one byte);
* CSV that is not UTF-8 (a BOM may say UTF-8 or UTF-16), holds NUL bytes,
  an unclosed quote, or a row with more cells than the first row (a file that
  is no regular table: every later row would be read into the wrong fields);
  rows with fewer cells are completed with empty ones, as spreadsheets write them;
* XLSX that is no sound ZIP, or a ZIP bomb: more than 2,000 entries, more than
  250 MB unpacked, or an entry packed more than 200 to 1 (a spreadsheet's XML
  packs about 10 to 1). The sizes checked are the ones the ZIP declares, and
  Python's zipfile stops reading an entry at its declared size, so a lying
  header cannot unpack more. XML is parsed through defusedxml (openpyxl uses it
  when installed): no entity expansion, no external entities;
* XLS that xlrd cannot read.

Readers stream: CSV is decoded and split as it is read, XLSX through
openpyxl's read-only mode (rows as the sheet's XML is parsed), XLS row by row
from xlrd's parsed book (an XLS file holds at most 65,536 rows).
Cells come as text (CSV) or as the spreadsheet's values (numbers, dates).
"""

from __future__ import annotations

import codecs
import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from contacts.text import N_

MAX_BYTES = 10 * 1024 * 1024
KINDS = ("csv", "xls", "xlsx")
MAX_COLUMNS = 100
MAX_CELL = 10_000
ZIP_MAX_ENTRIES = 2000
ZIP_MAX_TOTAL = 250 * 1024 * 1024
ZIP_MAX_RATIO = 200
_XLS_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC = b"PK\x03\x04"
_CSV_DELIMITERS = ",;\t|"

csv.field_size_limit(MAX_CELL)


class FileRefused(ValueError):
    """A file that cannot be imported; ``message`` is a message id, ``line`` where it broke."""

    def __init__(self, reason: str, message: str, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.message = message
        self.line = line


MESSAGES = {
    "too_large": N_("The file is larger than 10 MB."),
    "empty": N_("The file is empty."),
    "encoding": N_("The file is not UTF-8 text. Save it as CSV UTF-8 and upload it again."),
    "nul": N_("The file holds NUL characters: it is not a text file."),
    "quote": N_("A quote opened on this line is never closed."),
    "ragged": N_("This line has more cells than the first line: the file is not a regular table."),
    "too_many_columns": N_("The file has more than 100 columns."),
    "cell_too_long": N_("A cell on this line is longer than 10,000 characters."),
    "zip_bomb": N_("The file unpacks to far more than a spreadsheet holds. It was not opened."),
    "bad_xlsx": N_("The file is not a readable XLSX workbook."),
    "bad_xls": N_("The file is not a readable XLS workbook."),
    "no_sheet": N_("The workbook has no sheet with rows."),
}


def refuse(reason: str, line: int | None = None) -> FileRefused:
    return FileRefused(reason, MESSAGES[reason], line)


def sniff(head: bytes) -> str:
    """The kind of a file from its first bytes."""
    if not head:
        raise refuse("empty")
    if head.startswith(_ZIP_MAGIC):
        return "xlsx"
    if head.startswith(_XLS_MAGIC):
        return "xls"
    return "csv"


# CSV

def _encoding(head: bytes) -> tuple[str, int]:
    """(codec, BOM length) of a CSV file from its first bytes."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE) or head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16", 0  # the codec reads the BOM itself
    return "utf-8", 0


def _dialect(sample: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(sample, delimiters=_CSV_DELIMITERS)
    except csv.Error:
        return csv.excel


def _text_lines(handle, codec: str, skip: int) -> Iterator[str]:
    handle.seek(skip)
    decoder = codecs.getincrementaldecoder(codec)(errors="strict")
    pending = ""
    line = 1
    while True:
        block = handle.read(256 * 1024)
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError:
            raise refuse("encoding", line) from None
        if "\x00" in text:
            raise refuse("nul", line + (pending + text)[: (pending + text).index("\x00")].count("\n"))
        pending += text
        parts = pending.splitlines(keepends=True)
        if block and parts and not parts[-1].endswith(("\n", "\r")):
            pending = parts.pop()
        else:
            pending = ""
        for part in parts:
            line += 1
            yield part
        if not block:
            if pending:
                yield pending
            return


def _csv_rows(handle) -> Iterator[tuple[int, list]]:
    head = handle.read(64 * 1024)
    if not head.strip():
        raise refuse("empty")
    codec, skip = _encoding(head)
    sample = head[skip:].decode(codec, errors="ignore")
    dialect = _dialect(sample)
    reader = csv.reader(_text_lines(handle, codec, skip), dialect, strict=True)
    width = None
    number = 0
    try:
        for cells in reader:
            number = reader.line_num
            if not cells or all(not c.strip() for c in cells):
                continue
            if width is None:
                width = len(cells)
                if width > MAX_COLUMNS:
                    raise refuse("too_many_columns", number)
            elif len(cells) > width:
                if any(c.strip() for c in cells[width:]):
                    raise refuse("ragged", number)
                cells = cells[:width]
            elif len(cells) < width:
                cells += [""] * (width - len(cells))
            yield number, cells
    except csv.Error as exc:
        text = str(exc)
        if "field larger" in text:
            raise refuse("cell_too_long", reader.line_num) from None
        if "NUL" in text:
            raise refuse("nul", reader.line_num) from None
        raise refuse("quote", reader.line_num) from None


def check_csv(path: Path) -> None:
    """Read a whole CSV file once: encoding, quotes, ragged rows (refused with the line)."""
    with open(path, "rb") as handle:
        for _ in _csv_rows(handle):
            pass


# XLSX

def check_zip(path: Path) -> None:
    """Refuse a ZIP that is broken or unpacks far more than a spreadsheet would."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            if len(entries) > ZIP_MAX_ENTRIES:
                raise refuse("zip_bomb")
            total = 0
            for entry in entries:
                total += entry.file_size
                if entry.file_size > ZIP_MAX_TOTAL or total > ZIP_MAX_TOTAL:
                    raise refuse("zip_bomb")
                if entry.file_size > 1024 * 1024 and entry.file_size > ZIP_MAX_RATIO * max(entry.compress_size, 1):
                    raise refuse("zip_bomb")
            if "xl/workbook.xml" not in {e.filename for e in entries}:
                raise refuse("bad_xlsx")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
        raise refuse("bad_xlsx") from None


def _xlsx_rows(path: Path, reader: RowReader | None = None) -> Iterator[tuple[int, list]]:
    import openpyxl

    check_zip(path)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:  # openpyxl raises many kinds for a broken workbook
        raise refuse("bad_xlsx") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise refuse("no_sheet")
        if reader is not None:
            reader.size = sheet.max_row or 0  # from the sheet's dimension, when it has one
        width = None
        try:
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                if reader is not None:
                    reader.position = number
                cells = list(values)
                while cells and (cells[-1] is None or cells[-1] == ""):
                    cells.pop()
                if not cells:
                    continue
                if width is None:
                    width = len(cells)
                    if width > MAX_COLUMNS:
                        raise refuse("too_many_columns", number)
                elif len(cells) > width:
                    raise refuse("ragged", number)
                cells += [None] * (width - len(cells))
                yield number, cells
        except FileRefused:
            raise
        except Exception:
            raise refuse("bad_xlsx") from None
    finally:
        book.close()


# XLS

def _xls_rows(path: Path, reader: RowReader | None = None) -> Iterator[tuple[int, list]]:
    import xlrd

    try:
        book = xlrd.open_workbook(str(path), on_demand=True)
    except Exception:  # xlrd raises XLRDError, CompDocError, struct errors…
        raise refuse("bad_xls") from None
    try:
        if book.nsheets == 0:
            raise refuse("no_sheet")
        try:
            sheet = book.sheet_by_index(0)
        except Exception:
            raise refuse("bad_xls") from None
        if reader is not None:
            reader.size = sheet.nrows
        width = None
        for index in range(sheet.nrows):
            number = index + 1
            if reader is not None:
                reader.position = number
            cells = []
            for cell in sheet.row(index):
                if cell.ctype == xlrd.XL_CELL_DATE:
                    try:
                        cells.append(xlrd.xldate_as_datetime(cell.value, book.datemode))
                    except Exception:
                        cells.append(cell.value)
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    cells.append(None)
                elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                    cells.append(bool(cell.value))
                elif cell.ctype == xlrd.XL_CELL_ERROR:
                    cells.append(None)
                else:
                    cells.append(cell.value)
            while cells and (cells[-1] is None or cells[-1] == ""):
                cells.pop()
            if not cells:
                continue
            if width is None:
                width = len(cells)
                if width > MAX_COLUMNS:
                    raise refuse("too_many_columns", number)
            elif len(cells) > width:
                raise refuse("ragged", number)
            cells += [None] * (width - len(cells))
            yield number, cells
    finally:
        book.release_resources()


@dataclass
class RowReader:
    """Rows of one file: ``rows()`` yields (line or row number, cells); ``position`` / ``size``
    tell how far the reading is (bytes of the file for CSV, rows for spreadsheets)."""

    path: Path
    kind: str

    def __post_init__(self) -> None:
        self.size = self.path.stat().st_size
        self._position = 0
        self._handle = None  # CSV: the open file, whose offset is the position

    @property
    def position(self) -> int:
        return self._handle.tell() if self._handle is not None else self._position

    @position.setter
    def position(self, value: int) -> None:
        self._position = value

    def rows(self) -> Iterator[tuple[int, list]]:
        if self.kind == "csv":
            with open(self.path, "rb") as handle:
                self._handle = handle
                yield from _csv_rows(handle)
                self._handle = None
        elif self.kind == "xlsx":
            yield from _xlsx_rows(self.path, self)
        elif self.kind == "xls":
            yield from _xls_rows(self.path, self)
        else:
            raise refuse("bad_xlsx")
        self.position = self.size


def preview(path: Path, kind: str, limit: int = 6) -> list[list[str]]:
    """The first rows of a file as text, for the mapping step."""
    from contacts.fields import display_value

    rows = []
    reader = RowReader(path, kind)
    for _, cells in reader.rows():
        rows.append([display_value("text", c)[:200] for c in cells])
        if len(rows) >= limit:
            break
    return rows
