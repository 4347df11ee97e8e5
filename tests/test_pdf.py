"""Tests for chatbot.pdf: PDF text as a reader sees it (reading order, running lines, hyphens)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pypdf import PdfReader

from chatbot import pdf
from chatbot.formats import extract_pdf
from chatbot.pdf import HyphenEvidence, dehyphenate, drop_running_lines, is_page_number
from chatbot.splitter import split_document
from chatbot.types import Document

from .test_formats import pdf_esc, pdf_from_streams

# (x, y, font size, text): one text line at a position, in content-stream order.
Item = tuple[float, float, float, str]


def positioned_pdf(pages: list[list[Item]]) -> bytes:
    """A minimal PDF drawing each item with ``Tm``/``Tj`` inside one BT/ET per page, in the
    given order (so a test decides the content-stream order, not the visual one)."""
    streams = []
    for items in pages:
        ops = ["BT", *(f"/F1 {s} Tf 1 0 0 1 {x} {y} Tm ({pdf_esc(t)}) Tj" for x, y, s, t in items)]
        streams.append("\n".join([*ops, "ET"]).encode())
    return pdf_from_streams(streams)


def extract(tmp_path: Path, data: bytes, name: str = "paper.pdf") -> Document:
    path = tmp_path / name
    path.write_bytes(data)
    return extract_pdf(path, f"docs/{name}", data)


# --- A generated two-column paper -----------------------------------------------------------

TITLE = "Reading Order of Two-Column Papers"
HEADER = "Proceedings of Imaginary Results, Vol. 3"
# Per page: the left column's lines, then the right column's (10 pt Helvetica, 12 pt leading).
COLUMNS = [
    (
        [
            "Readers take the left column first and",
            "read it from the top to the bottom of the",
            "page. Careful extraction keeps the hyphen-",
            "ation of words out of the indexed text.",
            "This paragraph ends here.",
        ],
        [
            "The right column comes second. Its lines",
            "were written interleaved with the left",
            "ones, so the naive order mixes them up.",
            "Papers are often set in such a layout.",
            "Nothing else is on this page.",
        ],
    ),
    (
        [
            "Each page of a two-",
            "column paper has a gutter between the",
            "columns that no line of the text crosses,",
            "and the extraction looks for that gap.",
            "The second page goes on.",
        ],
        [
            "Its right column follows the left one",
            "in the text that passages are cut from,",
            "so every quoted passage reads the way a",
            "person would read it on the printed page.",
            "That is what the reader expects.",
        ],
    ),
    (
        [
            "The third page has a running header at",
            "the top and a page number at the bottom",
            "as well, both repeated on every page and",
            "both left out of the passages by design.",
            "Only the prose remains.",
        ],
        [
            "The last column closes the paper with a",
            "short summary of what was shown above,",
            "which is that column order, hyphens and",
            "page furniture are handled as a reader",
            "would handle them.",
        ],
    ),
]


def two_column_paper() -> bytes:
    """Three pages: a right-aligned running header, a full-width title on page 1, two columns
    whose lines are drawn interleaved (left 1, right 1, left 2, ...), and a page number."""
    pages = []
    for number, (left, right) in enumerate(COLUMNS, start=1):
        items: list[Item] = [(350, 760, 9, HEADER)]
        if number == 1:
            items.append((150, 720, 16, TITLE))
        y = 680
        for a, b in zip(left, right, strict=True):
            items += [(72, y, 10, a), (320, y, 10, b)]
            y -= 12
        items.append((300, 40, 10, f"- {number} -"))
        pages.append(items)
    return positioned_pdf(pages)


def prose(lines: list[str]) -> str:
    """Lines joined as a reader reads them: the syllable break joined, the compound kept."""
    text = " ".join(lines)
    return text.replace("hyphen- ation", "hyphenation").replace("two- column", "two-column")


# Page 1 keeps its copy of the running header (a first page's lines may be its title); pages 2
# and 3 lose theirs, and every page its number.
EXPECTED = [
    HEADER,
    TITLE,
    *(para for left, right in COLUMNS for para in (prose(left), prose(right))),
]


def test_naive_order_of_the_generated_paper_interleaves_the_columns() -> None:
    plain = PdfReader(io.BytesIO(two_column_paper())).pages[0].extract_text()
    assert f"{COLUMNS[0][0][0]} {COLUMNS[0][1][0]}" in plain  # left line 1, right line 1


def test_two_column_paper_reads_in_reading_order(tmp_path: Path) -> None:
    doc = extract(tmp_path, two_column_paper())
    assert doc.text.split("\n\n") == EXPECTED
    assert doc.text.count(HEADER) == 1 and "- 1 -" not in doc.text and "- 2 -" not in doc.text
    assert "hyphenation of words" in doc.text and "a two-column paper" in doc.text
    assert [n for _, _, n in doc.pages] == [1, 2, 3]
    starts = [doc.text[s:e].split("\n\n")[0] for s, e, _ in doc.pages]
    assert starts == [HEADER, EXPECTED[4], EXPECTED[6]]
    assert doc.pages[-1][1] == len(doc.text)


def test_two_column_passages_are_verbatim(tmp_path: Path) -> None:
    doc = extract(tmp_path, two_column_paper())
    passages = split_document(doc)
    assert passages
    for p in passages:
        assert p.text == doc.text[p.start : p.end]
        page = next(n for s, e, n in doc.pages if s <= p.start < e)
        assert p.page == page
        assert HEADER not in p.text or page == 1


def test_unreadable_positions_fall_back_to_plain_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(page: object) -> list[pdf.Fragment]:
        raise KeyError("/Font")

    monkeypatch.setattr(pdf, "fragments", broken)
    doc = extract(tmp_path, two_column_paper())
    assert f"{COLUMNS[0][0][0]} {COLUMNS[0][1][0]}" in doc.text  # pypdf's order, as before
    assert doc.text.count(HEADER) == 1  # running lines still go


def test_single_column_page_keeps_plain_order(tmp_path: Path) -> None:
    lines = [
        "A single column of prose runs across the whole width of the page, line after line,",
        "and nothing about it looks like two columns to the extraction, so the text stays in",
        "the order pypdf gives, exactly as before this change was made to the extractor here.",
    ]
    items = [(72, 700 - 14 * i, 10, line) for i, line in enumerate(lines * 3)]
    doc = extract(tmp_path, positioned_pdf([items]))
    assert doc.text == " ".join(lines * 3)


def test_table_of_short_cells_is_not_read_as_columns(tmp_path: Path) -> None:
    rows = [("Dose", "10 mg"), ("Route", "oral"), ("Interval", "daily"), ("Duration", "7 days")]
    rows += [("Storage", "cool"), ("Form", "tablet"), ("Maker", "none")]
    items: list[Item] = []
    for i, (key, value) in enumerate(rows):
        items += [(72, 700 - 14 * i, 10, key), (320, 700 - 14 * i, 10, value)]
    doc = extract(tmp_path, positioned_pdf([items]))
    assert doc.text == " ".join(f"{k} {v}" for k, v in rows)  # row by row, as pypdf reads it


# --- Hyphenation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        ("an exam-\nple here", "an example here"),  # a syllable break
        ("Exam-\nples abound", "Examples abound"),  # capitalised at a sentence's start
        ("the COVID-\n19 pandemic", "the COVID-19 pandemic"),  # an acronym and a number
        ("serum IL-\n6 levels", "serum IL-6 levels"),
        ("HIV-\npositive adults", "HIV-positive adults"),  # an acronym before a word
        ("the Hodgkin-\nHuxley model", "the Hodgkin-Huxley model"),  # a capital goes on
        ("pages 12-\n14", "pages 12-14"),
        ("a dash -\nthen text", "a dash -\nthen text"),  # a spaced dash is no hyphen
    ],
)
def test_dehyphenate_without_evidence(text: str, joined: str) -> None:
    assert dehyphenate(text) == joined


def test_dehyphenate_keeps_compounds_the_document_writes() -> None:
    evidence = HyphenEvidence(
        [
            "Prevention of mother-to-child transmission in a two-column layout.",
            "An e-mail, or email, was sent.",
        ]
    )
    assert dehyphenate("of mother-\nto-child", evidence) == "of mother-to-child"
    assert dehyphenate("of mother-to-\nchild", evidence) == "of mother-to-child"
    assert dehyphenate("a two-\ncolumn page", evidence) == "a two-column page"
    assert dehyphenate("an exam-\nple", evidence) == "an example"  # no compound written
    assert dehyphenate("by e-\nmail", evidence) == "by email"  # both written: one word
    # A capitalised break is joined only when the document writes the word joined.
    evidence = HyphenEvidence(["Mark it OPTIONAL or CURRENT; see the Well-Known list."])
    assert dehyphenate("is OP-\nTIONAL", evidence) == "is OPTIONAL"
    assert dehyphenate("the Well-\nKnown list", evidence) == "the Well-Known list"
    assert dehyphenate("is OP-\nTIONAL") == "is OP-TIONAL"
    # Without the evidence the same break is read as a syllable break.
    assert dehyphenate("a two-\ncolumn page") == "a twocolumn page"


def test_document_evidence_comes_from_the_whole_pdf(tmp_path: Path) -> None:
    pages = [
        ["We compare two-column and single-column layouts.", "A two-", "column page reads."],
        ["Each exam-", "ple helps."],
    ]
    items = [[(72, 700 - 14 * i, 10, line) for i, line in enumerate(p)] for p in pages]
    doc = extract(tmp_path, positioned_pdf(items))
    assert doc.text.split("\n\n") == [
        "We compare two-column and single-column layouts. A two-column page reads.",
        "Each example helps.",
    ]


# --- Running headers, footers and page numbers ----------------------------------------------


@pytest.mark.parametrize("line", ["12", "- 12 -", "Page 3", "page 3 of 10", "3 of 10", "iv", "7/9"])
def test_is_page_number(line: str) -> None:
    assert is_page_number(line)


@pytest.mark.parametrize("line", ["12 patients", "Table 3", "In 2020", "Page three", "ivy"])
def test_is_not_page_number(line: str) -> None:
    assert not is_page_number(line)


def body(n: int) -> list[str]:
    """Three lines of page ``n``'s own text (told apart by words: digits normalise away)."""
    w = "abcdefghij"[n]
    return [f"Body {w} starts.", f"Body {w} goes on.", f"Body {w} ends."]


