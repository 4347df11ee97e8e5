"""Document structure: front matter, captions and reference lists, found per document.

Papers open with metadata (URL, DOI, licence, authors, dates, affiliations, web-page
furniture), carry figure and table captions, and end with reference lists. None of the
metadata or references is an answer, yet author lists and references match questions
lexically; :func:`find_regions` marks them so retrieval can hold them back unless the
question is about them (:func:`asks_about`). Captions are answerable: they are only marked.

Everything here is regexes and line scans (no model, no heavy import): a 40k-character
paper takes about a millisecond.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from .types import Document

FRONT = "front"
REFERENCES = "references"
CAPTION = "caption"
BODY = "body"
KINDS = (FRONT, REFERENCES, CAPTION)


@dataclass(frozen=True)
class Region:
    """Whole lines ``text[start:end]`` of one ``kind``: ``"front"`` (front matter and other
    metadata lines), ``"references"`` (a reference list, with its heading) or ``"caption"``
    (a figure or table caption). ``start`` is a line start, ``end`` a line end (no newline)."""

    start: int
    end: int
    kind: str


@dataclass(frozen=True)
class Summary:
    """What was recognised in one document, for ``index list``."""

    front_lines: int = 0
    captions: int = 0
    references: int = 0  # reference entries (numbered items, else lines)

    def __str__(self) -> str:
        parts = []
        if self.front_lines:
            parts.append(f"front matter {_n(self.front_lines, 'line')}")
        if self.captions:
            parts.append(_n(self.captions, "caption"))
        if self.references:
            parts.append(f"references {_n(self.references, 'entry', 'entries')}")
        return ", ".join(parts) or "no front matter, captions or references"


def _n(count: int, one: str, many: str = "") -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


# --- line patterns -------------------------------------------------------------------------

_MONTH = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|"
    r"Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
)
_DATE = (
    rf"(?:\d{{4}}(?:[-/.]\d{{1,2}}(?:[-/.]\d{{1,2}})?)?|\d{{1,2}}[-/.]\d{{1,2}}[-/.]\d{{4}}|"
    rf"\d{{1,2}}\s+{_MONTH},?\s+\d{{4}}|{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}|{_MONTH},?\s+\d{{4}})"
)
_DATE_RE = re.compile(_DATE, re.I)
_DATE_LINE_RE = re.compile(rf"(?:(?:Date|Published|Publication date)\s*:\s*)?{_DATE}\.?", re.I)
_URL_LINE_RE = re.compile(
    r"(?:(?:URL|Link|Available\s+(?:at|from|online))\s*:?\s*)?<?(?:https?://|www\.)\S+>?\.?", re.I
)
_DOI = r"10\.\d{4,9}/\S+"
_DOI_LINE_RE = re.compile(rf"(?:DOI|doi)\s*:?\s*(?:https?://(?:dx\.)?doi\.org/)?{_DOI}")
_HAS_DOI_RE = re.compile(rf"\bdoi\s*:\s*{_DOI}|doi\.org/|\b{_DOI}", re.I)
_HASH_LINE_RE = re.compile(r"(?:(?:SHA(?:-?\d+)?|MD5|Hash)\s*:\s*)?[0-9a-f]{32,128}", re.I)
_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Labelled metadata lines: metadata wherever they stand (a keywords line often follows the
# abstract; "Published online: ..." and licence lines often stand at the end).
_LABEL_RE = re.compile(
    r"(?:SHA(?:-?\d+)?|DOI|PMID|PMCID|ISSN|Authors?|Date|Licen[cs]e|Copyright|Key\s*words|"
    r"Received|Accepted|Revised|Published(?:\s+online)?|Available\s+online|First\s+published|"
    r"Epub|Article\s+history|Correspondence|Corresponding\s+authors?|Address\s+for\s+"
    r"correspondence|E-?mails?|Academic\s+editor|Edited\s+by|Reviewed\s+by|Handling\s+editor|"
    r"Citation|Cite\s+this\s+article(?:\s+as)?|How\s+to\s+cite|ORCID|Affiliations?|arXiv)"
    r"\s*[:：]",
    re.I,
)
_DATED_EVENT_RE = re.compile(
    rf"(?:Received|Accepted|Revised|Published(?:\s+online)?|Available\s+online|"
    rf"First\s+published|Epub(?:\s+ahead\s+of\s+print)?)\b[^.]{{0,20}}?{_DATE}",
    re.I,
)
_LICENCE_RE = re.compile(
    r"©|\(c\)\s*\d{4}|^\s*copyright\b|creative\s*commons|\bCC[\s-]?BY\b|open[\s-]access\s+article|"
    r"all\s+rights\s+reserved|distributed\s+under\s+the\s+terms|licensee\s",
    re.I,
)
_LICENCE_SENTENCE_RE = re.compile(
    r"^(?:©|copyright\b|\(c\)\s*\d{4}|open\s+access\b|this\s+(?:is\s+an|article\s+is))|"
    r"distributed\s+under\s+the\s+terms|permits\s+unrestricted|all\s+rights\s+reserved|"
    r"licensed\s+under\s+a\s+creative",
    re.I,
)
_BACK_LICENCE_RE = re.compile(
    r"^(?:©|copyright\b|\(c\)\s*\d{4}|this\s+(?:is\s+an|article\s+is\s+an?)\s+open[\s-]access)|"
    r"all\s+rights\s+reserved|copyright\s+holder\s+for\s+this\s+preprint|"
    r"\b(?:bio|med|chem)Rxiv\s+preprint\s+doi\b",
    re.I,
)
_MARKUP_RE = re.compile(r"^(?:#{1,6}\s+|>\s*|[*_]{1,2}(?=\w))")
# "JAMA. 2020;323(12):1129-1130." / "Virol J 2012, 9:56" / "Vol. 12, No. 3, pp. 4-9"
_CITATION_RE = re.compile(
    r"\b(?:19|20)\d\d\s*[;,]\s*\d+\s*(?:\([\w\s-]+\))?\s*:\s*[eE]?\d+|"
    r"\bVol(?:ume)?\.?\s*\d+\s*,?\s*(?:No|Issue)\.?\s*\d+|\bpp?\.\s*\d+\s*[-–]\s*\d+"
)
_FURNITURE_RE = re.compile(
    r"(?:Author\s+Affiliations?|Article\s+Information|Open\s+Access|Research\s+Article|"
    r"Original\s+(?:Research|Article)|Review\s+Article|Brief\s+Report|Short\s+Communication|"
    r"Download\s+PDF|Cite\s+This|Permissions|Share|Print|Full\s+Text|Abstract\s+Only|"
    r"Skip\s+to\s+(?:main\s+)?content|Menu|Search|Sign\s+In|Log\s*in|Subscribe)\b",
    re.I,
)
_INSTITUTION_RE = re.compile(
    r"\b(?:Universit\w*|Institut\w*|Department|Dept\.|Hospital|School|College|Cent(?:er|re)|"
    r"Laborator\w*|Faculty|Division|Unit|Academy|Ministry|Clinic|Foundation|Inc\.|Ltd\.?|GmbH)\b"
)
_PROSE_WORD_RE = re.compile(
    r"\b(?:is|are|was|were|be|been|has|have|had|we|our|this|these|that|which|can|may|will|"
    r"did|does|not|shows?|showed|found|suggests?)\b"
)
# Where the body starts: an abstract or a first section, labelled or numbered.
_BODY_START_RE = re.compile(
    r"(?:\d+\.?\s*)?(?:Abstract|Summary|Simple\s+Summary|Background|Introduction|Text|"
    r"Main\s+text|Objectives?|Importance|Highlights|Key\s+points|Methods)\b",
    re.I,
)
_SENTENCE_END_RE = re.compile(r"[.!?][\"'”’)\]]*$")

# --- reference lists -----------------------------------------------------------------------

_REF_HEADING_RE = re.compile(
    r"#{0,6}\s*(?:\d+\.?\s+|[IVX]+\.\s+)?(?:References?(?:\s+and\s+notes|\s+cited)?|"
    r"Bibliography|Literature\s+cited|Works\s+cited|Cited\s+literature|Reference\s+list)"
    r"\s*:?\s*",
    re.I,
)
_NUMBERED_RE = re.compile(r"\s*(?:\[\d{1,4}\]|\(\d{1,4}\)|\d{1,4}\.|\d{1,4}\))(?:\s|$)")
_NUMBER_ONLY_RE = re.compile(r"\s*(?:\[\d{1,4}\]|\(\d{1,4}\)|\d{1,4}\.?)\s*")
_YEAR_RE = re.compile(r"(?<!\d)(?:1[89]\d\d|20\d\d)[a-z]?(?!\d)")
# "Smith J, ..." / "Smith JH." / "Smith, J." / "Smith  DL," / "van der Berg A,"
_AUTHOR_START_RE = re.compile(
    r"\s*(?:\[\d{1,4}\]|\(\d{1,4}\)|\d{1,4}[.)])?\s*(?:(?:van|von|de|der|den|da|di|le|la|du)\s+)*"
    r"[A-Z][\w'’-]+(?:\s+[A-Z][\w'’-]+)?,?\s+(?:[A-Z]\.?[\s-]?){1,3}(?:[,.;]|et\s+al)"
)
_ET_AL_RE = re.compile(r"\bet\s+al\b")
_LINK_ARTIFACT_RE = re.compile(
    r"(?:\s*(?:Article|PubMed|Google\s*Scholar|Crossref|CrossRef|Web\s+of\s+Science|"
    r"Full\s+Text|PMC\s*free\s+article|Scopus|Abstract)\s*\|?)+"
)

# --- captions ------------------------------------------------------------------------------

_CAPTION_RE = re.compile(
    r"\s*(?:(?:Additional\s+file\s+\d+\s*[:.]?\s*)|(?:Supplement(?:ary|al)\s+(?:Material\s+)?))?"
    r"(?:Figure|Fig\.?|FIGURE|FIG\.?|Table|TABLE|Scheme|Chart|Box|Plate|File|Video|Movie|"
    r"Data|Appendix)\s*S?\d+[A-Za-z]?"
    r"(?:\s*[.:|—–-]|\s*\([A-Za-z0-9]{1,3}\)|\s+[A-Z(]|\s*$)"
)
_SUPPLEMENT_LINE_RE = re.compile(r"\s*Supplementary\s+(?:Materials?|Information|Data)\s*:")


def _lines(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every line, ``end`` before ``\\r\\n``/``\\n``."""
    out: list[tuple[int, int]] = []
    pos = 0
    n = len(text)
    while pos <= n:
        nl = text.find("\n", pos)
        end = n if nl < 0 else nl
        stop = end - 1 if end > pos and text[end - 1] == "\r" else end
        out.append((pos, stop))
        if nl < 0:
            break
        pos = nl + 1
    return out


