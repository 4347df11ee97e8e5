"""Loading documents: read a file into a :class:`Document` with its headings marked."""

from __future__ import annotations

import codecs
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
    """Spans of heading lines: Markdown ``#`` lines, or short title-like single-line blocks
    (and a plain-text document's first line, if it reads like a title)."""
    headings: list[Span] = []
    first = True
    for block in iter_blocks(text):
        chunk = text[block.start : block.end]
        if markdown:
            offset = block.start
            for line in chunk.splitlines(keepends=True):
                m = _MD_HEADING_RE.match(line.rstrip("\r\n"))
                if m:
                    headings.append(Span(offset + m.start(2), offset + m.end(2)))
                offset += len(line)
        elif "\n" not in chunk and (_is_text_heading(chunk) or (first and _is_title(chunk))):
            headings.append(Span(block.start, block.end))
        first = False
    return headings


def _is_title(line: str) -> bool:
    """A document's first line as its title: a paper's title is often longer than a
    heading (up to 300 characters), but still one line that does not end like a sentence."""
    return len(line) <= 300 and not line.endswith(tuple(".?!:;,")) and line[0].isalnum()


def read_text(path: Path, data: bytes) -> str:
    """Decode text as UTF-8 (no newline translation); fall back to cp1252/latin-1 with a warning.

    Text with a UTF-16 byte-order mark is decoded as UTF-16.
    """
    if not data.strip():
        raise DocumentError(f"{path.name}: file is empty; add some text or leave it out")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16").removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise DocumentError(
                f"{path.name}: starts like UTF-16 text but does not decode; re-save it as UTF-8"
            ) from None
        if not text.strip():
            raise DocumentError(f"{path.name}: file is empty; add some text or leave it out")
        return text
    if b"\x00" in data[:8192]:
        raise DocumentError(f"{path.name}: looks binary, not text; convert it to .txt/.md first")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = ""
        for enc in ("cp1252", "latin-1"):  # latin-1 decodes any byte string
            try:
                text = data.decode(enc)
            except UnicodeDecodeError:
                continue
            log.warning(
                "%s is not valid UTF-8 (%s at byte %d); decoded as %s instead: "
                "check its accented characters, or re-save it as UTF-8",
                path.name,
                exc.reason,
                exc.start,
                enc,
            )
            break
    text = text.removeprefix("\ufeff")
    if _control_share(text[:8192]) > 0.05:
        raise DocumentError(f"{path.name}: looks binary, not text; convert it to .txt/.md first")
    return text


def _control_share(text: str) -> float:
    """Share of control characters other than whitespace (high in binary data)."""
    if not text:
        return 0.0
    bad = sum(1 for c in text if (c < " " and c not in "\t\n\r\f\v") or "\x7f" <= c <= "\x9f")
    return bad / len(text)


def load_document(
    path: Path,
    source: str | None = None,
    max_bytes: int | None = None,
    data: bytes | None = None,
) -> Document:
    """Read one file into a Document; raise DocumentError with the fix if it can't be used.

    ``data`` is the file's content if the caller already read it (after checking its size).
    """
    source = source or path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    if data is None:
        check_size(path, max_bytes)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise DocumentError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    elif max_bytes is not None and len(data) > max_bytes:
        raise DocumentError(_too_big(path, len(data), max_bytes))
    if suffix in BINARY_SUFFIXES:
        from .formats import EXTRACTORS

        doc = EXTRACTORS[suffix](path, source, data)
    else:
        text = read_text(path, data)
        headings = find_headings(text, markdown=suffix in {".md", ".markdown"})
        title = text[headings[0].start : headings[0].end] if headings else ""
        doc = Document(source=source, text=text, title=title, headings=headings)
    from .structure import FRONT, find_regions  # uses this module's blocks

    regions = find_regions(doc)
    doc.regions = [(r.start, r.end, r.kind) for r in regions]
    if regions and regions[0].kind == FRONT:
        _title_before(doc, regions[0].start)
    return doc


def _title_before(doc: Document, front: int) -> None:
    """A paper's first line, directly above its front matter, is its title (a heading,
    never an answer by itself), even when no blank line sets it apart."""
    text = doc.text
    start = len(text) - len(text.lstrip())
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    line = text[start:end].rstrip()
    if not line or text[start + len(line) : front].strip() or front <= start:
        return
    if doc.headings and doc.headings[0].start <= start:
        return  # already a heading
    doc.headings.insert(0, Span(start, start + len(line)))
    doc.title = doc.title or line


def check_size(path: Path, max_bytes: int | None) -> int:
    """The file's size in bytes; DocumentError if it is unreadable or over ``max_bytes``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read ({exc.strerror}); check the path") from None
    if max_bytes is not None and size > max_bytes:
        raise DocumentError(_too_big(path, size, max_bytes))
    return size


def _too_big(path: Path, size: int, max_bytes: int) -> str:
    return (
        f"{path.name}: {size / 1e6:.1f} MB is over the {max_bytes / 1e6:g} MB limit; "
        "split the file or raise CHATBOT_MAX_FILE_MB"
    )


def find_files(paths: Iterable[Path], *, allow_outside_links: bool = False) -> list[Path]:
    """Expand files and folders (recursively) into supported files, sorted, hidden ones skipped.

    Raises DocumentError for a path that does not exist or a link that leaves its folder.
    """
    found, missing = collect_files(paths, allow_outside_links=allow_outside_links)
    if missing:
        raise DocumentError(missing[0][1])
    return found


def collect_files(
    paths: Iterable[Path], *, allow_outside_links: bool = False
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Like :func:`find_files`, but refused paths are returned with a reason, not raised.

    A file named twice (directly, or inside a folder also given) is listed once. A file
    found inside a folder must resolve to a file inside that folder: a symbolic link that
    leads out of it is refused unless ``allow_outside_links`` (a file named directly is
    always taken, wherever it leads). Links to folders are not descended into.
    """
    found: list[Path] = []
    refused: list[tuple[Path, str]] = []
    outside: list[tuple[Path, Path, str]] = []  # (link, its target, reason)
    seen: set[Path] = set()

    def take(f: Path, key: Path) -> None:
        if key not in seen:
            seen.add(key)
            found.append(f)

    for p in paths:
        if p.is_dir():
            root = _resolve(p)
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p).parts
                hidden = any(part.startswith(".") for part in rel)
                if hidden or f.suffix.lower() not in SUPPORTED_SUFFIXES or not f.is_file():
                    continue
                key = _resolve(f)
                if allow_outside_links or key.is_relative_to(root):
                    take(f, key)
                else:
                    folder = f"{p.as_posix().rstrip('/')}/"
                    reason = (
                        f"{f}: a link to a file outside {folder} ({key}); copy the file into "
                        "the folder, or set CHATBOT_ALLOW_OUTSIDE_LINKS=1"
                    )
                    outside.append((f, key, reason))
        elif p.exists():
            take(p, _resolve(p))
        else:
            refused.append((p, f"{p}: no such file or folder; check the path"))
    # A link whose target is indexed anyway (named, or inside another folder given) is no loss.
    refused.extend((f, reason) for f, key, reason in outside if key not in seen)
    return found, refused


def _resolve(path: Path) -> Path:
    """``path`` with every symbolic link followed (as far as they lead)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop
        return path.absolute()
