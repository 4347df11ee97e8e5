"""Tests for chatbot.formats: HTML, PDF and DOCX extraction into canonical block text."""

from __future__ import annotations

import io
import random
import subprocess
import sys
from pathlib import Path

import docx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from chatbot.config import Settings
from chatbot.formats import (
    EXTRACTORS,
    FormatError,
    _pdf_paragraphs,
    extract_docx,
    extract_html,
    extract_pdf,
)
from chatbot.types import Document


def pdf_esc(s: str) -> str:
    """``s`` as a PDF string literal's content."""
    return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def pdf_from_streams(streams: list[bytes], title: str = "") -> bytes:
    """A minimal valid PDF: one page per content stream (Helvetica as /F1)."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(streams)))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(streams)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, stream in enumerate(streams):
        objs.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (5 + 2 * i)
        )
        objs.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    info = ""
    if title:
        objs.append(f"<< /Title ({pdf_esc(title)}) >>".encode())
        info = f" /Info {len(objs)} 0 R"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (num, obj)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R{info} >>\n".encode()
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def make_pdf(pages: list[list[str]], title: str = "") -> bytes:
    """A minimal valid PDF: one Helvetica line per string, one page per list."""
    streams = [
        "\n".join(
            ["BT /F1 12 Tf 72 720 Td 14 TL", *(f"({pdf_esc(x)}) Tj T*" for x in lines), "ET"]
        ).encode()
        for lines in pages
    ]
    return pdf_from_streams(streams, title)


def encrypt(pdf: bytes, user_password: str, algorithm: str = "RC4-128") -> bytes:
    """``pdf`` encrypted by pypdf; the AES algorithms need the ``cryptography`` package."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.encrypt(user_password, owner_password="owner", algorithm=algorithm)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def blocks(doc: Document) -> list[str]:
    return doc.text.split("\n\n")


def heading_texts(doc: Document) -> list[str]:
    return [doc.text[s.start : s.end] for s in doc.headings]


def check_invariants(doc: Document) -> None:
    """Blocks are non-empty, stripped, single-line; heading spans are whole blocks."""
    assert doc.text == doc.text.strip()
    for block in blocks(doc):
        assert block and block == block.strip() and "\n" not in block and "  " not in block
    for span in doc.headings:
        assert doc.text[span.start : span.end] in blocks(doc)
        assert span.start == 0 or doc.text[span.start - 2 : span.start] == "\n\n"


def run(tmp_path: Path, name: str, data: bytes) -> Document:
    path = tmp_path / name
    path.write_bytes(data)
    doc = EXTRACTORS[path.suffix](path, f"docs/{name}", path.read_bytes())
    assert doc.source == f"docs/{name}"
    check_invariants(doc)
    return doc


# --- HTML -----------------------------------------------------------------------------------

HTML = """<!DOCTYPE html>
<html><head>
  <meta charset="utf-8"><title>Café  Guide</title>
  <style>body { color: red; }</style>
  <script>alert(1)</script>
</head><body>
  <!-- a comment -->
  <noscript>Enable JS</noscript>
  <h1>Welcome   to the
     café</h1>
  <p>First   paragraph
     with <b>bold</b> text.</p>
  <ul><li>Item one</li><li>Item <em>two</em></li></ul>
  <div>Outer text<div>Inner text</div>tail text</div>
  <h2>Details</h2>
  <table><tr><th>Key</th><td>Value</td></tr></table>
  <script type="text/javascript">var hidden = "secret";</script>
  <div><p></p>   </div>
  <p>Line<br>break</p>
  <svg><text>svg text</text></svg>
</body></html>
"""


def test_html_exact_text(tmp_path: Path) -> None:
    doc = run(tmp_path, "page.html", HTML.encode("utf-8"))
    assert blocks(doc) == [
        "Café Guide",
        "Welcome to the café",
        "First paragraph with bold text.",
        "Item one",
        "Item two",
        "Outer text",
        "Inner text",
        "tail text",
        "Details",
        "Key",
        "Value",
        "Line break",
    ]
    assert doc.title == "Café Guide"
    assert heading_texts(doc) == ["Café Guide", "Welcome to the café", "Details"]
    for hidden in ("alert", "color", "secret", "Enable JS", "svg text", "comment"):
        assert hidden not in doc.text


def test_html_hidden_elements_are_dropped(tmp_path: Path) -> None:
    html = (
        b"<h1>Shown</h1><p>Visible text.</p><div hidden><p>Hidden attr.</p></div>"
        b'<p style="color: red; DISPLAY : none">No display.</p>'
        b'<span style="visibility:hidden">Invisible.</span><p>Also visible.</p>'
    )
    assert blocks(run(tmp_path, "h.html", html)) == ["Shown", "Visible text.", "Also visible."]