_HEADING_WORDS = {
    "abstract",
    "aims",
    "background",
    "conclusion",
    "conclusions",
    "discussion",
    "introduction",
    "limitations",
    "materials",
    "methods",
    "objectives",
    "results",
    "summary",
    "references",
}


def _is_author_list(line: str) -> bool:
    """``Boily-Larouche, Geneviève; Iscache, Anne-Laure`` / ``David L. Swerdlow, MD1; ...``."""
    s = re.sub(r"^Authors?\s*:\s*", "", line.strip(), flags=re.I)
    if not s or len(s) > 3000 or s.endswith((".", "?", "!")) and not re.search(r"\b[A-Z]\.$", s):
        return False
    if _PROSE_WORD_RE.search(s):
        return False
    parts = [p for p in re.split(r";|,|\s+and\s+|\s+&\s+", s) if p.strip(" *†‡§0-9")]
    if len(parts) < 2:
        return False
    particles = {"van", "von", "de", "der", "den", "da", "das", "do", "dos", "di", "du", "le"}
    particles |= {"la", "del", "della", "y", "bin", "al", "el", "ten", "ter"}
    full_names = 0  # "Jane Smith", "Smith J", "David L. Swerdlow"
    for part in parts:
        words = part.split()
        if not 1 <= len(words) <= 5:
            return False
        for w in words:
            w = w.strip("*†‡§,")
            if w.lower() in _HEADING_WORDS:
                return False  # "Materials and Methods", "Results, Discussion"
            if w and not (w in particles or w[0].isupper() or w[0].isdigit()):
                return False
        full_names += len(words) >= 2
    labelled = s != line.strip()
    return labelled or ";" in s or full_names >= 2 or bool(re.search(r"\b[A-Z]\.", s))


