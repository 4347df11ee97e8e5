"""Candidates: the passages worth scoring, the top dense (FAISS) ids ∪ the top BM25 passages."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..lexical import LexicalIndex


class VectorSearch(Protocol):
    """What candidates need of a FAISS index: ``search(queries, k) -> (scores, ids)``."""

    def search(self, x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def dense_search(index: VectorSearch, qvecs: np.ndarray, per_source: int, n: int) -> np.ndarray:
    """(queries, min(per_source, n)) ids of the passages nearest each query vector, best first,
    for all queries in one search (FAISS pads with -1 when it finds fewer)."""
    c = min(per_source, n)
    if c == 0:
        return np.zeros((len(qvecs), 0), dtype=np.int64)
    _, ids = index.search(np.ascontiguousarray(qvecs, np.float32), c)
    return ids


def bm25_scores(lexical: LexicalIndex, terms: list[str], n: int) -> np.ndarray:
    """BM25 score of each of the ``n`` passages for one query's terms (0 without terms)."""
    return lexical.scores(terms) if terms else np.zeros(n, np.float32)


def union(dense_ids: np.ndarray, bm25: np.ndarray, per_source: int) -> np.ndarray:
    """Sorted passage ids: ``dense_ids`` (-1 = none) ∪ the ``per_source`` best BM25 scores.

    BM25 adds nothing when no passage scores above 0; when ``per_source`` covers every passage
    and BM25 found something, every passage is a candidate.
    """
    n = len(bm25)
    c = min(per_source, n)
    top_bm25 = float(bm25.max())
    if top_bm25 > 0 and c >= n:
        return np.arange(n)
    # a mask is cheaper than union1d's sort
    mask = np.zeros(n, dtype=bool)
    mask[dense_ids[dense_ids >= 0]] = True
    if top_bm25 > 0:
        mask[np.argpartition(-bm25, c - 1)[:c]] = True
    return np.flatnonzero(mask)
