"""Retrieval: fuse dense and lexical evidence, rank passages, decide whether to answer."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from .config import ABSTAIN_MESSAGE
from .embedder import Embedder, TokenVectors
from .index import Index, segment_offsets, segment_rows
from .lexical import tokenize
from .spelling import MAX_WORD_CHARS, Speller
from .types import Answer, Hit, Span

log = logging.getLogger(__name__)

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
    conf_specific: float = 9.01
    conf_bias: float = 5.20


@dataclass
class Features:
    """Evidence for one question's candidates (aligned arrays) and the question's tokens."""

    cand: np.ndarray
    dense: np.ndarray
    sentence: np.ndarray
    lexical: np.ndarray
    tokens: list[str]
    token: np.ndarray  # token match; filled in by ``Retriever.rank`` for the best candidates
    word_scores: dict[int, np.ndarray] = field(default_factory=dict)  # passage -> word_match


class Retriever:
    """Answers questions from one loaded :class:`Index` with one embedder."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        threshold: float = 0.5,
        fusion: Fusion = Fusion(),
        max_word_chars: int = MAX_WORD_CHARS,
    ) -> None:
        """``max_word_chars`` (``Settings.max_word_chars``): longer words are never
        spelling-corrected nor corrected into, and their weights are not cached."""
        self.index = index
        self.max_word_chars = max_word_chars
        self.embedder = embedder
        self.threshold = threshold
        self.fusion = fusion
        self._nsent = np.fromiter(
            (len(p.sentences) for p in index.passages), dtype=np.int64, count=len(index.passages)
        )
        self._idf, self._idf_unknown = self._idf_table()
        n = max(index.lexical.size, 1)
        self._idf_single = math.log(1 + (n - 0.5) / 1.5)  # IDF of a term in one passage
        self._sent_tokens: dict[int, list[set[str]]] = {}
        self._term_sets: dict[int, set[str]] = {}
        self._weights: dict[str, float] = {}
        self._bm25_matrix: sparse.csr_matrix | None = None
        self._speller: Speller | None = None
        self._token_start = index.token_start.tolist()  # list: fast to index one by one

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
        """Answer one question (``query`` overrides the retrieval text, e.g. for follow-ups).

        Misspelt words of the query are corrected first (:mod:`chatbot.spelling`); the
        answer's ``query`` is the text actually searched.
        """
        query = self.spell(query or question)
        qvecs, qtokens = self.embedder.encode_with_tokens([query])
        return self.answer_with_vector(question, query, qvecs[0], k, tokens=qtokens[0])

    def ask_many(
        self,
        questions: list[str],
        k: int = 3,
        batch_size: int = 64,
        queries: list[str] | None = None,
    ) -> list[Answer]:
        """Answer a batch: questions are embedded, searched and BM25-scored together.

        ``queries`` (one per question) override the retrieval texts, as in :meth:`ask`.
        """
        queries = [self.spell(q) for q in (questions if queries is None else queries)]
        qvecs, qtokens = self.embedder.encode_with_tokens(queries, batch_size=batch_size)
        dense_ids = self._dense_candidates(qvecs)
        answers: list[Answer] = []
        for lo in range(0, len(questions), batch_size):
            part = queries[lo : lo + batch_size]
            tokens = [tokenize(q) for q in part]
            bm25 = self._bm25_many(tokens)
            answers.extend(
                self.answer_with_vector(
                    questions[lo + j],
                    q,
                    qvecs[lo + j],
                    k,
                    tokens=qtokens[lo + j],
                    dense_ids=dense_ids[lo + j],
                    lexical=(tokens[j], bm25[j]),
                )
                for j, q in enumerate(part)
            )
        return answers

    def _bm25_many(self, token_lists: list[list[str]]) -> np.ndarray:
        """BM25 scores of every passage for several queries: one sparse product, equal to
        ``LexicalIndex.scores`` per query (a repeated query term counts each time)."""
        n = len(self.index.passages)
        if self._bm25_matrix is None:
            sc = self.index.lexical.retriever.scores
            self._bm25_matrix = sparse.csr_matrix(
                (sc["data"], sc["indices"], sc["indptr"]), shape=(len(sc["indptr"]) - 1, n)
            )
        vocab = self.index.lexical.retriever.vocab_dict
        rows, cols = [], []
        for r, tokens in enumerate(token_lists):
            for t in tokens:
                i = vocab.get(t)
                if i is not None:
                    rows.append(r)
                    cols.append(i)
        query = sparse.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)),
            shape=(len(token_lists), self._bm25_matrix.shape[0]),
        )
        scores = np.asarray((query @ self._bm25_matrix).todense(), dtype=np.float32)
        extra = getattr(self.index.lexical.retriever, "nonoccurrence_array", None)
        if extra is not None:  # BM25L/BM25+ variants score absent terms too
            scores += (query @ sparse.csr_matrix(extra.reshape(-1, 1))).toarray()
        return scores

    def answer_with_vector(
        self,
        question: str,
        query: str,
        qvec: np.ndarray,
        k: int,
        *,
        tokens: TokenVectors,
        dense_ids: np.ndarray | None = None,
        lexical: tuple[list[str], np.ndarray] | None = None,
    ) -> Answer:
        """Rank passages for an already-embedded query and decide whether to answer.

        ``tokens`` is the query's token vectors (``Embedder.encode_with_tokens``); ``lexical``
        is its BM25 tokens and scores when already computed (``ask_many``).
        """
        feats = self.features(query, qvec, dense_ids, lexical)
        if feats is None:
            return Answer(question, False, ABSTAIN_MESSAGE, 0.0, [], query=query)
        scores, order = self.rank(feats, tokens)
        top = int(order[0])
        passage = int(feats.cand[top])
        specific = self.specific_match(tokens, passage, feats.word_scores.get(passage))
        confidence = self._confidence(specific)
        hits = self._hits(feats, scores, order, qvec, k)
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

    def spell(self, query: str) -> str:
        """``query`` with misspelt words corrected against the indexed documents' words (only
        with an embedder whose tokenizer tells ordinary words from misspellings)."""
        known = getattr(self.embedder, "knows_word", None)
        if known is None:
            return query
        if self._speller is None:
            texts = (d.text for d in self.index.documents.values())
            self._speller = Speller(texts, max_word_chars=self.max_word_chars)
        return self._speller.correct(query, known)

    def _dense_candidates(self, qvecs: np.ndarray) -> np.ndarray:
        n = len(self.index.passages)
        c = min(self.fusion.candidates, n)
        if c == 0:
            return np.zeros((len(qvecs), 0), dtype=np.int64)
        _, ids = self.index.faiss_index.search(np.ascontiguousarray(qvecs, np.float32), c)
        return ids

    def features(
        self,
        query: str,
        qvec: np.ndarray,
        dense_ids: np.ndarray | None = None,
        lexical: tuple[list[str], np.ndarray] | None = None,
    ) -> Features | None:
        """Candidate passages (top dense ∪ top BM25) with their dense, sentence, BM25 evidence."""
        idx = self.index
        n = len(idx.passages)
        if n == 0 or not query.strip():
            return None
        if dense_ids is None:
            dense_ids = self._dense_candidates(qvec.reshape(1, -1))[0]
        if lexical is not None:
            tokens, bm25 = lexical
        else:
            tokens = tokenize(query)
            bm25 = idx.lexical.scores(tokens) if tokens else np.zeros(n, np.float32)
        c = min(self.fusion.candidates, n)
        top_bm25 = float(bm25.max())
        if top_bm25 > 0 and c >= n:
            cand = np.arange(n)
        else:
            # union of the candidate sets, sorted: a mask is cheaper than union1d's sort
            mask = np.zeros(n, dtype=bool)
            mask[dense_ids[dense_ids >= 0]] = True
            if top_bm25 > 0:
                mask[np.argpartition(-bm25, c - 1)[:c]] = True
            cand = np.flatnonzero(mask)
        dense = idx.vectors[cand] @ qvec
        # Best sentence per candidate: gather their sentence rows, then a segmented max.
        counts = self._nsent[cand]
        rows = segment_rows(idx.sentence_start[cand], counts)
        sentence = np.maximum.reduceat(idx.sentence_vectors[rows] @ qvec, segment_offsets(counts))
        # BM25 relative to the score of a passage holding every query term once: a query whose
        # terms the corpus lacks (a paraphrase, or off-topic) gets weak lexical evidence,
        # instead of crowning whichever passage matched its one common word.
        ideal = sum(self._idf.get(t, self._idf_unknown) for t in tokens)
        lexical = bm25[cand] / ideal if ideal > 0 else np.zeros(len(cand), np.float32)
        token = np.zeros(len(cand), np.float32)
        return Features(cand, dense, sentence, lexical, tokens, token)

    def fuse(self, f: Features) -> np.ndarray:
        """A convex mix of passage cosine, best-sentence cosine and ideal-normalised BM25."""
        w = self.fusion
        return w.w_passage * f.dense + w.w_sentence * f.sentence + w.w_lexical * f.lexical

    def rank(
        self, f: Features, tokens: TokenVectors, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores (aligned with ``f.cand``) and the ranking: the evidence mix, with its best
        candidates (up to ``rerank``, within ``rerank_margin`` of the best) re-scored with token
        match (cheap for a few passages only).

        ``mask`` (aligned with ``f.cand``) leaves candidates out of the ranking.
        """
        fused = self.fuse(f)
        if mask is not None:
            fused = np.where(mask, fused, -np.inf)
        order = np.argsort(-fused, kind="stable")
        if mask is not None:
            order = order[: int(mask.sum())]
        head = order[: self.fusion.rerank if self.fusion.w_token else 0]
        if len(head):
            head = head[fused[head] >= fused[head[0]] - self.fusion.rerank_margin]
        per_word = self.word_match(tokens, f.cand[head])
        if len(per_word):
            f.token[head] = per_word.mean(axis=0)
            f.word_scores.update((int(c), per_word[:, j]) for j, c in enumerate(f.cand[head]))
        scores = fused + self.fusion.w_token * f.token
        head = head[np.argsort(-scores[head], kind="stable")]
        return scores, np.concatenate([head, order[len(head) :]])

    def word_match(self, q: TokenVectors, passages: np.ndarray) -> np.ndarray:
        """(query content words, passages): each word's best cosine with one of the passage's
        content tokens (a word of several pieces: their mean); 0 for a passage without tokens.

        A word with a digit in it ("B12", "1995", "MK-7") counts only where the passage has it
        verbatim (as a BM25 term): embeddings tell "vitamin B12" from "vitamin K2" poorly.
        """
        nwords = int(q.words[-1]) + 1 if len(q.words) else 0
        out = np.zeros((nwords, len(passages)), np.float32)
        counts = self.index.token_counts[passages]
        has = counts > 0
        if not nwords or not has.any():
            return out
        kept = passages[has].tolist()
        starts, matrix = self._token_start, self.index.token_matrix()
        best = np.empty((len(q.vectors), len(kept)), np.float32)
        for j, (p, n) in enumerate(zip(kept, counts[has].tolist(), strict=True)):
            # one small product per passage on a view: cheaper than gathering their rows
            (q.vectors @ matrix[starts[p] : starts[p] + n].T).max(axis=1, out=best[:, j])
        if len(q.words) > nwords:  # some words have several pieces: average them
            pieces = np.bincount(q.words)
            best = np.add.reduceat(best, segment_offsets(pieces), axis=0) / pieces[:, None]
        for n, terms in self._digit_terms(q):
            for j, pid in enumerate(kept):
                if not terms <= self._terms(pid):
                    best[n, j] = 0.0
        out[:, has] = best
        return out

    def _digit_terms(self, q: TokenVectors) -> list[tuple[int, set[str]]]:
        """(word number, BM25 terms) of the query words that contain a digit."""
        out = []
        for n, word in enumerate(q.surface):
            if _DIGIT.search(word) and (terms := tokenize(word)):
                out.append((n, set(terms)))
        return out

    def word_weights(self, q: TokenVectors) -> np.ndarray:
        """How specific each query word is: the BM25 IDF of its terms (a word the corpus lacks
        counts as one found in a single passage). Words in every passage weigh about 0."""
        return np.array([self._word_weight(w) for w in q.surface], dtype=np.float32)

    def _word_weight(self, word: str) -> float:
        weight = self._weights.get(word)
        if weight is None:
            rare = self._idf_single
            terms = tokenize(word)
            weight = (
                sum(min(self._idf.get(t, rare), rare) for t in terms) / len(terms)
                if terms
                else rare
            )
            # bounded: at most 100,000 words, none over max_word_chars (a question may hold
            # one of thousands of characters)
            if len(self._weights) < 100_000 and len(word) <= self.max_word_chars:
                self._weights[word] = weight
        return weight

    def _terms(self, i: int) -> set[str]:
        """Passage ``i``'s BM25 terms, as a set (cached)."""
        terms = self._term_sets.get(i)
        if terms is None:
            stored = self.index.terms
            terms = (
                set(stored[i]) if stored is not None else set(tokenize(self.index.passages[i].text))
            )
            self._term_sets[i] = terms
        return terms

    def specific_match(
        self, q: TokenVectors, passage: int, per_word: np.ndarray | None = None
    ) -> float:
        """Token match of one passage with the query's words weighted by :meth:`word_weights`.

        Words found all over the corpus count little: "Is vitamin K2 safe during pregnancy?"
        matches an article on vitamin K2 only as well as "safe during pregnancy" does.
        """
        if per_word is None:
            per_word = self.word_match(q, np.array([passage]))[:, 0]
        weights = self.word_weights(q)
        return float(weights @ per_word / weights.sum()) if weights.sum() > 0 else 0.0

    def _confidence(self, specific: float) -> float:
        """How likely the top passage answers the question, in [0, 1]."""
        f = self.fusion
        z = f.conf_specific * specific - f.conf_bias
        return 1.0 / (1.0 + math.exp(-z))

    # ------------------------------------------------------------------------- results

    def _hits(
        self, f: Features, fused: np.ndarray, order: np.ndarray, qvec: np.ndarray, k: int
    ) -> list[Hit]:
        """Top ``k`` passages, each text shown once.

        A passage overlapping a better-ranked one (neighbouring windows share a sentence) is
        trimmed to its sentences not shown yet, or skipped if none are left; identical text
        from another document is skipped too.
        """
        hits: list[Hit] = []
        shown: dict[str, list[tuple[int, int]]] = {}
        seen_text: set[str] = set()
        for o in order:
            i = int(f.cand[o])
            p = self.index.passages[i]
            spans = shown.setdefault(p.source, [])
            keep = [
                (s, e)
                for s, e in p.sentences
                if not any(p.start + s < b and a < p.start + e for a, b in spans)
            ]
            if not keep:
                continue
            start, end = p.start + keep[0][0], p.start + keep[-1][1]
            text = p.text[start - p.start : end - p.start]
            key = " ".join(text.split()).casefold()
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
                    score=float(fused[o]),
                    highlight=self._highlight(i, qvec, f.tokens, start - p.start, end - p.start),
                    page=p.page,
                )
            )
            if len(hits) >= k:
                break
        return hits

    def _highlight(
        self, i: int, qvec: np.ndarray, tokens: list[str], lo: int = 0, hi: int | None = None
    ) -> Span:
        """The best-matching sentence within ``[lo, hi)`` of passage ``i``, relative to ``lo``.

        Scored by cosine plus a little term overlap, so an exact-wording match wins ties.
        """
        p = self.index.passages[i]
        hi = len(p.text) if hi is None else hi
        sims = self.index.passage_sentences(i) @ qvec
        sent_tokens = self._sent_tokens.get(i)
        if sent_tokens is None:
            sent_tokens = [set(tokenize(p.text[s:e])) for s, e in p.sentences]
            self._sent_tokens[i] = sent_tokens
        qset = set(tokens)
        best, best_score = (lo, hi), -np.inf
        for j, (s, e) in enumerate(p.sentences):
            if s < lo or e > hi:
                continue
            overlap = len(qset & sent_tokens[j]) / len(qset) if qset else 0.0
            score = float(sims[j]) + 0.2 * overlap
            if score > best_score:
                best, best_score = (s, e), score
        return Span(best[0] - lo, best[1] - lo)