def _is_licence(s: str) -> bool:
    """A licence or copyright line: short, or in the boilerplate wording of a licence
    statement (a prose paragraph that merely mentions Creative Commons is not one)."""
    if not _LICENCE_RE.search(s):
        return False
    return len(s.split()) < 12 or (len(s) <= 600 and bool(_LICENCE_SENTENCE_RE.search(s)))


def _is_dated_event(s: str) -> bool:
    """``Received 3 March 2021, accepted ...`` (but not "Published in 2020, the report found")."""
    return bool(_DATED_EVENT_RE.match(s)) and len(s) <= 200 and not _PROSE_WORD_RE.search(s)


def _is_affiliation(line: str) -> bool:
    """``1 Department of X, University of Y, City, Country`` (no verbs, listed parts)."""
    s = line.strip()
    if len(s) > 400 or not _INSTITUTION_RE.search(s) or _PROSE_WORD_RE.search(s):
        return False
    marker = re.match(r"[\d*†‡§a-z]{1,3}[\s,]", s) is not None
    return marker or s.count(",") >= 2


def _clean(line: str) -> str:
    """The line without Markdown decoration (``**Authors:**``, ``> ``, ``# ``)."""
    return _MARKUP_RE.sub("", line.strip()).replace("**", "").replace("__", "").strip()


