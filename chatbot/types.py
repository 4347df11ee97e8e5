"""Small typed results shared by every surface (CLI, batch, chat, tests)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Span:
    """Half-open character span ``[start, end)``."""

    start: int
    end: int


@dataclass
class Document:
    """A document's text as indexed.

    ``text`` is what passage offsets refer to: for ``.txt``/``.md`` it is the file read as
    UTF-8 with no newline translation; for other formats it is the extracted text, stored
    in the index so the verbatim guarantee holds for every format.
    ``headings`` are spans of heading lines (never answers by themselves); ``pages`` are
    ``(start, end, page_number)`` spans for paginated formats; ``regions`` are
    ``(start, end, kind)`` spans of what is not body text: front matter, references,
    captions (:mod:`chatbot.structure`).
    """

    source: str
    text: str
    title: str = ""
    headings: list[Span] = field(default_factory=list)
    pages: list[tuple[int, int, int]] = field(default_factory=list)
    regions: list[tuple[int, int, str]] = field(default_factory=list)


@dataclass
class Passage:
    """A verbatim slice of a document: ``text == document.text[start:end]``."""

    text: str
    source: str
    start: int
    end: int
    heading: str = ""
    page: int | None = None
    # Sentence spans relative to the passage start (used for the highlight).
    sentences: list[tuple[int, int]] = field(default_factory=list)
    # "body", or what :mod:`chatbot.structure` recognised: "front" (front matter),
    # "references" (a reference list; neither is an answer unless asked about) or "caption".
    kind: str = "body"


@dataclass
class Hit:
    """A ranked passage returned for a question."""

    rank: int
    passage_id: int
    text: str
    source: str
    start: int
    end: int
    heading: str
    score: float
    highlight: Span
    page: int | None = None
    # Calibrated probability that this passage answers the question (the one number shown);
    # ``score`` is the ranking score, kept in JSON but never shown as a badge.
    confidence: float = 0.0
    kind: str = "body"  # the passage's kind (Passage.kind)

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON: one entry of an answer record's ``"passages"``."""
        d = {
            "rank": self.rank,
            "text": self.text,
            "confidence": round(float(self.confidence), 4),
            "score": round(float(self.score), 4),
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "heading": self.heading,
            "highlight": {"start": self.highlight.start, "end": self.highlight.end},
        }
        if self.page is not None:
            d["page"] = self.page
        if self.kind != "body":
            d["kind"] = self.kind
        return d


TIERS = ("answer", "possible", "none")


def tier_of(confidence: float, threshold: float, possible_threshold: float) -> str:
    """The tier of a top passage with this ``confidence``: ``"answer"`` at or above
    ``threshold``, ``"possible"`` at or above ``possible_threshold``, else ``"none"``."""
    if confidence >= threshold:
        return "answer"
    if confidence >= possible_threshold:
        return "possible"
    return "none"


@dataclass
class Answer:
    """The result of asking one question: the top passage verbatim, or an abstention.

    ``tier``: ``"answer"`` (quoted as the answer; ``answered`` is true only here),
    ``"possible"`` (a passage that may answer: shown, marked to be checked) or ``"none"``
    (not found: the nearest passages only).
    """

    question: str
    answered: bool
    answer: str
    confidence: float
    hits: list[Hit]
    query: str = ""  # the retrieval query actually used (differs for follow-ups)
    id: str = ""
    tier: str = ""

    def __post_init__(self) -> None:
        if not self.tier:
            self.tier = "answer" if self.answered else "none"

    def to_dict(self, *, query: bool = False) -> dict[str, Any]:
        """The answer as JSON: one record of ``chatbot ask`` (what :mod:`chatbot.batchio`
        writes and :mod:`chatbot.evaluate` scores). ``query=True`` adds ``"query"``, the text
        actually searched (the chat server's ``/ask`` endpoint returns that)."""
        record: dict[str, Any] = {
            "id": self.id,
            "question": self.question,
            "answered": self.answered,
            "tier": self.tier,
            "answer": self.answer,
            "confidence": round(float(self.confidence), 4),
            "passages": [h.to_dict() for h in self.hits],
        }
        if query:
            record["query"] = self.query or self.question
        return record


__all__ = ["TIERS", "Answer", "Document", "Hit", "Passage", "Span", "asdict", "tier_of"]
