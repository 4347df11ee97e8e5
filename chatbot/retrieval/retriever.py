"""The retriever: runs the stages for a question and decides whether to answer."""

from __future__ import annotations

import numpy as np

from ..config import ABSTAIN_MESSAGE, Settings
from ..embedder import Embedder, TokenVectors
from ..index import Index
from ..lexical import tokenize
from ..segment import KIND_CODES
from ..spelling import MAX_WORD_CHARS, Speller
from ..structure import BODY, CAPTION, asks_about
from ..types import Answer, tier_of
from . import candidates, confidence, evidence, ranking
from .confidence import WordWeights
from .evidence import Features
from .presentation import DecodedTokens, PassageTokens, Presenter
from .ranking import Fusion, PassageTerms, Ranking, TokenMatcher
from .trust import FEATURES, TrustModel, candidate_features, load_model, question_cues

HEAD = 10  # the trust model re-orders at least this many of the ranking's best candidates
DEFAULT = object()  # the shipped trust model


class Retriever:
    """Answers questions from one loaded :class:`Index` with one embedder.

    Stages: :mod:`.candidates` (dense ∪ BM25), :mod:`.evidence` (their features),
    :mod:`.ranking` (mix, then token match of the head), :mod:`.confidence` (answer or
    abstain), :mod:`.presentation` (hits).
    """

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        threshold: float = Settings.threshold,
        fusion: Fusion = Fusion(),
        max_word_chars: int = MAX_WORD_CHARS,
        possible_threshold: float = Settings.possible_threshold,
        trust_model: TrustModel | None | object = DEFAULT,
    ) -> None:
        """``threshold`` and ``possible_threshold`` bound the tiers (:func:`tier_of`);
        ``max_word_chars`` (``Settings.max_word_chars``): longer words are never
        spelling-corrected nor corrected into, and their weights are not cached."""
        self.index = index
        self.max_word_chars = max_word_chars
        self.embedder = embedder
        self.threshold = threshold
        self.possible_threshold = min(possible_threshold, threshold)
        self.fusion = fusion
        self._weights = WordWeights(index.lexical, max_word_chars)
        self._terms = PassageTerms(index.passage_terms)
        tokens = DecodedTokens(index.passage_tokens)  # the ranking's, kept for the highlight
        self._matcher = TokenMatcher(tokens, index.token_counts, self._terms)
        self._presenter = Presenter(
            index.passages,
            index.passage_sentences,
            index.lexical.idf,
            PassageTokens(index, getattr(embedder, "token_starts", None), tokens),
            self._weights,
        )
        self.model = load_model() if trust_model is DEFAULT else trust_model
        self._speller: Speller | None = None

    # ------------------------------------------------------------------------- public API

    def ask(self, question: str, k: int = 3, query: str | None = None) -> Answer:
        """Answer one question (``query`` overrides the retrieval text, e.g. for follow-ups).

        Misspelt words of the query are corrected first (:mod:`chatbot.spelling`); the
        answer's ``query`` is the text actually searched.
        """
        query = self.spell(query or question)
        qvecs, token_vectors = self.embedder.encode_with_tokens([query])
        return self.answer_with_vector(question, query, qvecs[0], k, token_vectors=token_vectors[0])

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
        qvecs, token_vectors = self.embedder.encode_with_tokens(queries, batch_size=batch_size)
        dense_ids = self._dense_search(qvecs)
        answers: list[Answer] = []
        for lo in range(0, len(questions), batch_size):
            part = queries[lo : lo + batch_size]
            terms = [tokenize(q) for q in part]
            answers.extend(
                self.answer_with_vector(
                    questions[lo + j],
                    q,
                    qvecs[lo + j],
                    k,
                    token_vectors=token_vectors[lo + j],
                    dense_ids=dense_ids[lo + j],
                    lexical=(terms[j], self.index.lexical.sparse_scores(terms[j])),
                )
                for j, q in enumerate(part)
            )
        return answers

    def answer_with_vector(
        self,
        question: str,
        query: str,
        qvec: np.ndarray,
        k: int,
        *,
        token_vectors: TokenVectors,
        dense_ids: np.ndarray | None = None,
        lexical: tuple[list[str], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> Answer:
        """Rank passages for an already-embedded query and decide whether to answer.

        ``token_vectors`` are the query's (``Embedder.encode_with_tokens``); ``dense_ids`` its
        FAISS candidates and ``lexical`` its BM25 terms and (passages, scores)
        (``LexicalIndex.sparse_scores``), when already computed (``ask_many``).
        """
        feats = self.features(query, qvec, dense_ids, lexical)
        if feats is None:
            return Answer(question, False, ABSTAIN_MESSAGE, 0.0, [], query=query)
        ranked = self.rank(feats, token_vectors)
        head = self.head(ranked, k)
        order, probs = self.trust(query, token_vectors, feats, ranked, head)
        hits = self._presenter.hits(
            feats.cand, ranked.scores, order, qvec, feats.terms, k, query, token_vectors
        )
        missing = [h for h in hits if h.passage_id not in probs]
        if missing:  # a hit below the head (many overlapping passages): score the ranking to it
            last = max(int(np.flatnonzero(feats.cand[order] == h.passage_id)[0]) for h in missing)
            _, probs = self.trust(query, token_vectors, feats, ranked, order[: last + 1], False)
        for hit in hits:
            hit.confidence = probs[hit.passage_id]
        conf = hits[0].confidence
        tier = tier_of(conf, self.threshold, self.possible_threshold)
        answered = tier == "answer"
        return Answer(
            question=question,
            answered=answered,
            answer=hits[0].text if answered else ABSTAIN_MESSAGE,
            confidence=conf,
            hits=hits,
            query=query,
            tier=tier,
        )

    def head(self, ranked: Ranking, k: int) -> np.ndarray:
        """The positions the trust model re-orders: the first ``max(HEAD, 3k)`` of the ranking."""
        return ranked.order[: max(HEAD, 3 * k)]

    def trust(
        self,
        query: str,
        q: TokenVectors,
        feats: Features,
        ranked: Ranking,
        head: np.ndarray,
        reorder: bool = True,
    ) -> tuple[np.ndarray, dict[int, float]]:
        """The ranking with ``head`` (positions in the candidates, best first) re-ordered by
        the trust model's score, and the calibrated probabilities by passage id.

        Without a trust model (no ``chatbot/data/trust.json``), the order is kept and the
        probability is the older logistic of the specific match.
        """
        x = self.head_features(query, q, feats, ranked, head)
        if self.model is None:
            p = rank_by = np.array(
                [
                    confidence.logistic(v, self.fusion.conf_specific, self.fusion.conf_bias)
                    for v in x[:, FEATURES.index("specific")]
                ]
            )
        else:
            rank_by, p = self.model.score(x), self.model.probability(x)
        probs = {int(feats.cand[o]): float(v) for o, v in zip(head, p, strict=True)}
        if not reorder or self.model is None:
            return ranked.order, probs
        best = head[np.argsort(-rank_by, kind="stable")]
        return np.concatenate([best, ranked.order[len(head) :]]), probs

    def head_features(
        self, query: str, q: TokenVectors, feats: Features, ranked: Ranking, head: np.ndarray
    ) -> np.ndarray:
        """:func:`.trust.candidate_features` of ``head`` (positions in the candidates)."""
        ids = feats.cand[head]
        need = np.array([int(i) not in ranked.word_scores for i in ids], bool)
        nwords = int(q.words[-1]) + 1 if len(q.words) else 0
        per_word = np.zeros((nwords, len(ids)), np.float32)
        if need.any():
            per_word[:, need] = self.word_match(q, ids[need])
        for j in np.flatnonzero(~need):
            per_word[:, j] = ranked.word_scores[int(ids[j])]
        terms = [self._terms(int(i)) for i in ids]
        texts = [self.index.passage_text(int(i)) for i in ids]
        lex = self.index.lexical
        idf = {t: lex.idf(t) for t in feats.terms}
        cues = question_cues(query, q.surface, feats.terms)
        return candidate_features(
            cues,
            self.word_weights(q),
            per_word,
            ranked.fused[head],
            feats.dense[head],
            feats.sentence[head],
            feats.lexical[head],
            ranked.scores[head],
            texts,
            terms,
            idf,
            self.index.size,
        )

    def spell(self, query: str) -> str:
        """``query`` with misspelt words corrected against the indexed documents' words (only
        with an embedder whose tokenizer tells ordinary words from misspellings)."""
        known = getattr(self.embedder, "knows_word", None)
        if known is None:
            return query
        if self._speller is None:
            counts = self.index.word_counts()
            self._speller = Speller.from_counts(counts, max_word_chars=self.max_word_chars)
        return self._speller.correct(query, known)

    # ------------------------------------------------------------------------- stages

    def _dense_search(self, qvecs: np.ndarray) -> np.ndarray:
        n = self.index.size
        return candidates.dense_search(self.index, qvecs, self.fusion.candidates, n)

    def features(
        self,
        query: str,
        qvec: np.ndarray,
        dense_ids: np.ndarray | None = None,
        lexical: tuple[list[str], tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> Features | None:
        """Candidate passages (top dense ∪ top BM25) with their evidence; None for an empty
        index or a blank query. ``dense_ids`` and ``lexical`` (terms, BM25 scores) are
        computed here unless given."""
        idx = self.index
        n = idx.size
        if n == 0 or not query.strip():
            return None
        if dense_ids is None:
            dense_ids = self._dense_search(qvec.reshape(1, -1))[0]
        if lexical is not None:
            terms, bm25 = lexical
        else:
            terms = tokenize(query)
            bm25 = idx.lexical.sparse_scores(terms)
        cand = candidates.union(dense_ids, bm25, self.fusion.candidates, n)
        cand = cand[self.answerable(query, cand)]
        if not len(cand):
            return None
        return Features(
            cand,
            evidence.passage_cosine(idx.vectors, cand, qvec),
            evidence.best_sentence_cosine(
                idx.sentence_matrix(cand), idx.sentence_counts[cand], qvec
            ),
            evidence.ideal_normalised(
                candidates.bm25_of(bm25, cand), (idx.lexical.idf(t) for t in terms)
            ),
            terms,
        )

    def answerable(self, query: str, cand: np.ndarray) -> np.ndarray:
        """Mask of the passages ``cand`` that may answer ``query``: body text and captions;
        front matter and reference lists only when the question is about them
        (:func:`chatbot.structure.asks_about`)."""
        kinds = self.index.kinds[cand]
        if not kinds.any():
            return np.ones(len(cand), bool)
        allowed = [KIND_CODES.index(k) for k in (BODY, CAPTION, *asks_about(query))]
        return np.isin(kinds, allowed)

    def rank(self, f: Features, token_vectors: TokenVectors) -> Ranking:
        """:func:`.ranking.rank` with this retriever's weights and token match."""
        return ranking.rank(self.fusion, f, lambda ids: self.word_match(token_vectors, ids))

    def word_match(self, q: TokenVectors, passages: np.ndarray) -> np.ndarray:
        """(question words, passages) token match: :meth:`.ranking.TokenMatcher.word_match`."""
        return self._matcher.word_match(q, passages)

    def word_weights(self, q: TokenVectors) -> np.ndarray:
        """How specific each question word is (:class:`.confidence.WordWeights`)."""
        return self._weights(q.surface)

    def specific_match(
        self, q: TokenVectors, passage: int, per_word: np.ndarray | None = None
    ) -> float:
        """Token match of one passage with the question's words weighted by
        :meth:`word_weights` (``per_word``: its :meth:`word_match` column, if known)."""
        if per_word is None:
            per_word = self.word_match(q, np.array([passage]))[:, 0]
        return confidence.specific_match(self.word_weights(q), per_word)