def _front_line_kind(line: str, seen_front: bool) -> str:
    """Classify one line of the opening part: ``"front"``, ``"body"`` or ``""`` (neither:
    a title continuation, a blank or an ordinary short heading)."""
    s = _clean(line)
    if not s:
        return ""
    if _BODY_START_RE.match(s):
        return BODY
    if (
        _LABEL_RE.match(s)
        or _is_dated_event(s)
        or _URL_LINE_RE.fullmatch(s)
        or _DOI_LINE_RE.fullmatch(s)
        or _HASH_LINE_RE.fullmatch(s)
        or _DATE_LINE_RE.fullmatch(s)
        or _is_licence(s)
        or (_EMAIL_RE.search(s) and len(s) <= 300 and not _PROSE_WORD_RE.search(s))
        or (_CITATION_RE.search(s) and len(s) <= 250 and not _PROSE_WORD_RE.search(s))
        or (_HAS_DOI_RE.search(s) and len(s) <= 250 and not _PROSE_WORD_RE.search(s))
        or (_FURNITURE_RE.match(s) and len(s.split()) <= 6)
        or _is_author_list(s)
        or _is_affiliation(s)
    ):
        return FRONT
    words = len(s.split())
    if words >= 12 or len(s) >= 100:
        return BODY  # prose: the first paragraph of the text
    if seen_front and words <= 8 and not _SENTENCE_END_RE.search(s):
        return FRONT  # web-page furniture among the metadata ("COVID-19 Resource Center")
    return ""


def _is_prose_opening(line: str) -> bool:
    """Does the document open with a paragraph rather than a title line?"""
    s = line.strip()
    if len(s) >= 300:
        return True
    # A sentence with a verb; titles rarely have one ("... of ovine Eimeria spp.").
    return len(s.split()) >= 12 and bool(_SENTENCE_END_RE.search(s) and _PROSE_WORD_RE.search(s))


