"""Evidence per candidate passage: passage cosine, best-sentence cosine, ideal-normalised BM25."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..index import segment_offsets


@dataclass
class Features:
    """One question's candidates (passage ids) with their evidence, aligned arrays, and the
    question's BM25 terms."""

    cand: np.ndarray  # passage ids, ascending
    dense: np.ndarray  # cosine(question, passage with heading)
    sentence: np.ndarray  # best cosine(question, one sentence of the passage)
    lexical: np.ndarray  # BM25 / BM25 of an ideal passage (see ideal_normalised)
    terms: list[str]  # the question's BM25 terms

    def select(self, keep: np.ndarray) -> Features:
        """The same evidence for the candidates where ``keep`` (aligned with ``cand``) is true:
        e.g. to rank as if some passages were not indexed (``bench/calibrate.py``)."""
        return Features(
            self.cand[keep], self.dense[keep], self.sentence[keep], self.lexical[keep], self.terms
        )


def passage_cosine(vectors: np.ndarray, cand: np.ndarray, qvec: np.ndarray) -> np.ndarray:
    """Cosine of the (normalised) query vector with each candidate's passage vector."""
    return vectors[cand] @ qvec


def best_sentence_cosine(
    sentence_rows: np.ndarray, sentence_counts: np.ndarray, qvec: np.ndarray
) -> np.ndarray:
    """Each candidate's best sentence cosine: ``sentence_rows`` holds the candidates'
    sentence vectors end to end (``sentence_counts`` per candidate, each at least 1: the
    splitter gives every passage a sentence); one product, then a segmented max."""
    return np.maximum.reduceat(sentence_rows @ qvec, segment_offsets(sentence_counts))


def ideal_normalised(bm25: np.ndarray, term_idfs: Iterable[float]) -> np.ndarray:
    """BM25 scores relative to the score of a passage holding every query term once (the sum
    of the terms' IDFs; a term the corpus lacks has the highest IDF).

    A query whose terms the corpus lacks (a paraphrase, or off-topic) so gets weak lexical
    evidence, instead of crowning whichever passage matched its one common word.
    """
    ideal = sum(term_idfs)
    return bm25 / ideal if ideal > 0 else np.zeros(len(bm25), np.float32)
