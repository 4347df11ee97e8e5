"""Text extraction for HTML, PDF and DOCX files into a canonical block-structured text.

Every extractor returns a :class:`Document` whose ``text`` is a sequence of blocks separated
by a blank line: each heading is one block (one line), each paragraph one block, with runs
of whitespace collapsed to single spaces.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import pdf
from .types import Document, Span

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")


class FormatError(ValueError):
    """A file could not be extracted; the message names the problem and the remedy."""


class _Builder:
    """Accumulates blocks into the canonical text, recording heading spans."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.headings: list[Span] = []

    def add(self, text: str, heading: bool = False) -> Span | None:
        """Append a block (whitespace collapsed); return its span, or None if it is empty."""
        text = _WS.sub(" ", text).strip()
        if not text:
            return None
        if self.parts:
            self.parts.append("\n\n")
            self.pos += 2
        span = Span(self.pos, self.pos + len(text))
        self.parts.append(text)
        self.pos = span.end
        if heading:
            self.headings.append(span)
        return span

    def document(self, path: Path, source: str, title: str, hint: str = "") -> Document:
        """Build the Document, or raise FormatError if no text was found."""
        if not self.parts:
            remedy = hint or "check the file has text content, or convert it to .txt"
            raise FormatError(f"{path.name}: no text found; {remedy}")
        text = "".join(self.parts)
        return Document(source=source, text=text, title=title, headings=self.headings)


# --- HTML -----------------------------------------------------------------------------------

_HTML_DROP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "title"}
_HTML_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HTML_BLOCKS = {
    "address", "article", "aside", "blockquote", "body", "caption", "dd", "details", "dialog",
    "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup",
    "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody",
    "td", "tfoot", "th", "thead", "tr", "ul",
}  # fmt: skip
_END_BLOCK, _END_HEADING = object(), object()
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def _is_hidden(tag: Any) -> bool:
    """An element the browser does not show: ``hidden`` attribute or an inline hiding style."""
    return tag.has_attr("hidden") or bool(_HIDDEN_STYLE.search(str(tag.get("style") or "")))


def extract_html(path: Path, source: str, data: bytes) -> Document:
    """Extract visible text from HTML: headings and block-level elements become blocks.

    Scripts, styles, ``<head>`` and elements hidden with ``hidden`` or an inline
    ``display: none`` / ``visibility: hidden`` style are left out.
    """
    from bs4 import BeautifulSoup, NavigableString, Tag
    from bs4.element import PreformattedString

    try:
        soup = BeautifulSoup(data, "html.parser")
    except Exception as e:  # bs4 is lenient; this is a last resort
        raise FormatError(f"{path.name}: could not parse HTML ({e}); check the file") from e

    title_tag = soup.find("title")
    title = _WS.sub(" ", title_tag.get_text()).strip() if title_tag else ""
    h1 = soup.find("h1")
    h1_text = _WS.sub(" ", h1.get_text()).strip() if h1 else ""
    b = _Builder()
    if title and title != h1_text:
        b.add(title, heading=True)

    buf: list[str] = []
    # Iterative walk, so deeply nested markup cannot hit the recursion limit. The end markers
    # flush the direct text collected since the element (or its last block child) started.
    stack: list[Any] = [soup]
    in_heading = False
    while stack:
        node = stack.pop()
        if node is _END_BLOCK or node is _END_HEADING:
            b.add("".join(buf), heading=node is _END_HEADING)
            buf.clear()
            in_heading = in_heading and node is not _END_HEADING
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctype, CDATA, ...
                buf.append(str(node))
        elif isinstance(node, Tag):
            name = (node.name or "").lower()
            if name in _HTML_DROP or _is_hidden(node):
                continue
            if name == "br":
                buf.append(" ")
                continue
            if not in_heading and (name in _HTML_HEADINGS or name in _HTML_BLOCKS):
                b.add("".join(buf))
                buf.clear()
                in_heading = name in _HTML_HEADINGS
                stack.append(_END_HEADING if in_heading else _END_BLOCK)
            stack.extend(reversed(node.contents))
    b.add("".join(buf))
    return b.document(path, source, title or h1_text)


# --- PDF ------------------------------------------------------------------------------------


def _pdf_paragraphs(page_text: str, evidence: pdf.HyphenEvidence | None = None) -> list[str]:
    """Split a page's text on blank lines, de-hyphenate and join hard-wrapped lines."""
    return pdf.paragraphs(page_text, evidence)


def _pdf_dependency_error(name: str, e: Exception) -> FormatError:
    """The reason for pypdf's DependencyError: AES without ``cryptography``, or another library."""
    if "AES" in str(e) or "cryptography" in str(e):
        return FormatError(
            f"{name}: PDF uses AES encryption; install 'cryptography' "
            "(pip install -r requirements.txt) or decrypt it (e.g. qpdf --decrypt) and add it again"
        )
    return FormatError(f"{name}: PDF needs a library that is not installed ({e}); install it")