def _anywhere_front(line: str) -> bool:
    """A metadata line outside the opening part: labelled, a bare DOI line, a copyright or
    licence line, a preprint server's page footer."""
    s = _clean(line)
    if not s or len(s) > 400:
        return False
    return bool(
        (_LABEL_RE.match(s) and not s.lower().startswith(("date", "citation")))
        or _is_dated_event(s)
        or _DOI_LINE_RE.fullmatch(s)
        or (_URL_LINE_RE.fullmatch(s) and "doi.org/" in s)
        or _BACK_LICENCE_RE.search(s)
    )


def _is_ref_entry(line: str) -> bool:
    """Does this line look like (part of) a reference entry?"""
    s = line.strip()
    return bool(
        _NUMBER_ONLY_RE.fullmatch(s)
        or _LINK_ARTIFACT_RE.fullmatch(s)
        or _YEAR_RE.search(s)
        or _HAS_DOI_RE.search(s)
        or _NUMBERED_RE.match(s)
        or _AUTHOR_START_RE.match(s)
        or _ET_AL_RE.search(s)
        or re.search(r"https?://", s)
    )


def _is_strong_ref_entry(line: str) -> bool:
    """A whole reference entry on one line (for lists without a heading)."""
    s = line.strip()
    if not _YEAR_RE.search(s):
        return False
    journal = bool(_CITATION_RE.search(s) or _HAS_DOI_RE.search(s))
    author = bool(_AUTHOR_START_RE.match(s))
    numbered = bool(_NUMBERED_RE.match(s))
    return (journal and (author or numbered or _ET_AL_RE.search(s) is not None)) or (
        author and s.count(". ") >= 2
    )


def _ends_list(text: str, lines: list[tuple[int, int]], i: int) -> bool:
    """Does line ``i`` end a reference list (a new heading or a prose paragraph)?"""
    s = text[lines[i][0] : lines[i][1]].strip()
    if _is_ref_entry(s):
        return False
    words = s.split()
    if len(words) >= 12:
        return True  # prose with no year, DOI, number or author initials
    heading_like = s[:1].isupper() and not _SENTENCE_END_RE.search(s) and len(words) <= 10
    if not heading_like:
        return False
    # A heading, unless it is the wrapped middle of an entry ("Emerging Infectious Diseases"
    # between an entry's title and its "2019;3:1-5.").
    prev = text[lines[i - 1][0] : lines[i - 1][1]].strip() if i else ""
    if not prev or prev.endswith((".", "]", ")")) or prev[-1:].isdigit():
        return True
    nxt = next((text[a:b] for a, b in lines[i + 1 :] if text[a:b].strip()), "")
    return not _is_ref_entry(nxt)


def _reference_lines(text: str, lines: list[tuple[int, int]], start: int) -> list[bool]:
    """Flags: line ``i`` (from ``start`` on) belongs to a reference list."""
    flags = [False] * len(lines)
    i = start
    n = len(lines)
    while i < n:
        s = text[lines[i][0] : lines[i][1]]
        if not _REF_HEADING_RE.fullmatch(s.strip()):
            i += 1
            continue
        j = i + 1
        last = i
        while j < n:
            t = text[lines[j][0] : lines[j][1]]
            if t.strip():
                if _REF_HEADING_RE.fullmatch(t.strip()) or _ends_list(text, lines, j):
                    break
                last = j
            j += 1
        entries = [k for k in range(i + 1, last + 1) if text[lines[k][0] : lines[k][1]].strip()]
        if entries and any(_is_ref_entry(text[lines[k][0] : lines[k][1]]) for k in entries):
            for k in range(i, last + 1):
                flags[k] = True
        i = max(j, i + 1)
    # An unheaded run of whole entries closing the document.
    k = n - 1
    while k >= 0 and not text[lines[k][0] : lines[k][1]].strip():
        k -= 1
    run: list[int] = []
    strong = 0
    while k >= start and not flags[k]:
        s = text[lines[k][0] : lines[k][1]]
        if not s.strip():
            k -= 1
            continue
        if _is_strong_ref_entry(s):
            strong += 1
        elif not (_NUMBER_ONLY_RE.fullmatch(s.strip()) or _LINK_ARTIFACT_RE.fullmatch(s.strip())):
            break
        run.append(k)
        k -= 1
    if strong >= 3:
        for k in run:
            flags[k] = True
    return flags