def test_html_title_equal_to_h1_not_repeated(tmp_path: Path) -> None:
    html = b"<html><head><title>Guide</title></head><body><h1>Guide</h1><p>Body.</p></body>"
    doc = run(tmp_path, "g.htm", html)
    assert doc.text == "Guide\n\nBody."
    assert doc.title == "Guide"
    assert heading_texts(doc) == ["Guide"]


def test_html_no_title_uses_h1_and_declared_charset(tmp_path: Path) -> None:
    html = '<meta charset="iso-8859-1"><h1>Résumé</h1><p>Naïve text</p>'.encode("latin-1")
    doc = run(tmp_path, "r.html", html)
    assert doc.text == "Résumé\n\nNaïve text"
    assert doc.title == "Résumé"


def test_html_deep_nesting(tmp_path: Path) -> None:
    html = "<div>" * 3000 + "deep" + "</div>" * 3000
    assert run(tmp_path, "deep.html", html.encode()).text == "deep"


def test_html_without_text_raises(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"^empty\.html: no text found; "):
        run(tmp_path, "empty.html", b"<html><script>x()</script><p>  </p></html>")


# --- PDF ------------------------------------------------------------------------------------

PAGES = [
    ["Hello world, this is an exam-", "ple of wrapping.", "Well-Known stays hyphen-", "Ated."],
    ["Page two text."],
]


def test_pdf_exact_text_and_pages(tmp_path: Path) -> None:
    doc = run(tmp_path, "report.pdf", make_pdf(PAGES, title="My Report"))
    # A syllable break is joined; before a capital the hyphen is the word's own and stays.
    first = "Hello world, this is an example of wrapping. Well-Known stays hyphen-Ated."
    assert doc.text == first + "\n\nPage two text."
    assert doc.title == "My Report"
    assert doc.headings == []
    assert doc.pages == [(0, len(first), 1), (len(first) + 2, len(doc.text), 2)]


def test_pdf_pages_partition_blocks(tmp_path: Path) -> None:
    pdf = make_pdf([["A."], [], ["B."], ["C."]])  # page 2 has no text
    doc = run(tmp_path, "p.pdf", pdf)
    assert doc.title == ""
    assert [(doc.text[s:e], n) for s, e, n in doc.pages] == [("A.", 1), ("B.", 3), ("C.", 4)]
    assert "\n\n".join(doc.text[s:e] for s, e, _ in doc.pages) == doc.text


def test_pdf_encrypted_raises(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"^locked\.pdf: PDF is password-protected; .*decrypt"):
        run(tmp_path, "locked.pdf", encrypt(make_pdf(PAGES), "secret"))


def test_pdf_empty_user_password_is_decrypted(tmp_path: Path) -> None:
    doc = run(tmp_path, "open.pdf", encrypt(make_pdf([["Readable."]]), ""))
    assert doc.text == "Readable." and doc.pages == [(0, 9, 1)]


def test_pdf_corrupt_raises(tmp_path: Path) -> None:
    data = b"%PDF-1.4\n" + random.Random(0).randbytes(2000)
    with pytest.raises(FormatError, match=r"^bad\.pdf: PDF is corrupt or unreadable"):
        run(tmp_path, "bad.pdf", data)


def test_pdf_without_text_suggests_ocr(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"^scan\.pdf: no text found; .*OCR"):
        run(tmp_path, "scan.pdf", make_pdf([[], []]))


def test_pdf_paragraphs() -> None:
    text = "One line\nwrapped  here.\n \nSecond exam-\nple; e-\nMail; 2-\n3.\r\n\r\nThird\n\n\n"
    assert _pdf_paragraphs(text) == [
        "One line wrapped here.",
        "Second example; e-Mail; 2-3.",
        "Third",
    ]


@given(st.text(alphabet=st.sampled_from("ab -\n\t\r.")))
def test_pdf_paragraphs_are_clean(text: str) -> None:
    for para in _pdf_paragraphs(text):
        assert para and para == para.strip() and "\n" not in para and "  " not in para


# --- DOCX -----------------------------------------------------------------------------------