def extract_pdf(path: Path, source: str, data: bytes) -> Document:
    """Extract text page by page with pypdf; ``pages`` maps spans to 1-based page numbers.

    Encrypted PDFs (RC4 or AES, the latter through ``cryptography``) are opened with the empty
    user password; a PDF that needs a real password raises FormatError naming the cause.
    """
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    name = path.name
    try:
        reader = PdfReader(io.BytesIO(data))  # opens an encrypted file with the empty password
        if reader.is_encrypted and not reader.decrypt(""):
            raise FormatError(
                f"{name}: PDF is password-protected; decrypt it (e.g. qpdf --decrypt) "
                "and add it again"
            )
        pages = list(reader.pages)
    except FormatError:
        raise
    except DependencyError as e:
        raise _pdf_dependency_error(name, e) from e
    except Exception as e:
        raise FormatError(
            f"{name}: PDF is corrupt or unreadable ({type(e).__name__}: {e}); "
            "re-export or repair it (e.g. qpdf) and add it again"
        ) from e

    title = ""
    try:
        meta = reader.metadata
        title = _WS.sub(" ", str(meta.title or "")).strip() if meta else ""
    except Exception as e:  # noqa: BLE001 - metadata is optional; pypdf may raise anything
        log.debug("%s: unreadable PDF metadata: %s", name, e)

    page_lines: list[list[str]] = []
    for number, page in enumerate(pages, start=1):
        try:
            plain = page.extract_text() or ""
        except DependencyError as e:  # AES streams are decrypted lazily, page by page
            raise _pdf_dependency_error(name, e) from e
        except Exception as e:  # noqa: BLE001 - one malformed page must not lose the others
            log.warning("%s: could not extract text from page %d: %s", name, number, e)
            plain = ""
        page_lines.append(pdf.page_lines(page, plain, name, number) if plain.strip() else [])
    page_lines, dropped = pdf.drop_running_lines(page_lines)
    evidence = pdf.HyphenEvidence(line for lines in page_lines for line in lines)

    b = _Builder()
    spans: list[tuple[int, int, int]] = []
    for number, lines in enumerate(page_lines, start=1):
        added = [s for s in (b.add(p) for p in _pdf_paragraphs("\n".join(lines), evidence)) if s]
        if added:
            spans.append((added[0].start, added[-1].end, number))
    doc = b.document(
        path,
        source,
        title,
        hint="the PDF may be scanned images; run OCR (e.g. ocrmypdf) and add it again",
    )
    doc.pages = spans
    log.debug(
        "%s: %d pages, %d with text; %d running header, footer or page-number lines left out",
        name,
        len(pages),
        len(spans),
        dropped,
    )
    return doc


# --- DOCX -----------------------------------------------------------------------------------


def _docx_blocks(container: Any) -> Iterator[tuple[str, bool]]:
    """Yield (text, is_heading) for paragraphs and table cells, in document order."""
    from docx.table import Table

    for item in container.iter_inner_content():
        if isinstance(item, Table):
            yield from _docx_table(item)
        else:
            style = (item.style.name if item.style is not None else "") or ""
            yield item.text, style.startswith("Heading") or style == "Title"


def _docx_table(table: Any) -> Iterator[tuple[str, bool]]:
    """Yield each distinct cell's text as a paragraph, recursing into nested tables."""
    seen: set[Any] = set()  # holds the elements themselves, so identity stays meaningful
    for row in table.rows:
        for cell in row.cells:
            if cell._tc in seen:  # merged cells repeat the same element
                continue
            seen.add(cell._tc)
            yield " ".join(p.text for p in cell.paragraphs), False
            for nested in cell.tables:
                yield from _docx_table(nested)


def extract_docx(path: Path, source: str, data: bytes) -> Document:
    """Extract paragraphs (Heading*/Title styles as headings) and table cells from DOCX."""
    import docx

    try:
        d = docx.Document(io.BytesIO(data))
        blocks = list(_docx_blocks(d))
        title = (d.core_properties.title or "").strip()
    except Exception as e:
        raise FormatError(
            f"{path.name}: DOCX is corrupt or unreadable ({type(e).__name__}: {e}); "
            "re-save it from a word processor and add it again"
        ) from e
    b = _Builder()
    for text, heading in blocks:
        span = b.add(text, heading=heading)
        if span and heading and not title:
            title = b.parts[-1]
    return b.document(path, source, _WS.sub(" ", title))


EXTRACTORS: dict[str, Callable[[Path, str, bytes], Document]] = {
    ".html": extract_html,
    ".htm": extract_html,
    ".pdf": extract_pdf,
    ".docx": extract_docx,
}

__all__ = ["EXTRACTORS", "FormatError", "extract_docx", "extract_html", "extract_pdf"]