def _caption_lines(
    text: str, lines: list[tuple[int, int]], taken: list[str]
) -> list[tuple[int, int]]:
    """Line ranges ``[i, j]`` of captions: a paragraph (or a line after a finished sentence)
    that starts like ``Figure 1.``/``Fig. 2:``/``Table S1``/``Supplementary Table 2``."""
    out: list[tuple[int, int]] = []
    n = len(lines)
    i = 0
    while i < n:
        s = text[lines[i][0] : lines[i][1]]
        if taken[i] or not (_CAPTION_RE.match(s) or _SUPPLEMENT_LINE_RE.match(s)):
            i += 1
            continue
        prev = text[lines[i - 1][0] : lines[i - 1][1]].strip() if i else ""
        if prev and not _SENTENCE_END_RE.search(prev) and not prev.endswith(":"):
            i += 1  # "... as listed in\nTable 1. Most patients ..." is one sentence
            continue
        j = i
        while j + 1 < n and not taken[j + 1] and text[lines[j + 1][0] : lines[j + 1][1]].strip():
            nxt = text[lines[j + 1][0] : lines[j + 1][1]]
            if _CAPTION_RE.match(nxt) and _SENTENCE_END_RE.search(
                text[lines[j][0] : lines[j][1]].strip()
            ):
                break  # the next caption of a run of one-line captions
            j += 1
        out.append((i, j))
        i = j + 1
    return out


def find_regions(doc: Document) -> list[Region]:
    """Front matter, captions and reference lists of ``doc``, sorted and non-overlapping.

    Front matter is looked for only before the first body paragraph (an ``Abstract`` line,
    a first section heading or the first prose line), leaving out the title line; labelled
    metadata lines (``Keywords:``, ``Received: ...``, ``Correspondence: ...``, a bare DOI
    line, ``©`` lines) count wherever they stand. A prose paragraph is never front matter.
    """
    return _find_regions(doc.text)


def _find_regions(text: str) -> list[Region]:
    lines = _lines(text)
    n = len(lines)
    kinds = [""] * n
    # Front matter: from the line after the title to the first body line.
    first = next((i for i, (a, b) in enumerate(lines) if text[a:b].strip()), n)
    body_start = n
    seen_front = False
    budget = 8000  # characters of opening part looked at
    i = first
    while i < n and lines[i][0] - lines[first][0] < budget:
        s = text[lines[i][0] : lines[i][1]]
        kind = _front_line_kind(s, seen_front)
        if i == first and kind != BODY and not _anywhere_front(s):
            kind = ""  # the title line is a heading, not metadata
        elif i == first and kind == BODY and not _is_prose_opening(s):
            kind = ""  # a long title ("Species-specific clinical characteristics of ...")
        if kind == BODY:
            body_start = i
            break
        if kind == FRONT:
            kinds[i] = FRONT
            seen_front = True
        i += 1
    else:
        body_start = i
    for k in range(body_start, n):
        if _anywhere_front(text[lines[k][0] : lines[k][1]]):
            kinds[k] = FRONT
    for k, is_ref in enumerate(_reference_lines(text, lines, min(body_start, n))):
        if is_ref:
            kinds[k] = REFERENCES
    captions = _caption_lines(text, lines, kinds)
    for i, j in captions:
        for k in range(i, j + 1):
            kinds[k] = CAPTION
    return _coalesce(text, lines, kinds, {(i, j) for i, j in captions})


