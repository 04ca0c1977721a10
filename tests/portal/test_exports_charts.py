"""Downloads that cannot run formulas, and the geometry of the SVG charts. Pure."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from openpyxl import load_workbook

from portal import charts, exports

HOSTILE = ["=1+1", "+1", "-2+3", "@SUM(A1)", "\tx", "\rx", "plain", "a=b"]


def test_formulas_are_quoted_in_csv_and_xlsx():
    assert [exports.neutralise(v) for v in HOSTILE] == [
        "'=1+1", "'+1", "'-2+3", "'@SUM(A1)", "'\tx", "'\rx", "plain", "a=b"]
    assert exports.neutralise(-5) == -5 and exports.neutralise(None) is None
    moment = datetime(2026, 3, 1, 9, 15, tzinfo=UTC)
    body = exports.csv_header(["=Header", "b"]) + exports.csv_rows([[moment, True, None, *HOSTILE]])
    assert body.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0] == ["'=Header", "b"]
    assert rows[1][:3] == ["2026-03-01 09:15:00", "yes", ""] and rows[1][3] == "'=1+1"
    book = exports.XlsxFile(["=Header", "b"], title="Clicks")
    book.add([[moment, False, 7, *HOSTILE]] * 3)
    sheet = load_workbook(io.BytesIO(book.finish())).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][:2] == ("'=Header", "b") and len(values) == 4
    assert values[1][:4] == (datetime(2026, 3, 1, 9, 15), "no", 7, "'=1+1")
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_xlsx_stops_at_a_sheets_rows(monkeypatch):
    monkeypatch.setattr(exports, "XLSX_MAX_ROWS", 5)
    book = exports.XlsxFile(["a"])
    book.add([[n] for n in range(4)])
    book.add([[n] for n in range(4)])
    assert book.full and book.rows == 5
    assert len(list(load_workbook(io.BytesIO(book.finish())).active.iter_rows())) == 6  # and the header


def test_column_chart_geometry():
    chart = charts.column_chart([(f"d{n}", v) for n, v in enumerate([0, 3, 7, 1])], width=400, height=200)
    assert chart.total == 11 and not chart.empty
    tallest = max(chart.columns, key=lambda c: c.height)
    assert tallest.value == 7 and tallest.y + tallest.height == chart.grid[0][0]  # bars stand on the axis
    assert chart.grid[-1][1] == 8 and chart.grid[-1][0] < tallest.y  # a round top above the tallest bar
    assert all(c.x + c.width <= 400 for c in chart.columns)
    assert [c.x for c in chart.columns] == sorted(c.x for c in chart.columns)
    many = charts.column_chart([(str(n), 1) for n in range(30)], max_ticks=6)
    assert 1 <= sum(1 for c in many.columns if c.tick) <= 6
    assert charts.column_chart([("a", 0)]).empty


def test_shares_merge_the_tail():
    items = [("iOS", 50), ("Android", 30), ("Windows", 10), ("Linux", 5), ("Mac OS X", 3), ("Other", 2)]
    found = charts.shares(items, limit=4)
    assert [(s.name, s.value) for s in found] == [("iOS", 50), ("Android", 30), ("Windows", 10), ("Other", 10)]
    assert found[0].width == 100 and found[0].percent == 50.0 and round(sum(s.percent for s in found)) == 100
    assert charts.shares([]) == []
