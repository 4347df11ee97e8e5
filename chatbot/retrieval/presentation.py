"""Presentation: the ranked passages as hits, each text shown once, with a highlight sentence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..lexical import tokenize
from ..types import Hit, Passage, Span


def unshown(p: Passage, shown: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The document span of ``p``'s sentences that overlap none of the ``shown`` spans (same
    document), from the first such sentence to the last; None if every sentence was shown.

    Neighbouring windows share a sentence, so a runner-up is trimmed to what is new in it.
    """
    keep = [
        (s, e)
        for s, e in p.sentences
        if not any(p.start + s < b and a < p.start + e for a, b in shown)
    ]
    if not keep:
        return None
    return p.start + keep[0][0], p.start + keep[-1][1]


def text_key(text: str) -> str:
    """What makes two texts the same to a reader: whitespace runs and case ignored."""
    return " ".join(text.split()).casefold()


def highlight(
    sims: np.ndarray,
    sentences: list[tuple[int, int]],
    sentence_terms: list[set[str]],
    query_terms: list[str],
    lo: int,
    hi: int,
) -> Span:
    """The best sentence within ``[lo, hi)`` of a passage, relative to ``lo`` (``[lo, hi)``
    itself if no sentence lies inside).

    Scored by cosine (``sims``) plus 0.2 times the share of the query terms it holds, so an
    exact-wording match wins ties.
    """
    qset = set(query_terms)
    best, best_score = (lo, hi), -np.inf
    for j, (s, e) in enumerate(sentences):
        if s < lo or e > hi:
            continue
        overlap = len(qset & sentence_terms[j]) / len(qset) if qset else 0.0
        score = float(sims[j]) + 0.2 * overlap
        if score > best_score:
            best, best_score = (s, e), score
    return Span(best[0] - lo, best[1] - lo)


class Presenter:
    """Turns a ranking into hits over ``passages``; ``passage_sentences(i)`` gives passage
    ``i``'s sentence vectors (for the highlight)."""

    def __init__(
        self, passages: list[Passage], passage_sentences: Callable[[int], np.ndarray]
    ) -> None:
        self._passages = passages
        self._passage_sentences = passage_sentences
        self._sentence_terms: dict[int, list[set[str]]] = {}

    def hits(
        self,
        cand: np.ndarray,
        scores: np.ndarray,
        order: np.ndarray,
        qvec: np.ndarray,
        terms: list[str],
        k: int,
    ) -> list[Hit]:
        """The first ``k`` hits of ``order`` (positions in ``cand``, ``scores`` aligned).

        A passage overlapping a better-ranked one is trimmed to its sentences not shown yet
        (:func:`unshown`), or skipped if none are left; text already shown (from another
        document, or another passage) is skipped too.
        """
        hits: list[Hit] = []
        shown: dict[str, list[tuple[int, int]]] = {}
        seen_text: set[str] = set()
        for o in order:
            i = int(cand[o])
            p = self._passages[i]
            spans = shown.setdefault(p.source, [])
            span = unshown(p, spans)
            if span is None:
                continue
            start, end = span
            text = p.text[start - p.start : end - p.start]
            key = text_key(text)
            if key in seen_text:
                continue
            seen_text.add(key)
            spans.append((start, end))
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    passage_id=i,
                    text=text,
                    source=p.source,
                    start=start,
                    end=end,
                    heading=p.heading,
                    score=float(scores[o]),
                    highlight=self.highlight(i, qvec, terms, start - p.start, end - p.start),
                    page=p.page,
                )
            )
            if len(hits) >= k:
                break
        return hits

    def highlight(self, i: int, qvec: np.ndarray, terms: list[str], lo: int, hi: int) -> Span:
        """:func:`highlight` within ``[lo, hi)`` of passage ``i`` (sentence terms cached)."""
        p = self._passages[i]
        sims = self._passage_sentences(i) @ qvec
        sentence_terms = self._sentence_terms.get(i)
        if sentence_terms is None:
            sentence_terms = [set(tokenize(p.text[s:e])) for s, e in p.sentences]
            self._sentence_terms[i] = sentence_terms
        return highlight(sims, p.sentences, sentence_terms, terms, lo, hi)