def _coalesce(
    text: str, lines: list[tuple[int, int]], kinds: list[str], captions: set[tuple[int, int]]
) -> list[Region]:
    """Runs of same-kind lines as regions; blank lines join front or reference runs, and
    each caption paragraph is a region of its own."""
    caption_starts = {i for i, _ in captions}
    regions: list[Region] = []
    cur_kind = ""
    cur_start = cur_end = -1
    for i, (a, b) in enumerate(lines):
        kind = kinds[i]
        blank = not text[a:b].strip()
        if blank and not kind:
            if cur_kind == CAPTION:
                regions.append(Region(cur_start, cur_end, cur_kind))
                cur_kind = ""
            continue
        if kind and kind == cur_kind and i not in caption_starts:
            cur_end = b
            continue
        if cur_kind:
            regions.append(Region(cur_start, cur_end, cur_kind))
        cur_kind, cur_start, cur_end = kind, a, b
    if cur_kind:
        regions.append(Region(cur_start, cur_end, cur_kind))
    return regions


def kind_of(regions: list[Region], start: int, end: int) -> str:
    """The kind of the span ``[start, end)``: the kind of regions covering more than half
    of it, else ``"body"``. ``regions`` must be sorted (as :func:`find_regions` returns)."""
    if end <= start:
        return BODY
    covered: dict[str, int] = {}
    k = bisect.bisect_right([r.end for r in regions], start)
    while k < len(regions) and regions[k].start < end:
        r = regions[k]
        covered[r.kind] = covered.get(r.kind, 0) + min(end, r.end) - max(start, r.start)
        k += 1
    best = max(covered.items(), key=lambda kv: kv[1], default=(BODY, 0))
    return best[0] if 2 * best[1] > end - start else BODY


def cut_points(regions: list[Region]) -> list[int]:
    """Sorted offsets where a passage must end and the next begin (every region's start and
    end), so that no passage straddles body text and a region."""
    return sorted({p for r in regions for p in (r.start, r.end)})


def summarize(regions: list[Region], text: str) -> Summary:
    """Counts for ``index list``: front-matter lines, captions, reference entries."""
    front = captions = refs = 0
    for r in regions:
        chunk = text[r.start : r.end]
        if r.kind == FRONT:
            front += sum(1 for line in chunk.splitlines() if line.strip())
        elif r.kind == CAPTION:
            captions += 1
        elif r.kind == REFERENCES:
            lines = [ln.strip() for ln in chunk.splitlines() if ln.strip()]
            lines = [
                ln
                for ln in lines
                if not _REF_HEADING_RE.fullmatch(ln) and not _LINK_ARTIFACT_RE.fullmatch(ln)
            ]
            numbered = sum(
                1 for ln in lines if _NUMBERED_RE.match(ln) or _NUMBER_ONLY_RE.fullmatch(ln)
            )
            refs += numbered if numbered else len(lines)
    return Summary(front_lines=front, captions=captions, references=refs)


def describe(regions: list[Region], text: str) -> str:
    """One line for ``index list``, e.g. ``front matter 6 lines, 3 captions, references
    42 entries``."""
    return str(summarize(regions, text))


# --- questions about the non-body parts ----------------------------------------------------

