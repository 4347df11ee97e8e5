"""Candidates: the passages worth scoring, the top dense (FAISS) ids ∪ the top BM25 passages."""

from __future__ import annotations

from typing import Protocol

import numpy as np


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


def union(
    dense_ids: np.ndarray, bm25: tuple[np.ndarray, np.ndarray], per_source: int, n: int
) -> np.ndarray:
    """Sorted passage ids: ``dense_ids`` (-1 = none) ∪ the ``per_source`` best BM25 scores
    among the ``n`` passages (``bm25`` as :meth:`LexicalIndex.sparse_scores` gives them).

    BM25 adds nothing when no passage scores above 0; when ``per_source`` covers every passage
    and BM25 found something, every passage is a candidate.
    """
    ids, scores = bm25
    c = min(per_source, n)
    if c >= n and (scores > 0).any():
        return np.arange(n)
    pos = np.argpartition(-scores, c - 1)[:c] if len(ids) > c else np.arange(len(ids))
    top = ids[pos][scores[pos] > 0]
    return np.union1d(dense_ids[dense_ids >= 0], top).astype(np.int64)


def bm25_of(bm25: tuple[np.ndarray, np.ndarray], cand: np.ndarray) -> np.ndarray:
    """The BM25 scores of passages ``cand`` (0 for those holding no query term)."""
    ids, scores = bm25
    if not len(ids):
        return np.zeros(len(cand), np.float32)
    at = np.minimum(np.searchsorted(ids, cand), len(ids) - 1)
    return np.where(ids[at] == cand, scores[at], np.float32(0)).astype(np.float32)