def test_running_header_and_footer_dropped_from_every_page() -> None:
    pages = [["Journal of Tests 2024", *body(n), f"Smith et al. page {n}"] for n in range(1, 6)]
    kept, dropped = drop_running_lines(pages)
    assert kept[0] == pages[0]  # page 1 keeps all but a page number (its title may repeat)
    assert kept[1:] == [body(n) for n in range(2, 6)] and dropped == 8


def test_alternating_running_heads_are_dropped() -> None:
    pages = [["A Study of Tests", "Smith and Jones", *body(1)]]
    for n in range(2, 9):  # even pages carry the authors, odd pages the short title
        pages.append(["Smith and Jones" if n % 2 == 0 else "A study of tests", *body(n), str(n)])
    kept, _ = drop_running_lines(pages)
    # Page 1's title and authors stay though the running heads repeat them.
    assert kept[0] == ["A Study of Tests", "Smith and Jones", *body(1)]
    assert kept[1:] == [body(n) for n in range(2, 9)]


def test_title_repeated_once_stays_on_the_first_page() -> None:
    pages = [["Annual Report", *body(1)], ["Annual Report", *body(2)], body(3), body(4)]
    kept, dropped = drop_running_lines(pages)
    assert kept == pages and dropped == 0
    kept, dropped = drop_running_lines(pages[:2])  # two pages: page 2's repeat goes
    assert kept == [pages[0], body(2)] and dropped == 1


