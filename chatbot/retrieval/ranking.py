"""Ranking: the weighted evidence mix, then token match re-scores the head of that ranking.

Token match is late interaction, as in ColBERT: each content word of the question takes its
best cosine with a content token of the passage (MiniLM's contextual token vectors, from the
same forward pass as the question vector). It costs one small product per passage, so only the
best few candidates of the mix get it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..embedder import TokenVectors
from ..index import segment_offsets
from ..lexical import tokenize
from .evidence import Features

_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class Fusion:
    """Weights of the evidence mix and of the confidence model (tuned in ``bench/``)."""

    w_passage: float = 0.34  # cosine(question, passage with heading)
    w_sentence: float = 0.33  # best cosine(question, one sentence of the passage)
    w_lexical: float = 0.33  # BM25 / BM25 of an ideal passage holding every query term
    # Token match, added for the ``rerank`` best candidates of the mix above: the mean over
    # the question's content words of each word's best cosine among the passage's content
    # tokens (contextual token vectors from the same model: late interaction, as in ColBERT).
    w_token: float = 0.8
    candidates: int = 50  # per evidence source, before fusion
    rerank: int = 10  # at most this many candidates get token match: those within
    rerank_margin: float = 0.1  # this much of the best mix score (further down, token
    # match rarely makes up the gap: bench/README.md)
    # confidence = sigmoid(conf_specific * specific match of the top passage - conf_bias), a
    # logistic fit (bench/calibrate.py) of "top passage is right" on SQuAD dev questions (own
    # article indexed = answerable, own article masked = unanswerable) and the vitamin K2 dev
    # questions (off-topic ones included: many name the article's subject, not its content).
    conf_specific: float = 10.12
    conf_bias: float = 5.01


@dataclass
class Ranking:
    """The ranking of one question's candidates (arrays aligned with ``Features.cand``)."""

    scores: np.ndarray  # the mix, plus w_token * token match for the re-scored head
    order: np.ndarray  # positions in the candidates, best first
    token_match: np.ndarray  # mean of word_match over the question's words; 0 off the head
    word_scores: dict[int, np.ndarray]  # passage id -> its word_match column (head only)
    fused: np.ndarray  # the evidence mix alone (:func:`fuse`), before token match


def fuse(w: Fusion, dense: np.ndarray, sentence: np.ndarray, lexical: np.ndarray) -> np.ndarray:
    """The convex mix of passage cosine, best-sentence cosine and ideal-normalised BM25."""
    return w.w_passage * dense + w.w_sentence * sentence + w.w_lexical * lexical


def rerank_head(fused: np.ndarray, order: np.ndarray, count: int, margin: float) -> np.ndarray:
    """The candidates token match re-scores: the first ``count`` of ``order`` that are within
    ``margin`` of the best mix score."""
    head = order[:count]
    if len(head):
        head = head[fused[head] >= fused[head[0]] - margin]
    return head


def rank(w: Fusion, f: Features, word_match: Callable[[np.ndarray], np.ndarray]) -> Ranking:
    """Rank by the mix, then re-score and re-sort its head (:func:`rerank_head`) with
    ``w_token`` times the token match; the rest keeps its mix order below the head.

    ``word_match(passage ids)`` gives (question words, passages) scores.
    """
    fused = fuse(w, f.dense, f.sentence, f.lexical)
    order = np.argsort(-fused, kind="stable")
    head = rerank_head(fused, order, w.rerank if w.w_token else 0, w.rerank_margin)
    per_word = word_match(f.cand[head])
    token_match = np.zeros(len(f.cand), np.float32)
    word_scores: dict[int, np.ndarray] = {}
    if len(per_word):
        token_match[head] = per_word.mean(axis=0)
        word_scores.update((int(c), per_word[:, j]) for j, c in enumerate(f.cand[head]))
    scores = fused + w.w_token * token_match
    head = head[np.argsort(-scores[head], kind="stable")]
    order = np.concatenate([head, order[len(head) :]])
    return Ranking(scores, order, token_match, word_scores, fused)


def digit_words(surface: Sequence[str]) -> list[tuple[int, set[str]]]:
    """(word number, BM25 terms) of the words that contain a digit ("B12", "1995", "MK-7")."""
    out = []
    for n, word in enumerate(surface):
        if _DIGIT.search(word) and (terms := tokenize(word)):
            out.append((n, set(terms)))
    return out


def apply_digit_rule(
    best: np.ndarray,
    digits: list[tuple[int, set[str]]],
    passages: Sequence[int],
    passage_terms: Callable[[int], set[str]],
) -> None:
    """Zero (in place) the score ``best[word, j]`` of each digit word (:func:`digit_words`)
    whose terms passage ``passages[j]`` lacks: embeddings tell "vitamin B12" from "vitamin K2"
    poorly, so such a word counts only where the passage has it verbatim."""
    for n, terms in digits:
        for j, pid in enumerate(passages):
            if not terms <= passage_terms(pid):
                best[n, j] = 0.0


def word_means(best: np.ndarray, words: np.ndarray) -> np.ndarray:
    """Rows of per-token scores averaged per word (``words`` numbers each token's word, in
    order): a word of several word pieces scores the mean of its pieces."""
    pieces = np.bincount(words)
    return np.add.reduceat(best, segment_offsets(pieces), axis=0) / pieces[:, None]


class PassageTerms:
    """Each passage's BM25 terms as a set (``terms_of(passage)``), made on first use."""

    def __init__(self, terms_of: Callable[[int], list[str]]) -> None:
        self._terms_of = terms_of
        self._sets: dict[int, set[str]] = {}

    def __call__(self, i: int) -> set[str]:
        terms = self._sets.get(i)
        if terms is None:
            terms = set(self._terms_of(i))
            if len(self._sets) < 10_000:
                self._sets[i] = terms
        return terms


class TokenMatcher:
    """Token match of a question's words with passages' content-token vectors.

    ``passage_tokens(p)`` gives passage ``p``'s content-token vectors (float32, decoded from
    the index's storage), ``token_counts[p]`` how many it has.
    """

    def __init__(
        self,
        passage_tokens: Callable[[int], np.ndarray],
        token_counts: np.ndarray,
        passage_terms: Callable[[int], set[str]],
    ) -> None:
        self._tokens = passage_tokens
        self._counts = token_counts
        self._passage_terms = passage_terms

    def word_match(self, q: TokenVectors, passages: np.ndarray) -> np.ndarray:
        """(question content words, passages): each word's best cosine with one of the
        passage's content tokens (a word of several pieces: their mean; a word with a digit:
        :func:`apply_digit_rule`); 0 for a passage without tokens."""
        nwords = int(q.words[-1]) + 1 if len(q.words) else 0
        out = np.zeros((nwords, len(passages)), np.float32)
        counts = self._counts[passages]
        has = counts > 0
        if not nwords or not has.any():
            return out
        kept = passages[has].tolist()
        best = np.empty((len(q.vectors), len(kept)), np.float32)
        for j, p in enumerate(kept):
            (q.vectors @ self._tokens(p).T).max(axis=1, out=best[:, j])
        if len(q.words) > nwords:  # some words have several pieces
            best = word_means(best, q.words)
        apply_digit_rule(best, digit_words(q.surface), kept, self._passage_terms)
        out[:, has] = best
        return out
