"""PDF text as a reader sees it: reading order, running headers and footers, hyphenation.

:func:`chatbot.formats.extract_pdf` turns each page into lines in reading order
(:func:`page_lines`), drops the running headers, footers and page numbers that repeat in the
page margins (:func:`drop_running_lines`), then joins the lines into paragraphs, joining words
hyphenated across line breaks the way a reader does (:func:`paragraphs`, with the document's
own usage as evidence in :class:`HyphenEvidence`). What comes out is the canonical text that
passages slice, so every passage stays ``document.text[start:end]``.

Positions come from pypdf's layout-mode text state machine (exact glyph widths, one fragment
per text-showing operator); its plain ``visitor_text`` merges a line's fragments across
horizontal jumps, so it cannot tell two columns apart. Those are pypdf internals, pinned by
``pypdf==7.1.1``: if they fail, the page falls back to pypdf's plain text, as before.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_WS = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[ \t\f\v]*\n")
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
# A hyphen ending a line right after a letter or digit, and the letter or digit that goes on.
_LINE_END_HYPHEN = re.compile(r"([^\W_]+)-[ \t]*\n[ \t]*(?=([^\W_]+))")
_DIGITS = re.compile(r"\d+")
_PAGE_NUMBER = re.compile(
    r"(?:page\s*)?[-–—]?\s*(?:\d{1,4}|[ivxlcdm]{1,7})\s*[-–—]?(?:\s*(?:of|/)\s*\d{1,4})?",
    re.IGNORECASE,
)
MARGIN_LINES = 2  # lines at the top and at the bottom of a page that may be running lines


# --- Hyphenation ----------------------------------------------------------------------------


class HyphenEvidence:
    """How a document writes its words, to tell a syllable break from a compound's hyphen.

    ``two-\\ncolumn`` is the compound "two-column" when the document writes "two-column"
    elsewhere and never "twocolumn"; ``exam-\\nple`` is "example" when it does not.
    """

    def __init__(self, texts: Iterable[str] = ()) -> None:
        self.words: set[str] = set()
        self.pairs: set[str] = set()
        for text in texts:
            for token in _WORD.findall(text.casefold()):
                parts = token.split("-")
                self.words.update(parts)
                self.pairs.update(f"{a}-{b}" for a, b in zip(parts, parts[1:], strict=False))

    def keeps_hyphen(self, left: str, right: str) -> bool:
        """Does the document write ``left-right`` with its hyphen and never ``leftright``?"""
        left, right = left.casefold(), right.casefold()
        return f"{left}-{right}" in self.pairs and left + right not in self.words

    def joins(self, left: str, right: str) -> bool:
        """Does the document write ``leftright`` as one word and never ``left-right``?"""
        left, right = left.casefold(), right.casefold()
        return left + right in self.words and f"{left}-{right}" not in self.pairs


def dehyphenate(text: str, evidence: HyphenEvidence | None = None) -> str:
    """Remove line breaks after hyphens: ``exam-\\nple`` -> ``example``, ``COVID-\\n19`` ->
    ``COVID-19``.

    Only a lowercase letter after a lowercase letter is a syllable break (joined as one word),
    unless ``evidence`` shows the document writes the hyphenated compound; after digits or an
    uppercase acronym, or before a capital or a digit, the hyphen belongs to the word and stays,
    unless the document writes the letters joined and never hyphenated (``OP-\\nTIONAL``).
    """

    def join(m: re.Match[str]) -> str:
        left, right = m.group(1), m.group(2)
        piece = left.rsplit("-", 1)[-1]
        cont = _first_part(right)
        if piece[-1].islower() and cont[0].islower():  # a syllable break, unless shown otherwise
            keep = evidence is not None and evidence.keeps_hyphen(piece, cont)
        else:  # a hyphen of the word's own, unless the document writes the word joined
            keep = not (evidence is not None and piece.isalpha() and evidence.joins(piece, cont))
        return left + "-" if keep else left

    return _LINE_END_HYPHEN.sub(join, text)


def _first_part(word: str) -> str:
    """The letters of ``word`` up to its first hyphen (the continuation of a broken word)."""
    return word.split("-", 1)[0]


def paragraphs(page_text: str, evidence: HyphenEvidence | None = None) -> list[str]:
    """Split a page's text on blank lines, de-hyphenate and join hard-wrapped lines."""
    text = page_text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    paras = (dehyphenate(p, evidence) for p in _BLANK_LINE.split(text))
    return [s for s in (_WS.sub(" ", p).strip() for p in paras) if s]


