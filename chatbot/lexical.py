"""Lexical evidence: BM25 terms (case, accents, stems, stopwords) and a BM25 index.

Only this module knows bm25s: retrieval asks :class:`LexicalIndex` for scores and IDFs.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
import Stemmer
from scipy import sparse

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
    """BM25 terms of ``text``: folded words, stopwords dropped, Snowball-stemmed.

    Hyphenated compounds ("MK-4", "omega-3") also yield their joined form, so "mk4" and
    "MK-4" match.
    """
    folded = fold(text)
    words = _TOKEN_RE.findall(folded)
    tokens = [w for w in words if w not in STOPWORDS]
    if "-" in folded or "‐" in folded or "–" in folded:  # the regex below costs ~30 µs
        for m in _COMPOUND_RE.finditer(folded):
            tokens.append(_HYPHEN_RE.sub("", m.group()))
    return _stemmer().stemWords(tokens)


class LexicalIndex:
    """BM25 over passage term lists (bm25s, Lucene IDF), rebuilt whole so statistics are never
    stale. Holds ``size`` passages."""

    def __init__(self, retriever: bm25s.BM25, size: int) -> None:
        self.retriever = retriever
        self.size = size
        self._matrix: sparse.csr_matrix | None = None  # (vocabulary, passages) BM25 weights
        self._idf: dict[str, float] | None = None
        n = max(size, 1)
        # Lucene's IDF, log(1 + (n - df + 0.5) / (df + 0.5)), for a term in no passage and in one
        self.idf_absent = math.log(1 + (n + 0.5) / 0.5)
        self.idf_single = math.log(1 + (n - 0.5) / 1.5)

    @classmethod
    def build(cls, term_lists: list[list[str]]) -> LexicalIndex:
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        # Empty term lists would break bm25s; a placeholder term matches no query.
        retriever.index([t or ["\x00"] for t in term_lists], show_progress=False)
        return cls(retriever, len(term_lists))

    def scores(self, terms: list[str]) -> np.ndarray:
        """BM25 score of every passage for one query's terms."""
        if not self.size:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(self.retriever.get_scores(terms), dtype=np.float32)

    def scores_many(self, term_lists: list[list[str]]) -> np.ndarray:
        """(queries, passages) BM25 scores of several queries: one sparse product, equal to
        :meth:`scores` per query (a repeated query term counts each time)."""
        if self._matrix is None:
            sc = self.retriever.scores
            self._matrix = sparse.csr_matrix(
                (sc["data"], sc["indices"], sc["indptr"]), shape=(len(sc["indptr"]) - 1, self.size)
            )
        vocab = self.retriever.vocab_dict
        rows, cols = [], []
        for r, terms in enumerate(term_lists):
            for t in terms:
                i = vocab.get(t)
                if i is not None:
                    rows.append(r)
                    cols.append(i)
        query = sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)),
            shape=(len(term_lists), self._matrix.shape[0]),
        )
        scores = np.asarray((query @ self._matrix).todense(), dtype=np.float32)
        extra = getattr(self.retriever, "nonoccurrence_array", None)
        if extra is not None:  # BM25L/BM25+ variants score absent terms too
            scores += (query @ sparse.csr_matrix(extra.reshape(-1, 1))).toarray()
        return scores

    def idf(self, term: str, default: float | None = None) -> float:
        """``term``'s IDF; a term no passage holds gets ``default`` (by default
        :attr:`idf_absent`, the highest IDF)."""
        return self.idf_table().get(term, self.idf_absent if default is None else default)

    def idf_table(self) -> dict[str, float]:
        """IDF of every term some passage holds (computed once)."""
        if self._idf is None:
            n = max(self.size, 1)
            vocab = getattr(self.retriever, "vocab_dict", None) or {}
            sc = self.retriever.scores
            indptr = sc.get("indptr") if isinstance(sc, dict) else None
            if indptr is None:
                self._idf = {}
            else:
                df = np.diff(indptr)  # passages holding each term
                self._idf = {
                    t: math.log(1 + (n - df[i] + 0.5) / (df[i] + 0.5))
                    for t, i in vocab.items()
                    if i < len(df)
                }
        return self._idf

    def save(self, path: Path) -> None:
        self.retriever.save(str(path), show_progress=False)

    @classmethod
    def load(cls, path: Path, size: int) -> LexicalIndex:
        retriever = bm25s.BM25.load(str(path), show_progress=False, verbosity=0)
        return cls(retriever, size)