_DOC = r"(?:paper|article|study|manuscript|report|publication|preprint|review|document)"
_PAPER = rf"(?:(?:the|this|that|your)\s+{_DOC}|it|this)"  # "the paper", "it"
_OF_PAPER = rf"(?:\s+(?:of|for|in|on)\s+{_PAPER})?\s*(?:\?|$)"  # nothing else after
_ASKS_FRONT_RE = re.compile(
    rf"""
    \bwho\s+(?:are|were|is|was)\s+(?:the\s+)?(?:main\s+|first\s+|last\s+|senior\s+)?
        (?:co-?)?authors?{_OF_PAPER}
    | \bwho\s+(?:wrote|authored|co-?authored|published|did)\s+{_PAPER}\b
    | \bwho\s+(?:wrote|authored)\s*(?:\?|$)
    | \b(?:names?\s+of\s+the|list\s+(?:of\s+)?the)\s+authors?\b
    | \b(?:which|what)\s+authors?\s+(?:wrote|authored|contributed|are\s+listed|worked\s+on)\b
    | (?<!by\s)\b(?:which|what)\s+authors?{_OF_PAPER}
    | \bauthors?\s+(?:list|names?|affiliations?)\b
    | \b(?:affiliations?|institutions?)\s+of\s+the\s+authors?\b
    | \bwhere\s+(?:are|do)\s+the\s+authors?\s+(?:from|work|based)\b
    | \bcorresponding\s+author\b | \bcontact\s+(?:the\s+)?authors?\b
    | \b(?:e-?mail|address)\s+(?:address\s+)?of\s+the\s+(?:corresponding\s+)?authors?\b
    | \bwhen\s+(?:was|were|is|did)\s+{_PAPER}\s+(?:first\s+)?
        (?:published|released|posted|written|received|accepted|submitted|appear)
    | \b(?:publication|release|submission|acceptance)\s+date\b
    | \bdate\s+of\s+(?:the\s+)?publication\b | \bdate\s+of\s+{_PAPER}\b
    | \bwhat\s+year\s+was\s+{_PAPER}\s+published\b
    | \bdoi\b | \bdigital\s+object\s+identifier\b | \bpmid\b
    | \b(?:which|what)\s+journal\b | \bjournal\s+name\b
    | \bwhere\s+was\s+{_PAPER}\s+published\b
    | \b(?:what|which|under\s+(?:what|which))\s+(?:licen[cs]e|copyright)\b
    | \blicen[cs]e\s+(?:of|for)\s+{_PAPER} | \bcopyright\s+(?:holder|owner)\b
    | \bcreative\s+commons\b | \bwho\s+(?:holds|owns)\s+the\s+copyright\b
    | \btitle\s+of\s+{_PAPER}\b | \bwhat\s+is\s+(?:the|this)\s+{_DOC}\s+(?:called|titled)\b
    | \b(?:url|web\s*(?:site|page)|link)\s+(?:of|for|to)\s+{_PAPER}\b
    | \bkey\s*words\s+(?:of|for)\s+{_PAPER} | \bwhat\s+are\s+the\s+key\s*words\s*(?:\?|$)
    """,
    re.I | re.X,
)
_ASKS_REFERENCES_RE = re.compile(
    rf"""
    \b(?:the|its|their|{_DOC}'s|what|which|any|list(?:\s+of)?|show(?:\s+me)?(?:\s+the)?)\s+
        (?:references|citations)\b(?!\s+to\b)
    | \b(?:references|citations)\s+(?:does|do|did|are|were|in|of|used|cited|listed|section)\b
    | \breference\s+(?:list|\[?\d+\]?|number\s+\d+)\b | \bref\.?\s*\d+\b
    | \bbibliograph\w* | \bworks\s+cited\b | \bliterature\s+cited\b
    | \b(?:does|do|did)\s+(?:{_PAPER}|(?:the\s+)?authors?|they)\s+cite\b
    | \b(?:studies|papers|articles|works|sources|publications|literature|authors)\s+
        (?:are\s+|were\s+|is\s+)?(?:cited|referenced|quoted)\b
    | \b(?:cited|referenced)\s+(?:in|by)\s+{_PAPER}\b
    | \bwhat\s+sources\s+(?:does|do|did)\s+(?:{_PAPER}|(?:the\s+)?authors?|they)\b
    """,
    re.I | re.X,
)


def asks_about(question: str) -> set[str]:
    """The non-body kinds ``question`` is about: ``{"front"}`` for the paper's authors,
    publication date, journal, DOI, licence, title or affiliations; ``{"references"}`` for
    its references and citations. Captions are answerable anyway and never asked about."""
    kinds: set[str] = set()
    if _ASKS_FRONT_RE.search(question):
        kinds.add(FRONT)
    if _ASKS_REFERENCES_RE.search(question):
        kinds.add(REFERENCES)
    return kinds


__all__ = [
    "BODY",
    "CAPTION",
    "FRONT",
    "KINDS",
    "REFERENCES",
    "Region",
    "Summary",
    "asks_about",
    "cut_points",
    "describe",
    "find_regions",
    "kind_of",
    "summarize",
]
