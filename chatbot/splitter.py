"""Splitting documents into sentence-aware passages of bounded length, with exact offsets."""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

from .config import Settings
from .documents import iter_blocks
from .sentences import SentenceSplitter
from .structure import BODY, FRONT
from .types import Document, Passage, Span

_WORD_RE = re.compile(r"\S+")


@lru_cache(maxsize=1)
def default_sentences() -> SentenceSplitter:
    """The untrained splitter (shipped abbreviations only), for indexes built without one."""
    return SentenceSplitter.default()


def sentence_spans(
    text: str, start: int, end: int, max_chars: int, sentences: SentenceSplitter | None = None
) -> list[Span]:
    """Sentences of ``text[start:end]`` as absolute spans; over-long ones cut at word boundaries.

    ``sentences`` is the index's trained splitter (:mod:`chatbot.sentences`).
    """
    spans: list[Span] = []
    for s, e in (sentences or default_sentences()).spans(text[start:end]):
        s, e = start + s, start + e
        # A line break inside a "sentence" that ends without punctuation (a list item, a
        # caption) is a boundary too; Punkt only knows punctuation.
        for ls, le in _split_lines(text, s, e):
            spans.extend(_cut_long(text, ls, le, max_chars))
    return spans


def _split_lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """``text[start:end]`` cut at the line breaks that end a line of its own: after
    sentence punctuation, before a list item, or a short line before a capitalised one (a
    heading run into its text, an unpunctuated list); not inside hard-wrapped prose, whose
    lines run to the wrap width."""
    parts: list[tuple[int, int]] = []
    pos = start
    widest = max((len(line) for line in text[start:end].splitlines()), default=0)
    for m in re.finditer(r"\r?\n", text[start:end]):
        line_end = start + m.start()
        if line_end > pos and not text[pos:line_end].rstrip().endswith((",", "-", "–")):
            stripped = text[pos:line_end].rstrip()
            nxt = start + m.end()
            if stripped and (
                stripped[-1] in ".?!:;"
                or _looks_like_item(text, nxt)
                or (_starts_capitalised(text, nxt) and _short_line(stripped, widest))
            ):
                parts.append((pos, pos + len(stripped)))
                pos = start + m.end()
                while pos < end and text[pos].isspace():
                    pos += 1
    if pos < end:
        parts.append((pos, end))
    return parts


def _starts_capitalised(text: str, pos: int) -> bool:
    return bool(re.match(r"[ \t]*[A-Z0-9]", text[pos : pos + 8]))


def _short_line(line: str, widest: int) -> bool:
    """Shorter than a wrapped line would be: under 70% of the block's widest line, or in a
    block of short lines only (under 50 characters: a list, not wrapped prose)."""
    return widest < 50 or len(line) < 0.7 * widest


def _looks_like_item(text: str, pos: int) -> bool:
    """Does the line starting at ``pos`` look like a list item?"""
    return bool(re.match(r"[ \t]*(?:[-*•+]|\d+[.)])[ \t]", text[pos : pos + 8]))


def _cut_long(text: str, start: int, end: int, max_chars: int) -> list[Span]:
    if end - start <= max_chars:
        return [Span(start, end)]
    pieces: list[Span] = []
    piece_start = piece_end = None
    for m in _WORD_RE.finditer(text, start, end):
        ws, we = m.start(), m.end()
        while we - ws > max_chars:  # a single word longer than the bound: hard cut
            if piece_start is not None:
                pieces.append(Span(piece_start, piece_end))
                piece_start = None
            pieces.append(Span(ws, ws + max_chars))
            ws += max_chars
        if piece_start is None:
            piece_start, piece_end = ws, we
        elif we - piece_start <= max_chars:
            piece_end = we
        else:
            pieces.append(Span(piece_start, piece_end))
            piece_start, piece_end = ws, we
    if piece_start is not None:
        pieces.append(Span(piece_start, piece_end))
    return pieces


def _windows(sents: list[Span], max_chars: int, overlap: int) -> list[tuple[int, int]]:
    """Index ranges ``[i, j)`` of sentence windows within one paragraph."""
    n = len(sents)
    out: list[tuple[int, int]] = []
    i = 0
    while i < n:
        j = i + 1
        while j < n and sents[j].end - sents[i].start <= max_chars:
            j += 1
        if j == n and out and overlap:
            # Final window: right-align it so it is as full as the bound allows.
            while i > out[-1][0] + 1 and sents[n - 1].end - sents[i - 1].start <= max_chars:
                i -= 1
        out.append((i, j))
        if j == n:
            break
        i = max(i + 1, j - overlap)
    return out


