"""Splitting documents into sentence-aware passages of bounded length, with exact offsets."""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

from .config import Settings
from .documents import iter_blocks
from .sentences import SentenceSplitter
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
    parts: list[tuple[int, int]] = []
    pos = start
    for m in re.finditer(r"\r?\n", text[start:end]):
        line_end = start + m.start()
        if line_end > pos and not text[pos:line_end].rstrip().endswith((",", "-", "–")):
            stripped = text[pos:line_end].rstrip()
            if stripped and (stripped[-1] in ".?!:;" or _looks_like_item(text, start + m.end())):
                parts.append((pos, pos + len(stripped)))
                pos = start + m.end()
                while pos < end and text[pos].isspace():
                    pos += 1
    if pos < end:
        parts.append((pos, end))
    return parts


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
    sentences: SentenceSplitter | None = None,
) -> list[Passage]:
    """Split a document into passages that never cut a sentence (unless it alone is over-long).

    Passages stay inside one paragraph block; heading blocks are not passages but become the
    ``heading`` of the passages under them. Every passage satisfies
    ``passage.text == doc.text[passage.start:passage.end]``. Paragraphs shorter than
    ``min_chars`` are joined with the next paragraph of the same section when both fit.
    ``sentences``: the index's trained sentence splitter (default: untrained, with the
    shipped abbreviations).
    """
    text = doc.text
    heading_starts = [h.start for h in doc.headings]
    page_starts = [p[0] for p in doc.pages]
    passages: list[Passage] = []
    heading = ""
    section = 0  # a heading line starts a new section (even one named like the last)
    # (section, heading, sentences) per paragraph group
    groups: list[tuple[int, str, list[Span]]] = []
    for kind, seg in _segments(text, doc.headings, heading_starts):
        if kind == "heading":
            heading = text[seg.start : seg.end].strip()
            section += 1
            continue
        sents = sentence_spans(text, seg.start, seg.end, max_chars, sentences)
        if not sents:
            continue
        prev = groups[-1] if groups else None
        if (
            prev is not None
            and prev[0] == section
            and prev[2][-1].end - prev[2][0].start < min_chars
            and sents[-1].end - prev[2][0].start <= max_chars
            and not _page_break_between(page_starts, prev[2][-1].end, sents[0].start)
        ):
            prev[2].extend(sents)
        else:
            groups.append((section, heading, sents))
    for _, heading, sents in groups:
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
                )
            )
    return passages


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
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if end > start:
        out.append(("text", Span(start, end)))


def _page_at(pages: list[tuple[int, int, int]], starts: list[int], pos: int) -> int | None:
    k = bisect.bisect_right(starts, pos) - 1
    return pages[k][2] if k >= 0 and pos < pages[k][1] else None


def _page_break_between(starts: list[int], a: int, b: int) -> bool:
    return bisect.bisect_right(starts, a) != bisect.bisect_right(starts, b)
