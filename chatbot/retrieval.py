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
    w_lexical: float = 0.30  # BM25 / best BM25 for this question
    candidates: int = 50  # per evidence source, before fusion
    # confidence = sigmoid(slope * (sentence_cos + cov_weight * coverage - center))
    conf_center: float = 0.62
    conf_slope: float = 12.0
    conf_coverage: float = 0.5


class Retriever:
    """Answers questions from one loaded :class:`Index` with one embedder."""

    def __init__(
        self, index: Index, embedder: Embedder, threshold: float = 0.5, fusion: Fusion = Fusion()
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.threshold = threshold
        self.fusion = fusion
        self._idf = self._idf_table()

    def _idf_table(self) -> dict[str, float]:
        vocab = getattr(self.index.lexical.retriever, "vocab_dict", None) or {}
        n = max(self.index.lexical.size, 1)
        scores = self.index.lexical.retriever.scores if vocab else {}
        indptr = scores.get("indptr") if isinstance(scores, dict) else None
        if indptr is None:
            return {}
        df = np.diff(indptr)
        return {
            t: math.log(1 + (n - df[i] + 0.5) / (df[i] + 0.5))
            for t, i in vocab.items()
            if i < len(df)
        }

    def ask(self, question: str, k: int = 3, query: str | None = None) -> Answer:
        """Answer one question (``query`` overrides the retrieval text, e.g. for follow-ups)."""
        query = query or question
        qvec = self.embedder.encode([query])[0]
        return self.answer_with_vector(question, query, qvec, k)

    def ask_many(self, questions: list[str], k: int = 3, batch_size: int = 64) -> list[Answer]:
        """Answer a batch: questions are embedded together, which is much faster."""
        qvecs = self.embedder.encode(questions, batch_size=batch_size)
        return [self.answer_with_vector(q, q, v, k) for q, v in zip(questions, qvecs, strict=False)]

    def answer_with_vector(self, question: str, query: str, qvec: np.ndarray, k: int) -> Answer:
        hits, confidence = self._rank(query, qvec, k)
        answered = bool(hits) and confidence >= self.threshold
        return Answer(
            question=question,
            answered=answered,
            answer=hits[0].text if answered else ABSTAIN_MESSAGE,
            confidence=confidence,
            hits=hits,
            query=query,
        )

    def _rank(self, query: str, qvec: np.ndarray, k: int) -> tuple[list[Hit], float]:
        idx = self.index
        n = len(idx.passages)
        if n == 0 or not query.strip():
            return [], 0.0
        f = self.fusion
        tokens = tokenize(query)
        bm25 = idx.lexical.scores(tokens) if tokens else np.zeros(n, np.float32)
        c = min(f.candidates, n)
        _, dense_ids = idx.faiss_index.search(qvec.reshape(1, -1).astype(np.float32), c)
        lex_ids = np.argpartition(-bm25, c - 1)[:c] if c < n else np.arange(n)
        cand = np.unique(np.concatenate([dense_ids[0][dense_ids[0] >= 0], lex_ids]))
        dp = idx.vectors[cand] @ qvec
        ds = np.array([float(np.max(idx.passage_sentences(i) @ qvec)) for i in cand])
        top_bm25 = float(bm25.max())
        lex = bm25[cand] / top_bm25 if top_bm25 > 0 else np.zeros(len(cand), np.float32)
        fused = f.w_passage * dp + f.w_sentence * ds + f.w_lexical * lex
        order = np.argsort(-fused, kind="stable")
        hits: list[Hit] = []
        taken: list[tuple[str, int, int]] = []
        seen_text: set[str] = set()
        for o in order:
            i = int(cand[o])
            p = idx.passages[i]
            key = " ".join(p.text.split()).casefold()
            if key in seen_text or any(
                s == p.source and p.start < e and st < p.end for s, st, e in taken
            ):
                continue  # near-duplicate: overlaps a better passage
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
                    highlight=self._highlight(i, qvec, tokens),
                    page=p.page,
                )
            )
            if len(hits) >= k:
                break
        top = int(cand[order[0]])
        confidence = self._confidence(float(ds[order[0]]), self._coverage(tokens, top))
        return hits, confidence

    def _coverage(self, tokens: list[str], i: int) -> float:
        """IDF-weighted share of the query's terms found in passage ``i`` (with heading)."""
        if not tokens:
            return 0.0
        p = self.index.passages[i]
        present = set(tokenize(match_text(p, self.index.documents[p.source].title)))
        weights = {t: self._idf.get(t, 0.0) for t in set(tokens)}
        total = sum(weights.values())
        if total <= 0:
            return 0.0
        return sum(w for t, w in weights.items() if t in present) / total

    def _confidence(self, sentence_cos: float, coverage: float) -> float:
        f = self.fusion
        z = f.conf_slope * (sentence_cos + f.conf_coverage * coverage - f.conf_center)
        return 1.0 / (1.0 + math.exp(-z))

    def _highlight(self, i: int, qvec: np.ndarray, tokens: list[str]) -> Span:
        """The passage's best-matching sentence, relative to the passage start."""
        p = self.index.passages[i]
        sims = self.index.passage_sentences(i) @ qvec
        qset = set(tokens)
        best, best_score = 0, -1e9
        for j, (s, e) in enumerate(p.sentences):
            words = set(tokenize(p.text[s:e]))
            overlap = len(qset & words) / len(qset) if qset else 0.0
            score = float(sims[j]) + 0.2 * overlap
            if score > best_score:
                best, best_score = j, score
        s, e = p.sentences[best] if p.sentences else (0, len(p.text))
        return Span(s, e)