def make_docx(core_title: str = "") -> bytes:
    d = docx.Document()
    d.core_properties.title = core_title
    d.add_paragraph("Annual  Report", style="Title")
    d.add_paragraph("Intro paragraph\twith a tab.")
    d.add_heading("Results", level=1)
    d.add_paragraph("")
    d.add_paragraph("Revenue grew.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([["Year", "Revenue"], ["2024", "10"]]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_heading("Outlook", level=2)
    d.add_paragraph("Stable.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def test_docx_exact_text(tmp_path: Path) -> None:
    doc = run(tmp_path, "report.docx", make_docx())
    assert blocks(doc) == [
        "Annual Report",
        "Intro paragraph with a tab.",
        "Results",
        "Revenue grew.",
        "Year",
        "Revenue",
        "2024",
        "10",
        "Outlook",
        "Stable.",
    ]
    assert heading_texts(doc) == ["Annual Report", "Results", "Outlook"]
    assert doc.title == "Annual Report"
    assert doc.pages == []


def test_docx_core_title_wins(tmp_path: Path) -> None:
    assert run(tmp_path, "t.docx", make_docx(core_title="Official")).title == "Official"


def test_docx_merged_cells_once(tmp_path: Path) -> None:
    d = docx.Document()
    table = d.add_table(rows=1, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Merged"
    table.cell(0, 2).text = "Other"
    buf = io.BytesIO()
    d.save(buf)
    assert run(tmp_path, "m.docx", buf.getvalue()).text == "Merged\n\nOther"


def test_docx_corrupt_raises(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"^bad\.docx: DOCX is corrupt or unreadable"):
        run(tmp_path, "bad.docx", b"PK\x03\x04 not really a zip")


def test_docx_empty_raises(tmp_path: Path) -> None:
    buf = io.BytesIO()
    docx.Document().save(buf)
    with pytest.raises(FormatError, match=r"^empty\.docx: no text found"):
        run(tmp_path, "empty.docx", buf.getvalue())


def test_extractors_keys() -> None:
    assert set(EXTRACTORS) == {".html", ".htm", ".pdf", ".docx"}
    assert EXTRACTORS[".htm"] is extract_html
    assert EXTRACTORS[".pdf"] is extract_pdf and EXTRACTORS[".docx"] is extract_docx
    assert issubclass(FormatError, ValueError)


# --- Encrypted PDFs -------------------------------------------------------------------------

ALGORITHMS = ["RC4-128", "AES-128", "AES-256"]
LOCKED = "PDF is password-protected; decrypt it (e.g. qpdf --decrypt) and add it again"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pdf_empty_user_password_any_algorithm_is_decrypted(tmp_path: Path, algorithm: str) -> None:
    pdf = encrypt(make_pdf(PAGES, title="Locked Report"), "", algorithm)
    doc = run(tmp_path, "open.pdf", pdf)
    assert doc.text.endswith("\n\nPage two text.") and doc.text.startswith("Hello world")
    assert doc.title == "Locked Report" and [n for _, _, n in doc.pages] == [1, 2]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pdf_user_password_is_refused_with_the_fix(tmp_path: Path, algorithm: str) -> None:
    with pytest.raises(FormatError) as info:
        run(tmp_path, "locked.pdf", encrypt(make_pdf(PAGES), "secret", algorithm))
    assert str(info.value) == f"locked.pdf: {LOCKED}"


def test_encrypted_pdfs_are_indexed(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from chatbot import store
    from chatbot.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    for algorithm in ALGORITHMS:
        text = f"Vitamin K2 text under {algorithm}."
        (docs / f"{algorithm}.pdf").write_bytes(encrypt(make_pdf([[text]]), "", algorithm))
    (docs / "locked.pdf").write_bytes(encrypt(make_pdf([["Secret."]]), "pw", "AES-256"))

    argv = ["index", "add", str(docs), "--model", fake_settings.model]
    assert main([*argv, "--index", fake_settings.index]) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("added 3 documents, ") and f"1 failed: locked.pdf: {LOCKED}" in out
    texts = sorted(d.text for d in store.load(fake_settings.index_dir).documents.values())
    assert texts == sorted(f"Vitamin K2 text under {a}." for a in ALGORITHMS)


_WITHOUT_CRYPTOGRAPHY = """
import sys
from pathlib import Path

sys.modules["cryptography"] = None  # as if it were not installed
from chatbot.formats import FormatError, extract_pdf

for path in map(Path, sys.argv[1:]):
    try:
        print(extract_pdf(path, path.name, path.read_bytes()).text)
    except FormatError as e:
        print(e)
"""


def test_aes_pdf_without_cryptography_names_the_cause(tmp_path: Path) -> None:
    paths = []
    for algorithm in ALGORITHMS:
        paths.append(tmp_path / f"{algorithm}.pdf")
        paths[-1].write_bytes(encrypt(make_pdf([["Readable."]]), "", algorithm))
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CRYPTOGRAPHY, *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    aes = "PDF uses AES encryption; install 'cryptography'"
    lines = result.stdout.splitlines()
    assert lines[0] == "Readable."  # RC4 needs no cryptography
    for algorithm, line in zip(ALGORITHMS[1:], lines[1:], strict=True):
        assert line.startswith(f"{algorithm}.pdf: {aes}") and "qpdf --decrypt" in line
