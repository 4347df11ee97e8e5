"""Confidence: the top passage's *specific* match, through a logistic function.

The specific match is token match with each question word weighted by how specific it is in
the corpus (its IDF), so words found everywhere count little: "Is vitamin K2 safe during
pregnancy?" matches an article on vitamin K2 only as well as "safe during pregnancy" does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..lexical import LexicalIndex, tokenize
from ..spelling import MAX_WORD_CHARS

CACHE_WORDS = 100_000  # at most this many word weights are kept


class WordWeights:
    """How specific each question word is: the mean BM25 IDF of its terms, each capped at the
    IDF of a term found in one passage (which is also what a word the corpus lacks, or one
    without terms, gets). Words in every passage weigh about 0.

    Weights are cached, bounded: at most :data:`CACHE_WORDS` words, none over
    ``max_word_chars`` (a question may hold one of thousands of characters).
    """

    def __init__(self, lexical: LexicalIndex, max_word_chars: int = MAX_WORD_CHARS) -> None:
        self._lexical = lexical
        self._rare = lexical.idf_single
        self.max_word_chars = max_word_chars
        self.cache: dict[str, float] = {}

    def __call__(self, words: Sequence[str]) -> np.ndarray:
        """The weights of ``words`` (a question's content words, ``TokenVectors.surface``)."""
        return np.array([self.weight(w) for w in words], dtype=np.float32)

    def weight(self, word: str) -> float:
        weight = self.cache.get(word)
        if weight is None:
            rare = self._rare
            terms = tokenize(word)
            weight = (
                sum(min(self._lexical.idf(t, rare), rare) for t in terms) / len(terms)
                if terms
                else rare
            )
            if len(self.cache) < CACHE_WORDS and len(word) <= self.max_word_chars:
                self.cache[word] = weight
        return weight


def specific_match(weights: np.ndarray, per_word: np.ndarray) -> float:
    """The ``weights``-weighted mean of one passage's per-word token match (0 when the
    question has no weighted words)."""
    return float(weights @ per_word / weights.sum()) if weights.sum() > 0 else 0.0


def logistic(specific: float, slope: float, bias: float) -> float:
    """How likely the top passage answers the question, in [0, 1]:
    ``sigmoid(slope * specific - bias)`` (``Fusion.conf_specific``, ``Fusion.conf_bias``)."""
    z = slope * specific - bias
    return 1.0 / (1.0 + math.exp(-z))