# --- Running headers, footers and page numbers ----------------------------------------------


def _margin_indexes(lines: list[str]) -> list[int]:
    """Indexes of the first and last :data:`MARGIN_LINES` non-empty lines of a page."""
    filled = [i for i, line in enumerate(lines) if line.strip()]
    return sorted(set(filled[:MARGIN_LINES] + filled[-MARGIN_LINES:]))


def _normalise(line: str) -> str:
    """A margin line's key: digits as ``#`` (page numbers vary), spaces collapsed, casefolded."""
    return _WS.sub(" ", _DIGITS.sub("#", line)).strip().casefold()


def is_page_number(line: str) -> bool:
    """Is the line only a page number: ``12``, ``- 12 -``, ``Page 3``, ``3 of 10``, ``iv``?"""
    return _PAGE_NUMBER.fullmatch(line.strip()) is not None


def drop_running_lines(pages: list[list[str]]) -> tuple[list[list[str]], int]:
    """The pages' lines without running headers, footers and page numbers; and how many went.

    Only the first and last two non-empty lines of a page are candidates. A page number there
    goes when the document has two or more pages with text. Another line goes when its
    normalised form is in the margins of enough pages: 2 in a document of up to 3 pages, else
    3 and a third of the pages (alternating left/right running heads each cover about half the
    pages after the first, so half would miss them; three repeats rules out chance). The first
    page with text loses only its page number: it carries the title and authors, which running
    heads repeat word for word (often with no title in the metadata to tell them apart), and
    a journal's banner kept once costs less than a lost title.
    """
    with_text = [i for i, lines in enumerate(pages) if any(line.strip() for line in lines)]
    if len(with_text) < 2:
        return pages, 0
    margins = {i: _margin_indexes(pages[i]) for i in with_text}
    counts: Counter[str] = Counter()
    for i, indexes in margins.items():
        counts.update({_normalise(pages[i][j]) for j in indexes})
    n = len(with_text)
    least = 2 if n <= 3 else max(3, -(-n // 3))
    out = [list(lines) for lines in pages]
    dropped = 0
    for i, indexes in margins.items():
        gone = set()
        for j in indexes:
            key = _normalise(pages[i][j])
            running = i != with_text[0] and counts[key] >= least
            if running or is_page_number(pages[i][j]):
                gone.add(j)
        out[i] = [line for j, line in enumerate(pages[i]) if j not in gone]
        dropped += len(gone)
    return out, dropped


# --- Reading order --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    """Text shown by one operator: its left and right x, baseline y and font size (points)."""

    x0: float
    x1: float
    y: float
    size: float
    text: str
    space: float  # the width of a space in this font, for gaps between fragments


@dataclass
class _Line:
    """Fragments sharing a baseline, left to right."""

    y: float
    frags: list[Fragment] = field(default_factory=list)

    @property
    def x0(self) -> float:
        return min(f.x0 for f in self.frags)

    @property
    def x1(self) -> float:
        return max(f.x1 for f in self.frags)

    @property
    def width(self) -> float:
        return sum(f.x1 - f.x0 for f in self.frags)

    def text(self) -> str:
        """The fragments joined, with a space where the gap between them is a space wide."""
        out = ""
        prev: Fragment | None = None
        for f in self.frags:
            gap = f.x0 - prev.x1 if prev else 0.0
            if prev and gap > 0.5 * (prev.space or 0.5 * prev.size) and not out.endswith(" "):
                out += " "
            out += f.text
            prev = f
        return out


def fragments(page: Any) -> list[Fragment]:
    """Every text fragment of a pypdf page with its position, through layout mode's machinery.

    Raises whatever pypdf raises; the caller falls back to plain text.
    """
    from pypdf._text_extraction._layout_mode._fixed_width_page import (
        recurse_to_target_op,
        set_font_operation,
    )
    from pypdf._text_extraction._layout_mode._text_state_manager import TextStateManager
    from pypdf.generic import ArrayObject, ContentStream, StreamObject

    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    if not isinstance(contents, (ArrayObject, StreamObject)):
        return []
    fonts = page._layout_mode_fonts()
    ops = iter(ContentStream(contents, page.pdf, "bytes").operations)
    state = TextStateManager()
    shown: list[Any] = []
    for operands, op in ops:
        if op in (b"BT", b"q"):
            end = b"ET" if op == b"BT" else b"Q"
            shown.extend(recurse_to_target_op(ops, state, end, fonts, True)[1])
        elif op == b"Tf":
            set_font_operation(state, fonts, operands)
        else:
            state.set_state_param(op, operands)
    out = []
    for tj in shown:
        if tj.rotated or not tj.font.interpretable or not tj.text.strip():
            continue
        x0, x1 = sorted((tj.tx, tj.displaced_tx))
        size = abs(tj.font_height) or abs(tj.font_size) or 1.0
        out.append(Fragment(x0, x1, tj.ty, size, tj.text, abs(tj.space_tx * tj.transform[0])))
    return out


def _lines(frags: list[Fragment]) -> list[_Line]:
    """Fragments grouped into lines by baseline (within 40% of the font size), top to bottom."""
    lines: list[_Line] = []
    for f in sorted(frags, key=lambda f: -f.y):
        if lines and abs(lines[-1].y - f.y) <= 0.4 * f.size:
            lines[-1].frags.append(f)
        else:
            lines.append(_Line(f.y, [f]))
    for line in lines:
        line.frags.sort(key=lambda f: f.x0)
    return lines


def _gutter(lines: list[_Line]) -> tuple[float, float] | None:
    """The x-range of the gap between two columns, or None when the page is not two columns.

    The gap is the widest run in the middle 40% of the text's width that the fewest lines
    longer than a fifth of that width cross (a title may; at most a fifth of them), at least
    half a median font size wide; and the lines on each side must mostly fill their column
    (columns of prose, not a table's short cells).
    """
    if len(lines) < 6:
        return None
    left, right = min(ln.x0 for ln in lines), max(ln.x1 for ln in lines)
    width = right - left
    if width <= 0:
        return None
    lo, hi = int(left + 0.3 * width), int(left + 0.7 * width)
    if hi <= lo:
        return None
    counts = np.zeros(hi - lo, dtype=np.int32)  # lines crossing each 1-pt column of the band
    long = [ln for ln in lines if ln.width >= 0.2 * width]
    for ln in long:
        crossed = np.zeros(hi - lo, dtype=bool)
        for f in ln.frags:
            crossed[max(int(f.x0) - lo, 0) : max(int(np.ceil(f.x1)) - lo, 0)] = True
        counts += crossed
    cover = counts.tolist()
    least = min(cover)
    if least > 0.2 * len(long):
        return None
    best, start = (0, 0), None
    for k, c in enumerate([*cover, least + 1]):
        if c == least and start is None:
            start = k
        elif c != least and start is not None:
            best = max(best, (k - start, start))
            start = None
    run, at = best
    if run < 0.5 * median(f.size for ln in lines for f in ln.frags):
        return None
    g0, g1 = float(lo + at), float(lo + at + run)
    sides = [s for s in (_side(ln, g0, g1) for ln in lines) if s]
    left_w = [max(f.x1 for f in s[0]) - left for s in sides if s[0]]
    right_w = [right - min(f.x0 for f in s[1]) for s in sides if s[1]]
    if len(left_w) < 3 or len(right_w) < 3:
        return None
    if median(left_w) < 0.6 * (g0 - left) or median(right_w) < 0.6 * (right - g1):
        return None
    return g0, g1


def _side(line: _Line, g0: float, g1: float) -> tuple[list[Fragment], list[Fragment]] | None:
    """A line's fragments left and right of the gutter, or None when one crosses it."""
    lefts = [f for f in line.frags if f.x1 <= g0 + 1]
    rights = [f for f in line.frags if f.x0 >= g1 - 1]
    if len(lefts) + len(rights) < len(line.frags):
        return None
    return lefts, rights


def _spacing(ys: list[list[float]]) -> float:
    """The median distance between consecutive baselines in each list (0 when there is none)."""
    gaps = [a - b for seq in ys for a, b in zip(seq, seq[1:], strict=False) if a - b > 0]
    return median(gaps) if gaps else 0.0


def _with_breaks(seq: list[tuple[float, str]], step: float) -> list[str]:
    """Lines top to bottom, with a blank line where the gap exceeds 1.5 line spacings."""
    out: list[str] = []
    for k, (y, text) in enumerate(seq):
        if k and step and seq[k - 1][0] - y > 1.5 * step:
            out.append("")
        out.append(text)
    return out


def _ends_paragraph(column: list[_Line], g0: float) -> bool:
    """Does the column's last line end a paragraph: a sentence's end, well short of the gutter?"""
    last, left = column[-1], min(ln.x0 for ln in column)
    short = last.x1 < left + 0.85 * (g0 - left)
    return short and last.text().rstrip().endswith((".", "!", "?", ":"))


def _reading_order(lines: list[_Line], g0: float, g1: float) -> list[str]:
    """A two-column page's lines as read: full-width lines where they stand, and each run of
    column lines between them as its left column top to bottom, then its right column.

    Full-width lines cross the gutter (a title, a wide caption), or stand apart at the top or
    bottom of the page (a running header or page number on one side). A blank line marks a
    vertical gap over 1.5 line spacings; the left column flows into the right without one,
    unless its last line ends a sentence well short of the gutter (a paragraph's last line).
    """
    split = [_side(ln, g0, g1) for ln in lines]
    step = _spacing(
        [[ln.y for ln, s in zip(lines, split, strict=True) if s and s[k]] for k in (0, 1)]
    )
    step = step or _spacing([[ln.y for ln in lines]])
    full = {i for i, s in enumerate(split) if s is None}
    for order in (range(len(lines) - 1), range(len(lines) - 1, 0, -1)):
        for i in order[:MARGIN_LINES]:
            j = i + 1 if order.step > 0 else i - 1
            if abs(lines[i].y - lines[j].y) <= 2 * step:
                break
            full.add(i)
    out: list[str] = []
    block: list[int] = []

    def flush() -> None:
        if not block:
            return
        if out:
            out.append("")
        left_col, right_col = (
            [_Line(lines[i].y, side[k]) for i in block if (side := split[i]) and side[k]]
            for k in (0, 1)
        )
        out.extend(_with_breaks([(ln.y, ln.text()) for ln in left_col], step))
        if left_col and _ends_paragraph(left_col, g0):
            out.append("")
        out.extend(_with_breaks([(ln.y, ln.text()) for ln in right_col], step))
        out.append("")
        block.clear()

    prev_y: float | None = None
    for i, line in enumerate(lines):
        if i not in full:
            block.append(i)
            prev_y = None
            continue
        flush()
        if out and out[-1] and prev_y is not None and step and prev_y - line.y > 1.5 * step:
            out.append("")
        out.append(line.text())
        prev_y = line.y
    flush()
    return out


def page_lines(page: Any, plain: str, name: str = "", number: int = 0) -> list[str]:
    """A page's lines in reading order; a blank line between paragraphs where that is known.

    Two-column pages are re-ordered from positions (:func:`_reading_order`); every other page,
    and any page whose positions cannot be read or do not account for the same characters as
    pypdf's plain text, keeps the plain text's lines, as pypdf ordered them.
    """
    plain = plain.replace("\r\n", "\n").replace("\r", "\n")
    try:
        lines = _lines(fragments(page))
    except Exception as e:  # noqa: BLE001 - positions are an improvement; plain text still works
        log.debug("%s: page %d: no text positions (%s: %s)", name, number, type(e).__name__, e)
        return plain.split("\n")
    gutter = _gutter(lines)
    if gutter is None:
        return plain.split("\n")
    ordered = _reading_order(lines, *gutter)
    found, expected = (len(_WS.sub("", t)) for t in ("".join(ordered), plain))
    if abs(found - expected) > 0.02 * expected:
        log.debug(
            "%s: page %d: positions give %d characters, plain text %d; plain order kept",
            name,
            number,
            found,
            expected,
        )
        return plain.split("\n")
    log.debug("%s: page %d: two columns, gutter at x=%.0f-%.0f", name, number, *gutter)
    return ordered
