"""Each retrieval stage on small plain inputs: candidates, evidence, ranking, confidence,
presentation, and the lexical index behind them."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pytest

from chatbot.embedder import TokenVectors
from chatbot.lexical import LexicalIndex
from chatbot.retrieval import (
    Features,
    Fusion,
    candidates,
    confidence,
    evidence,
    presentation,
    ranking,
)
from chatbot.types import Passage

# --------------------------------------------------------------------------- candidates


def _sparse(dense: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.flatnonzero(dense)
    return ids, dense[ids].astype(np.float32)


def test_union_is_dense_ids_and_top_bm25_sorted() -> None:
    bm25 = _sparse(np.array([0.0, 3.0, 0.5, 2.0, 0.0, 1.0]))
    dense = np.array([4, 1, -1])  # -1: FAISS found nothing more
    np.testing.assert_array_equal(candidates.union(dense, bm25, 2, 6), [1, 3, 4])


def test_union_without_bm25_evidence_is_the_dense_ids() -> None:
    bm25 = _sparse(np.zeros(5))
    np.testing.assert_array_equal(candidates.union(np.array([3, 0]), bm25, 2, 5), [0, 3])
    # even when the per-source count covers every passage
    np.testing.assert_array_equal(candidates.union(np.array([3, 0]), bm25, 9, 5), [0, 3])


def test_union_is_every_passage_when_the_count_covers_them() -> None:
    bm25 = _sparse(np.array([0.0, 1.0, 0.0]))
    np.testing.assert_array_equal(candidates.union(np.array([2]), bm25, 3, 3), [0, 1, 2])


def test_union_takes_only_passages_bm25_found() -> None:
    bm25 = _sparse(np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0]))
    np.testing.assert_array_equal(candidates.union(np.array([5]), bm25, 3, 6), [1, 5])


def test_bm25_of_candidates_reads_the_sparse_scores() -> None:
    bm25 = _sparse(np.array([0.0, 1.5, 0.0, 2.5]))
    np.testing.assert_array_equal(candidates.bm25_of(bm25, np.array([0, 1, 3])), [0, 1.5, 2.5])
    assert candidates.bm25_of(_sparse(np.zeros(2)), np.array([1])).tolist() == [0.0]


def test_dense_search_of_several_queries_at_once() -> None:
    vectors = np.eye(3, 4, dtype=np.float32)
    index = faiss.IndexFlatIP(4)
    index.add(vectors)
    queries = np.array([[0, 0.9, 0.1, 0], [0.2, 0, 1, 0]], np.float32)
    ids = candidates.dense_search(index, queries, per_source=2, n=3)
    np.testing.assert_array_equal(ids, [[1, 2], [2, 0]])
    assert candidates.dense_search(index, queries, per_source=5, n=0).shape == (2, 0)


# --------------------------------------------------------------------------- lexical index


@pytest.fixture
def lexical() -> LexicalIndex:
    return LexicalIndex.build([["tea", "green"], ["tea", "black"], ["tea"], []])


def test_scores_many_equals_scores_per_query(lexical: LexicalIndex) -> None:
    queries = [["tea", "green"], ["black", "black", "unknown"], [], ["unknown"]]
    batched = lexical.scores_many(queries)
    assert batched.shape == (4, 4) and batched.dtype == np.float32
    for row, terms in zip(batched, queries, strict=True):
        expected = lexical.scores(terms) if terms else np.zeros(4, np.float32)
        np.testing.assert_allclose(row, expected, rtol=1e-6)


def test_idf_is_lucene_idf_and_absent_terms_get_the_highest(lexical: LexicalIndex) -> None:
    n = 4
    assert lexical.idf("tea") == pytest.approx(math.log(1 + (n - 3 + 0.5) / 3.5))
    assert lexical.idf("green") == pytest.approx(lexical.idf_single)
    assert lexical.idf_single == pytest.approx(math.log(1 + (n - 1 + 0.5) / 1.5))
    assert lexical.idf("coffee") == lexical.idf_absent > lexical.idf_single
    assert lexical.idf("coffee", default=1.5) == 1.5
    assert lexical.df("black") == 1 and lexical.df("coffee") == 0


# --------------------------------------------------------------------------- evidence


def test_passage_and_best_sentence_cosine() -> None:
    vectors = np.eye(3, dtype=np.float32)
    qvec = np.array([0.6, 0.8, 0.0], np.float32)
    cand = np.array([0, 2])
    np.testing.assert_allclose(evidence.passage_cosine(vectors, cand, qvec), [0.6, 0.0])
    # passage 0: sentences 0-1, passage 1: sentence 2, passage 2: sentences 3-5
    sentence_vectors = np.array(
        [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1], [0.6, 0.8, 0], [1, 0, 0]], np.float32
    )
    # candidates 0 and 2: their sentence rows end to end
    rows = np.concatenate([sentence_vectors[0:2], sentence_vectors[3:6]])
    best = evidence.best_sentence_cosine(rows, np.array([2, 3]), qvec)
    np.testing.assert_allclose(best, [0.8, 1.0], rtol=1e-6)


def test_bm25_relative_to_an_ideal_passage() -> None:
    bm25 = np.array([1.0, 3.0, 0.0], np.float32)
    np.testing.assert_allclose(evidence.ideal_normalised(bm25, [2.5, 1.5]), [0.25, 0.75, 0.0])
    # no terms, or only terms worth nothing: no lexical evidence
    np.testing.assert_array_equal(evidence.ideal_normalised(bm25, []), [0, 0, 0])
    assert evidence.ideal_normalised(bm25, []).dtype == np.float32


def test_features_select_keeps_aligned_rows() -> None:
    f = Features(
        np.array([2, 5, 7]),
        np.array([0.1, 0.2, 0.3]),
        np.array([0.4, 0.5, 0.6]),
        np.array([0.7, 0.8, 0.9]),
        ["tea"],
    )
    g = f.select(np.array([True, False, True]))
    np.testing.assert_array_equal(g.cand, [2, 7])
    np.testing.assert_array_equal(g.sentence, [0.4, 0.6])
    assert g.terms == ["tea"]


# --------------------------------------------------------------------------- ranking


def test_fusion_weights_mix_the_three_evidence_arrays() -> None:
    w = Fusion(w_passage=0.5, w_sentence=0.25, w_lexical=0.25)
    mix = ranking.fuse(w, np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([1.0, 1.0]))
    np.testing.assert_allclose(mix, [0.75, 0.5])
    default = Fusion()
    assert default.w_passage + default.w_sentence + default.w_lexical == pytest.approx(1.0)


def test_rerank_head_is_at_most_count_within_the_margin() -> None:
    fused = np.array([0.5, 0.9, 0.85, 0.7, 0.81])
    order = np.argsort(-fused, kind="stable")
    np.testing.assert_array_equal(ranking.rerank_head(fused, order, 10, 0.1), [1, 2, 4])
    np.testing.assert_array_equal(ranking.rerank_head(fused, order, 2, 0.1), [1, 2])
    assert len(ranking.rerank_head(fused, order, 0, 0.1)) == 0


def _features(dense: list[float]) -> Features:
    n = len(dense)
    zeros = np.zeros(n, np.float32)
    return Features(np.arange(10, 10 + n), np.array(dense, np.float32), zeros, zeros, [])


def test_rank_rescores_only_the_head_with_token_match() -> None:
    w = Fusion(w_passage=1, w_sentence=0, w_lexical=0, w_token=1.0, rerank=3, rerank_margin=0.1)
    f = _features([0.90, 0.50, 0.85, 0.88, 0.40])
    asked = []

    def word_match(ids: np.ndarray) -> np.ndarray:
        asked.append(ids.tolist())
        # two question words; passage 12 matches both best
        table = {10: [0.1, 0.1], 13: [0.2, 0.4], 12: [0.9, 0.7]}
        return np.array([table[i] for i in ids.tolist()], np.float32).T

    r = ranking.rank(w, f, word_match)
    assert asked == [[10, 13, 12]]  # the three best mix scores, all within 0.1
    np.testing.assert_allclose(r.token_match, [0.1, 0, 0.8, 0.3, 0], rtol=1e-6)
    np.testing.assert_allclose(r.scores, f.dense + r.token_match, rtol=1e-6)
    # head re-sorted by its new scores; the rest keeps its mix order below it
    np.testing.assert_array_equal(r.order, [2, 3, 0, 1, 4])
    assert set(r.word_scores) == {10, 12, 13}
    np.testing.assert_allclose(r.word_scores[12], [0.9, 0.7])


def test_rank_without_token_weight_is_the_mix_order() -> None:
    w = Fusion(w_passage=1, w_sentence=0, w_lexical=0, w_token=0)
    f = _features([0.2, 0.9, 0.5])
    r = ranking.rank(w, f, lambda ids: np.zeros((2, len(ids)), np.float32))
    np.testing.assert_array_equal(r.order, [1, 2, 0])
    assert r.word_scores == {} and not r.token_match.any()


def test_digit_words_and_the_digit_rule() -> None:
    digits = ranking.digit_words(("vitamin", "B12", "1995", "MK-7"))
    assert digits == [(1, {"b12"}), (2, {"1995"}), (3, {"mk", "7", "mk7"})]
    best = np.full((4, 2), 0.9)
    terms = {5: {"vitamin", "b12"}, 6: {"vitamin", "mk", "7", "mk7", "1995"}}
    ranking.apply_digit_rule(best, digits, [5, 6], terms.__getitem__)
    np.testing.assert_array_equal(best, [[0.9, 0.9], [0.9, 0.0], [0.0, 0.9], [0.0, 0.9]])


def test_word_means_average_the_pieces_of_a_word() -> None:
    best = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 0.5], [0.25, 0.25]], np.float32)
    means = ranking.word_means(best, np.array([0, 1, 1, 2]))
    np.testing.assert_allclose(means, [[1.0, 0.0], [0.25, 0.75], [0.25, 0.25]])


def test_token_matcher_best_cosine_per_word_on_plain_arrays() -> None:
    # passage 0: tokens e0, e1; passage 1: no tokens; passage 2: token e2
    matrix = np.eye(3, dtype=np.float32)
    counts = np.array([2, 0, 1])
    terms = {0: {"tea", "2020"}, 2: {"tea"}}
    starts = [0, 2, 2]
    matcher = ranking.TokenMatcher(
        lambda p: matrix[starts[p] : starts[p] + counts[p]], counts, terms.__getitem__
    )
    q = TokenVectors(
        np.array([[0.6, 0.8, 0], [0, 0, 1], [0, 1, 0]], np.float32),
        np.array([0, 1, 1], np.int32),  # "tea" is one piece, "2020" two
        ("tea", "2020"),
    )
    out = matcher.word_match(q, np.array([0, 1, 2]))
    # "2020" counts only in passage 0, which holds it: mean of its pieces' best (0 and 1)
    np.testing.assert_allclose(out, [[0.8, 0, 0], [0.5, 0, 0]], rtol=1e-6)
    empty = TokenVectors.empty(3)
    assert matcher.word_match(empty, np.array([0, 2])).shape == (0, 2)


def test_passage_terms_are_made_once_per_passage() -> None:
    calls: list[int] = []

    def terms_of(i: int) -> list[str]:
        calls.append(i)
        return ["green", "tea", "tea"]

    terms = ranking.PassageTerms(terms_of)
    assert terms(3) == {"green", "tea"} and terms(3) == {"green", "tea"}
    assert calls == [3]


# --------------------------------------------------------------------------- confidence


def test_word_weights_discount_common_words(lexical: LexicalIndex) -> None:
    weights = confidence.WordWeights(lexical, max_word_chars=10)
    w = weights(["tea", "green", "coffee", "the", "x" * 11])
    assert w[0] < w[1]  # "tea" is in three of four passages
    # a word in one passage, one the corpus lacks and one without terms weigh alike
    np.testing.assert_allclose(w[1:4], lexical.idf_single, rtol=1e-6)
    assert set(weights.cache) == {"tea", "green", "coffee", "the"}  # not the long word


def test_specific_match_is_the_weighted_mean() -> None:
    weights = np.array([0.0, 3.0, 1.0], np.float32)
    per_word = np.array([1.0, 0.5, 0.1], np.float32)
    assert confidence.specific_match(weights, per_word) == pytest.approx(0.4)
    assert confidence.specific_match(np.zeros(2, np.float32), per_word[:2]) == 0.0


def test_confidence_is_logistic_in_the_specific_match() -> None:
    assert confidence.logistic(0.5, 2.0, 1.0) == 0.5
    assert confidence.logistic(1.0, 9.0, 5.0) == pytest.approx(1 / (1 + math.exp(-4)))
    w = Fusion()
    at_threshold = w.conf_bias / w.conf_specific
    assert confidence.logistic(at_threshold, w.conf_specific, w.conf_bias) == pytest.approx(0.5)


# --------------------------------------------------------------------------- presentation

DOC = "One tea. Two bones. Three tea. Four."  # sentences at 0-8, 9-19, 20-30, 31-36


def _passage(start: int, end: int, source: str = "a") -> Passage:
    spans = [(0, 8), (9, 19), (20, 30), (31, 36)]
    sentences = [(s - start, e - start) for s, e in spans if s >= start and e <= end]
    return Passage(DOC[start:end], source, start, end, sentences=sentences)


def test_unshown_trims_a_runner_up_to_its_new_sentences() -> None:
    p = _passage(9, 36)  # overlaps a shown window 0-19 in its first sentence
    assert presentation.unshown(p, [(0, 19)]) == (20, 36)
    assert presentation.unshown(p, []) == (9, 36)
    assert presentation.unshown(p, [(0, 19), (20, 36)]) is None
    assert presentation.unshown(p, [(20, 30)]) == (9, 36)  # first to last new sentence


def _presenter(passages: list[Passage]) -> presentation.Presenter:
    sentence_vectors = {
        i: np.ones((len(p.sentences), 2), np.float32) for i, p in enumerate(passages)
    }
    return presentation.Presenter(passages, sentence_vectors.__getitem__)


def test_hits_trim_overlaps_skip_repeated_text_and_stop_at_k() -> None:
    passages = [
        _passage(0, 19),  # One tea. Two bones.
        _passage(9, 30),  # Two bones. Three tea. -> trimmed to "Three tea."
        _passage(0, 19),  # all shown: skipped
        Passage("one  TEA.\nTwo bones.", "b", 0, 20, sentences=[(0, 9), (10, 20)]),  # same text
        _passage(31, 36),
    ]
    presenter = _presenter(passages)
    order = np.arange(5)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    qvec = np.array([1.0, 0.0], np.float32)
    hits = presenter.hits(np.arange(5), scores, order, qvec, ["tea"], k=3)
    assert [h.text for h in hits] == ["One tea. Two bones.", "Three tea.", "Four."]
    assert [(h.start, h.end) for h in hits] == [(0, 19), (20, 30), (31, 36)]
    assert [h.rank for h in hits] == [1, 2, 3]
    assert [h.passage_id for h in hits] == [0, 1, 4]
    assert hits[1].score == pytest.approx(0.8)
    assert len(presenter.hits(np.arange(5), scores, order, qvec, ["tea"], k=1)) == 1