def test_title_that_is_the_running_head_stays_on_the_first_page() -> None:
    pages = [["Shared MIME-info Database", "Thomas Leonard", *body(1)]]
    pages += [["Shared MIME-info Database", *body(n), str(n)] for n in range(2, 6)]
    kept, dropped = drop_running_lines(pages)
    assert kept == [pages[0], *(body(n) for n in range(2, 6))] and dropped == 8


def test_short_document_drops_a_header_on_two_pages() -> None:
    pages = [["Annual Report", *body(1)], ["Draft - do not cite", *body(2), "2"]]
    pages[0].append("Draft - do not cite")
    kept, dropped = drop_running_lines(pages)
    # Page 1 keeps its lines; page 2 loses the repeated line and its page number.
    assert kept == [pages[0], body(2)] and dropped == 2


def test_repeats_inside_the_page_and_single_pages_stay() -> None:
    pages = [[f"Intro {w}", *["Same line."] * 5, f"End {w}"] for w in ("a", "b", "c")]
    kept, _ = drop_running_lines(pages)
    assert kept[0] == pages[0]
    assert kept[1:] == [[f"Intro {w}", *["Same line."] * 3, f"End {w}"] for w in ("b", "c")]
    assert drop_running_lines([["Intro", "Text.", "12"]]) == ([["Intro", "Text.", "12"]], 0)