def split_document(
    doc: Document,
    max_chars: int = Settings.max_chars,
    min_chars: int = Settings.min_chars,
    overlap: int = Settings.overlap,
    paper_max_chars: int = 0,
    sentences: SentenceSplitter | None = None,
) -> list[Passage]:
    """Split a document into passages that never cut a sentence (unless it alone is over-long).

    Passages stay inside one paragraph block; heading blocks are not passages but become the
    ``heading`` of the passages under them. Every passage satisfies
    ``passage.text == doc.text[passage.start:passage.end]``. Paragraphs shorter than
    ``min_chars`` are joined with the next paragraph of the same section when both fit.
    ``sentences``: the index's trained sentence splitter (default: untrained, with the
    shipped abbreviations). A research paper (a document with front matter) gets passages of
    up to ``paper_max_chars`` (and packs paragraphs shorter than a quarter of that).
    """
    if paper_max_chars > max_chars and any(kind == FRONT for _, _, kind in doc.regions):
        max_chars, min_chars = paper_max_chars, max(min_chars, paper_max_chars // 4)
    text = doc.text
    heading_starts = [h.start for h in doc.headings]
    page_starts = [p[0] for p in doc.pages]
    passages: list[Passage] = []
    heading = ""
    section = 0  # a heading line starts a new section (even one named like the last)
    # (section, kind, heading, sentences) per paragraph group
    groups: list[tuple[int, str, str, list[Span]]] = []
    for what, seg in _segments(text, doc.headings, heading_starts):
        if what == "heading":
            heading = text[seg.start : seg.end].strip()
            section += 1
            continue
        for run, kind in _by_region(text, seg, doc.regions):
            sents = sentence_spans(text, run.start, run.end, max_chars, sentences)
            if not sents:
                continue
            prev = groups[-1] if groups else None
            if (
                prev is not None
                and prev[:2] == (section, kind)
                and kind == BODY  # captions, reference lists, front matter: each its own
                and prev[3][-1].end - prev[3][0].start < min_chars
                and sents[-1].end - prev[3][0].start <= max_chars
                and not _page_break_between(page_starts, prev[3][-1].end, sents[0].start)
            ):
                prev[3].extend(sents)
            else:
                groups.append((section, kind, heading, sents))
    for _, kind, heading, sents in groups:
        for i, j in _windows(sents, max_chars, overlap):
            start, end = sents[i].start, sents[j - 1].end
            passages.append(
                Passage(
                    text=text[start:end],
                    source=doc.source,
                    start=start,
                    end=end,
                    heading=heading,
                    page=_page_at(doc.pages, page_starts, start),
                    sentences=[(s.start - start, s.end - start) for s in sents[i:j]],
                    kind=kind,
                )
            )
    return passages


def _by_region(text: str, run: Span, regions: list[tuple[int, int, str]]) -> list[tuple[Span, str]]:
    """``run`` cut where a region (front matter, references, caption) starts or ends, each
    piece with its kind ("body" outside regions), whitespace trimmed."""
    if not regions:
        return [(run, BODY)]
    out: list[tuple[Span, str]] = []
    pos = run.start
    for r_start, r_end, kind in regions:
        if r_end <= pos or r_start >= run.end:
            continue
        if r_start > pos:
            out.extend((s, BODY) for s in _trimmed(text, pos, r_start))
        end = min(r_end, run.end)
        out.extend((s, kind) for s in _trimmed(text, max(pos, r_start), end))
        pos = end
    out.extend((s, BODY) for s in _trimmed(text, pos, run.end))
    return out


def _trimmed(text: str, start: int, end: int) -> list[Span]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return [Span(start, end)] if end > start else []


def _segments(text: str, headings: list[Span], starts: list[int]) -> list[tuple[str, Span]]:
    """Paragraph blocks split into ("heading", span) lines and ("text", span) runs."""
    out: list[tuple[str, Span]] = []
    for block in iter_blocks(text):
        pos = block.start
        k = bisect.bisect_left(starts, block.start)
        while k < len(headings) and headings[k].start < block.end:
            h = headings[k]
            line_start = text.rfind("\n", block.start, h.start) + 1 or block.start
            line_end = text.find("\n", h.end, block.end)
            line_end = block.end if line_end < 0 else line_end
            _add_text(out, text, pos, max(pos, line_start))
            out.append(("heading", h))
            pos = max(pos, line_end)
            k += 1
        _add_text(out, text, pos, block.end)
    return out


def _add_text(out: list[tuple[str, Span]], text: str, start: int, end: int) -> None:
    out.extend(("text", s) for s in _trimmed(text, start, end))


def _page_at(pages: list[tuple[int, int, int]], starts: list[int], pos: int) -> int | None:
    k = bisect.bisect_right(starts, pos) - 1
    return pages[k][2] if k >= 0 and pos < pages[k][1] else None


def _page_break_between(starts: list[int], a: int, b: int) -> bool:
    return bisect.bisect_right(starts, a) != bisect.bisect_right(starts, b)
