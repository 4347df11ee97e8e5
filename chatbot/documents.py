"""Loading documents: read a file into a :class:`Document` with its headings marked."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from .types import Document, Span

log = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt", ".md", ".markdown", ".text"}
BINARY_SUFFIXES = {".html", ".htm", ".pdf", ".docx"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | BINARY_SUFFIXES

_BLOCK_RE = re.compile(r"[^\r\n]+(?:\r?\n[ \t]*[^\s][^\r\n]*)*")
_MD_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_SENTENCE_END = tuple(".?!:;,\"'”’)]")


class DocumentError(ValueError):
    """A file that cannot be indexed; the message names the problem and the remedy."""


def iter_blocks(text: str) -> Iterator[Span]:
    """Yield paragraph blocks (runs of non-blank lines), stripped of surrounding whitespace."""
    for m in _BLOCK_RE.finditer(text):
        start, end = m.start(), m.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            yield Span(start, end)


def _is_text_heading(line: str) -> bool:
    """A plain-text heading: one short line, capitalised, not ending like a sentence."""
    words = line.split()
    return (
        0 < len(line) <= 90
        and len(words) <= 12
        and not line.endswith(_SENTENCE_END)
        and (line[0].isupper() or line[0].isdigit())
    )


def find_headings(text: str, markdown: bool) -> list[Span]:
    """Spans of heading lines: Markdown ``#`` lines, or short title-like single-line blocks."""
    headings: list[Span] = []
    for block in iter_blocks(text):
        chunk = text[block.start : block.end]
        if markdown:
            offset = block.start
            for line in chunk.splitlines(keepends=True):
                m = _MD_HEADING_RE.match(line.rstrip("\r\n"))
                if m:
                    headings.append(Span(offset + m.start(2), offset + m.end(2)))
                offset += len(line)
        elif "\n" not in chunk and _is_text_heading(chunk):
            headings.append(Span(block.start, block.end))
    return headings


def read_text(path: Path, data: bytes) -> str:
    """Decode text as UTF-8 (no newline translation); fall back to cp1252/latin-1 with a warning."""
    if not data.strip():
        raise DocumentError(f"{path.name}: file is empty; add some text or leave it out")
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{path.name}: looks binary, not text; convert it to .txt/.md first")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        for enc in ("cp1252", "latin-1"):
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                continue
            log.warning("%s is not valid UTF-8 (%s); decoded as %s", path.name, exc.reason, enc)
            break
    return text.removeprefix("\ufeff")


def load_document(path: Path, source: str | None = None, max_bytes: int | None = None) -> Document:
    """Read one file into a Document; raise DocumentError with the fix if it can't be used."""
    source = source or path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise DocumentError(
                f"{path.name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit; "
                "split the file or raise CHATBOT_MAX_FILE_MB"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    if suffix in BINARY_SUFFIXES:
        from .formats import EXTRACTORS

        return EXTRACTORS[suffix](path, source, data)
    text = read_text(path, data)
    headings = find_headings(text, markdown=suffix in {".md", ".markdown"})
    title = text[headings[0].start : headings[0].end] if headings else ""
    return Document(source=source, text=text, title=title, headings=headings)


def find_files(paths: Iterable[Path]) -> list[Path]:
    """Expand files and folders (recursively) into supported files, sorted, hidden ones skipped."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                hidden = any(part.startswith(".") for part in rel)
                if f.is_file() and not hidden and f.suffix.lower() in SUPPORTED_SUFFIXES:
                    found.append(f)
        elif p.exists():
            found.append(p)
        else:
            raise DocumentError(f"{p}: no such file or folder; check the path")
    return found
