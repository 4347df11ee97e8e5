"""Lexical evidence: normalised tokens (case, accents, stems, stopwords) and a BM25 index."""

from __future__ import annotations

import logging
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

log = logging.getLogger(__name__)

# Function words and question words: they carry no topic, and BM25 would reward them.
_STOPWORD_TEXT = (
    "a about above after again against all also am an and any are as at be because been "
    "before being below between both but by can could did do does doing done down during each "
    "else ever few for from further had has have having he her here hers herself him himself "
    "his how i if in into is it its itself just let me more most much my myself no nor not "
    "now of off on once only or other others our ours ourselves out over own per please same "
    "she should so some such tell than that the their theirs them themselves then there these "
    "they this those through to too under until up us very was we were what whats when where "
    "whether which while who whom whose why will with within would you your yours yourself "
    "yourselves s t d ll m re ve "
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_TOKEN_RE = re.compile(r"[^\W_]+", re.UNICODE)
_COMPOUND_RE = re.compile(r"[^\W_]+(?:[-‐–][^\W_]+)+")
_HYPHEN_RE = re.compile(r"[-‐–]")


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def fold(text: str) -> str:
    """Case- and accent-fold text (NFKD without combining marks, then casefold)."""
    if text.isascii():
        return text.casefold()
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def tokenize(text: str) -> list[str]:
    """Tokens for BM25: folded, stopwords dropped, Snowball-stemmed.

    Hyphenated and letter-digit compounds ("MK-4", "K2") also yield their joined form, so
    "mk4" and "MK-4" match.
    """
    folded = fold(text)
    words = _TOKEN_RE.findall(folded)
    tokens = [w for w in words if w not in STOPWORDS]
    if "-" in folded or "‐" in folded or "–" in folded:  # the regex below costs ~30 µs
        for m in _COMPOUND_RE.finditer(folded):
            tokens.append(_HYPHEN_RE.sub("", m.group()))
    return _stemmer().stemWords(tokens)


class LexicalIndex:
    """BM25 over passage token lists (bm25s), rebuilt whole so statistics are never stale."""

    def __init__(self, retriever: bm25s.BM25, size: int) -> None:
        self.retriever = retriever
        self.size = size

    @classmethod
    def build(cls, token_lists: list[list[str]]) -> LexicalIndex:
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        # Empty token lists would break bm25s; a placeholder token matches no query.
        retriever.index([t or ["\x00"] for t in token_lists], show_progress=False)
        return cls(retriever, len(token_lists))

    def scores(self, tokens: list[str]) -> np.ndarray:
        """BM25 score of every passage for one tokenised query."""
        if not self.size:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)

    def save(self, path: Path) -> None:
        self.retriever.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path, size: int) -> LexicalIndex:
        retriever = bm25s.BM25.load(str(path), show_progress=False, verbosity=0)
        return cls(retriever, size)
