"""Retrieval: fuse dense and lexical evidence, rank passages, decide whether to answer."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from .config import ABSTAIN_MESSAGE
from .embedder import Embedder
from .index import Index, match_text
from .lexical import tokenize
from .types import Answer, Hit, Span

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fusion:
    """Weights of the evidence mix and of the confidence model (tuned in ``bench/``)."""

    w_passage: float = 0.35  # cosine(question, passage with heading)
    w_sentence: float = 0.35  # best cosine(question, one sentence of the passage)
    w_lexical: float = 0.30  # BM25 / BM25 of an ideal passage holding every query term
    candidates: int = 50  # per evidence source, before fusion
    # confidence = sigmoid(slope * (sentence_cos + cov_weight * coverage - center))
    conf_center: float = 0.62
    conf_slope: float = 12.0
    conf_coverage: float = 0.5


@dataclass
class Features:
    """Evidence for one question's candidates (aligned arrays) and the question's tokens."""

    cand: np.ndarray
    dense: np.ndarray
    sentence: np.ndarray
    lexical: np.ndarray
    tokens: list[str]


class Retriever:
    """Answers questions from one loaded :class:`Index` with one embedder."""

    def __init__(
        self, index: Index, embedder: Embedder, threshold: float = 0.5, fusion: Fusion = Fusion()
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.threshold = threshold
        self.fusion = fusion
        self._nsent = np.fromiter(
            (len(p.sentences) for p in index.passages), dtype=np.int64, count=len(index.passages)
        )
        self._idf, self._idf_unknown = self._idf_table()
        self._tokens: dict[int, set[str]] = {}  # passage id -> tokens (with heading context)
        self._sent_tokens: dict[int, list[set[str]]] = {}

    def _idf_table(self) -> tuple[dict[str, float], float]:
        """Per-term IDF from the BM25 index; terms the corpus lacks get the highest IDF."""
        n = max(self.index.lexical.size, 1)
        unknown = math.log(1 + (n + 0.5) / 0.5)
        retriever = self.index.lexical.retriever
        vocab = getattr(retriever, "vocab_dict", None) or {}
        indptr = retriever.scores.get("indptr") if isinstance(retriever.scores, dict) else None
        if indptr is None:
            return {}, unknown
        df = np.diff(indptr)
        idf = {
            t: math.log(1 + (n - df[i] + 0.5) / (df[i] + 0.5))
            for t, i in vocab.items()
            if i < len(df)
        }
        return idf, unknown

    # ------------------------------------------------------------------------- public API

    def ask(self, question: str, k: int = 3, query: str | None = None) -> Answer:
        """Answer one question (``query`` overrides the retrieval text, e.g. for follow-ups)."""
        query = query or question
        qvec = self.embedder.encode([query])[0]
        return self.answer_with_vector(question, query, qvec, k)

    def ask_many(self, questions: list[str], k: int = 3, batch_size: int = 64) -> list[Answer]:
        """Answer a batch: questions are embedded together, which is much faster."""
        qvecs = self.embedder.encode(questions, batch_size=batch_size)
        dense_ids = self._dense_candidates(qvecs)
        return [
            self.answer_with_vector(q, q, v, k, ids)
            for q, v, ids in zip(questions, qvecs, dense_ids, strict=True)
        ]

    def answer_with_vector(
        self,
        question: str,
        query: str,
        qvec: np.ndarray,
        k: int,
        dense_ids: np.ndarray | None = None,
    ) -> Answer:
        """Rank passages for an already-embedded query and decide whether to answer."""
        feats = self.features(query, qvec, dense_ids)
        if feats is None:
            return Answer(question, False, ABSTAIN_MESSAGE, 0.0, [], query=query)
        fused = self.fuse(feats)
        order = np.argsort(-fused, kind="stable")
        top = int(order[0])
        confidence = self._confidence(
            float(feats.sentence[top]), self._coverage(feats.tokens, int(feats.cand[top]))
        )
        hits = self._hits(feats, fused, order, qvec, k)
        answered = confidence >= self.threshold
        return Answer(
            question=question,
            answered=answered,
            answer=hits[0].text if answered else ABSTAIN_MESSAGE,
            confidence=confidence,
            hits=hits,
            query=query,
        )

    # ------------------------------------------------------------------------- evidence

    def _dense_candidates(self, qvecs: np.ndarray) -> np.ndarray:
        n = len(self.index.passages)
        c = min(self.fusion.candidates, n)
        if c == 0:
            return np.zeros((len(qvecs), 0), dtype=np.int64)
        _, ids = self.index.faiss_index.search(np.ascontiguousarray(qvecs, np.float32), c)
        return ids

    def features(
        self, query: str, qvec: np.ndarray, dense_ids: np.ndarray | None = None
    ) -> Features | None:
        """Candidate passages (top dense ∪ top BM25) with their dense, sentence, BM25 evidence."""
        idx = self.index
        n = len(idx.passages)
        if n == 0 or not query.strip():
            return None
        if dense_ids is None:
            dense_ids = self._dense_candidates(qvec.reshape(1, -1))[0]
        tokens = tokenize(query)
        bm25 = idx.lexical.scores(tokens) if tokens else np.zeros(n, np.float32)
        c = min(self.fusion.candidates, n)
        top_bm25 = float(bm25.max())
        if top_bm25 > 0 and c < n:
            lex_ids = np.argpartition(-bm25, c - 1)[:c]
            cand = np.union1d(dense_ids[dense_ids >= 0], lex_ids)
        elif top_bm25 > 0:
            cand = np.arange(n)
        else:
            cand = np.unique(dense_ids[dense_ids >= 0])
        dense = idx.vectors[cand] @ qvec
        # Best sentence per candidate: gather their sentence rows, then a segmented max.
        counts = self._nsent[cand]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rows = np.repeat(idx.sentence_start[cand] - offsets, counts) + np.arange(counts.sum())
        sentence = np.maximum.reduceat(idx.sentence_vectors[rows] @ qvec, offsets)
        # BM25 relative to the score of a passage holding every query term once: a query whose
        # terms the corpus lacks (a paraphrase, or off-topic) gets weak lexical evidence,
        # instead of crowning whichever passage matched its one common word.
        ideal = sum(self._idf.get(t, self._idf_unknown) for t in tokens)
        lexical = bm25[cand] / ideal if ideal > 0 else np.zeros(len(cand), np.float32)
        return Features(cand, dense, sentence, lexical, tokens)

    def fuse(self, f: Features) -> np.ndarray:
        """A convex mix of passage cosine, best-sentence cosine and ideal-normalised BM25."""
        w = self.fusion
        return w.w_passage * f.dense + w.w_sentence * f.sentence + w.w_lexical * f.lexical

    def passage_tokens(self, i: int) -> set[str]:
        tokens = self._tokens.get(i)
        if tokens is None:
            p = self.index.passages[i]
            tokens = set(tokenize(match_text(p, self.index.documents[p.source].title)))
            self._tokens[i] = tokens
        return tokens

    def _coverage(self, tokens: list[str], i: int) -> float:
        """IDF-weighted share of the query's terms found in passage ``i`` (with heading)."""
        if not tokens:
            return 0.0
        present = self.passage_tokens(i)
        weights = {t: self._idf.get(t, self._idf_unknown) for t in set(tokens)}
        total = sum(weights.values())
        return sum(w for t, w in weights.items() if t in present) / total if total else 0.0

    def _confidence(self, sentence_cos: float, coverage: float) -> float:
        f = self.fusion
        z = f.conf_slope * (sentence_cos + f.conf_coverage * coverage - f.conf_center)
        return 1.0 / (1.0 + math.exp(-z))

    # ------------------------------------------------------------------------- results

    def _hits(
        self, f: Features, fused: np.ndarray, order: np.ndarray, qvec: np.ndarray, k: int
    ) -> list[Hit]:
        """Top ``k`` passages, skipping near-duplicates (overlapping or identical text)."""
        hits: list[Hit] = []
        taken: list[tuple[str, int, int]] = []
        seen_text: set[str] = set()
        for o in order:
            i = int(f.cand[o])
            p = self.index.passages[i]
            key = " ".join(p.text.split()).casefold()
            if key in seen_text or any(
                s == p.source and p.start < e and st < p.end for s, st, e in taken
            ):
                continue
            seen_text.add(key)
            taken.append((p.source, p.start, p.end))
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    passage_id=i,
                    text=p.text,
                    source=p.source,
                    start=p.start,
                    end=p.end,
                    heading=p.heading,
                    score=float(fused[o]),
                    highlight=self._highlight(i, qvec, f.tokens),
                    page=p.page,
                )
            )
            if len(hits) >= k:
                break
        return hits

    def _highlight(self, i: int, qvec: np.ndarray, tokens: list[str]) -> Span:
        """The passage's best-matching sentence (relative offsets): cosine plus term overlap."""
        p = self.index.passages[i]
        if len(p.sentences) <= 1:
            s, e = p.sentences[0] if p.sentences else (0, len(p.text))
            return Span(s, e)
        sims = self.index.passage_sentences(i) @ qvec
        sent_tokens = self._sent_tokens.get(i)
        if sent_tokens is None:
            sent_tokens = [set(tokenize(p.text[s:e])) for s, e in p.sentences]
            self._sent_tokens[i] = sent_tokens
        qset = set(tokens)
        scores = [
            float(sims[j]) + (0.2 * len(qset & words) / len(qset) if qset else 0.0)
            for j, words in enumerate(sent_tokens)
        ]
        s, e = p.sentences[int(np.argmax(scores))]
        return Span(s, e)
