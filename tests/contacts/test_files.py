"""Reading contact files: what is read, and what is refused with a clear reason."""

from __future__ import annotations

import io
from datetime import datetime

import pytest
from openpyxl import load_workbook

from contacts import export, files
from tests.contacts.files_helpers import write, xls_bytes, xlsx_bytes, zip_bomb


def rows(tmp_path, data: bytes, kind: str | None = None) -> list[tuple[int, list]]:
    kind = kind or files.sniff(data[:8])
    return list(files.RowReader(write(tmp_path, f"f.{kind}", data), kind).rows())


def test_sniff_by_content_not_name():
    assert files.sniff(b"PK\x03\x04rest") == "xlsx"
    assert files.sniff(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1") == "xls"
    assert files.sniff(b"phone\n") == "csv"
    with pytest.raises(files.FileRefused):
        files.sniff(b"")


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_csv_encodings_with_a_bom_or_utf8(tmp_path, encoding):
    text = "Phone;Name\n+447700900123;Ада\n+447700900124;Zoë\n"
    assert rows(tmp_path, text.encode(encoding)) == [
        (1, ["Phone", "Name"]), (2, ["+447700900123", "Ада"]), (3, ["+447700900124", "Zoë"])]


def test_csv_in_a_legacy_encoding_is_refused_with_its_line(tmp_path):
    data = "Phone,Name\n+447700900123,Ада\n".encode("cp1251")
    with pytest.raises(files.FileRefused) as err:
        files.check_csv(write(tmp_path, "f.csv", data))
    assert err.value.reason == "encoding"


def test_csv_short_rows_are_completed_long_ones_refused(tmp_path):
    assert rows(tmp_path, b"a,b,c\n1,2\n1,2,3,\n") == [(1, ["a", "b", "c"]), (2, ["1", "2", ""]), (3, ["1", "2", "3"])]
    with pytest.raises(files.FileRefused) as err:
        files.check_csv(write(tmp_path, "r.csv", b"a,b\n1,2\n1,2,3\n"))
    assert (err.value.reason, err.value.line) == ("ragged", 3)


@pytest.mark.parametrize(("data", "reason"), [
    (b"a,b\n1,\x002\n", "nul"),
    (b'a,b\n"1,2\n3,4\n', "quote"),
    (b"a,b\n1," + b"x" * 20_000 + b"\n", "cell_too_long"),
    (",".join(str(i) for i in range(101)).encode() + b"\n", "too_many_columns"),
    (b"   \n\n", "empty"),
])
def test_malformed_csv(tmp_path, data, reason):
    with pytest.raises(files.FileRefused) as err:
        files.check_csv(write(tmp_path, "m.csv", data))
    assert err.value.reason == reason


def test_xlsx_rows_keep_their_types(tmp_path):
    data = xlsx_bytes([["Phone", "Born", "Tier"], [447700900123, datetime(1990, 1, 2), 3], ["+447700900124"]])
    got = rows(tmp_path, data)
    assert got[0] == (1, ["Phone", "Born", "Tier"])
    assert got[1] == (2, [447700900123, datetime(1990, 1, 2), 3])
    assert got[2] == (3, ["+447700900124", None, None])


def test_legacy_xls(tmp_path):
    data = xls_bytes([["Phone", "Born"], ["+447700900123", datetime(1990, 1, 2)], [447700900124.0, ""]])
    got = rows(tmp_path, data)
    assert got == [(1, ["Phone", "Born"]), (2, ["+447700900123", datetime(1990, 1, 2)]), (3, [447700900124.0, None])]


def test_zip_bomb_disguised_as_xlsx_is_not_opened(tmp_path):
    data = zip_bomb()
    assert len(data) < files.MAX_BYTES
    with pytest.raises(files.FileRefused) as err:
        rows(tmp_path, data, "xlsx")
    assert err.value.reason == "zip_bomb"


@pytest.mark.parametrize(("data", "kind", "reason"), [
    (b"PK\x03\x04 not really a zip", "xlsx", "bad_xlsx"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 broken", "xls", "bad_xls"),
])
def test_broken_workbooks(tmp_path, data, kind, reason):
    with pytest.raises(files.FileRefused) as err:
        rows(tmp_path, data, kind)
    assert err.value.reason == reason


def test_xlsx_with_an_xml_entity_bomb_is_refused(tmp_path):
    good = io.BytesIO(xlsx_bytes([["Phone"], ["+447700900123"]]))
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            body = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                body = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
                        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + body.split(b"?>", 1)[-1])
            dst.writestr(item, body)
    with pytest.raises(files.FileRefused) as err:
        rows(tmp_path, out.getvalue(), "xlsx")
    assert err.value.reason == "bad_xlsx"


async def _aiter(items):
    for item in items:
        yield item


async def test_exports_neutralise_formulas(tmp_path):
    hostile = ['=HYPERLINK("http://evil.test","Click")', "+447700900123", "@SUM(A1:A9)"]
    body = b"".join([c async for c in export.csv_chunks(["Phone", "Comment"], _aiter([hostile[1:], hostile[:1]]))])
    text = body.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "+447700900123" in text and "'@SUM" in text
    path = tmp_path / "x.xlsx"
    assert await export.write_xlsx(path, ["Comment"], _aiter([[hostile[0]], ["=1+1"]])) == 2
    sheet = load_workbook(path).active
    cells = [row[0] for row in sheet.iter_rows(min_row=2)]
    assert [c.data_type for c in cells] == ["s", "s"]
    assert [c.value for c in cells] == ["'" + hostile[0], "'=1+1"]
