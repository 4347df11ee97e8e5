"""Ranking, abstention, highlights and de-duplication with the fake embedder."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot import service
from chatbot.config import ABSTAIN_MESSAGE, Settings
from chatbot.embedder import TokenVectors
from chatbot.retrieval import Fusion, Retriever


def test_answers_with_verbatim_top_passage(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    ans = r.ask("How much calcium do adults need per day?")
    top = ans.hits[0]
    assert "1000 mg of calcium per day" in top.text
    assert top.heading == "Calcium"
    doc = r.index.documents[top.source].text
    assert doc[top.start : top.end] == top.text
    sentence = top.text[top.highlight.start : top.highlight.end]
    assert sentence == "Adults need about 1000 mg of calcium per day."
    assert 0.0 <= ans.confidence <= 1.0


def test_abstains_on_unrelated_question(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    ans = r.ask("Who won the football world cup?")
    assert not ans.answered
    assert ans.answer == ABSTAIN_MESSAGE
    assert ans.confidence < r.threshold


def test_hits_never_overlap(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    ans = r.ask("bone calcium exercise tea", k=10)
    spans = [(h.source, h.start, h.end) for h in ans.hits]
    for i, (s1, a1, b1) in enumerate(spans):
        for s2, a2, b2 in spans[i + 1 :]:
            assert s1 != s2 or b1 <= a2 or b2 <= a1
    assert [h.rank for h in ans.hits] == list(range(1, len(ans.hits) + 1))
    # the trust model orders the head: each hit at least as likely to answer as the next
    assert all(
        ans.hits[i].confidence >= ans.hits[i + 1].confidence for i in range(len(ans.hits) - 1)
    )


def test_empty_question_abstains(fake_index: Settings) -> None:
    ans = service.open_retriever(fake_index).ask("   ")
    assert not ans.answered and ans.hits == []


def test_ask_many_matches_ask(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    qs = ["green tea brewing temperature", "weight-bearing exercise"]
    assert [a.to_dict() for a in r.ask_many(qs)] == [r.ask(q).to_dict() for q in qs]


def _one_doc_index(settings: Settings, text: str) -> None:
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    (settings.corpus_dir / "doc.txt").write_text(text, encoding="utf-8")
    service.build(settings, replace_all=True)


def _token_match(r: Retriever, q: TokenVectors) -> float:
    """Token match of passage 0: the mean of the question words' scores (0 without words)."""
    per_word = r.word_match(q, np.array([0]))[:, 0]
    return float(per_word.mean()) if len(per_word) else 0.0


def test_token_match_needs_digit_words_verbatim(fake_settings: Settings) -> None:
    _one_doc_index(fake_settings, "Vitamin K2\n\nVitamin K2 is found in natto and in cheese.\n")
    r = service.open_retriever(fake_settings)
    emb = r.embedder

    def match(question: str) -> float:
        _, tokens = emb.encode_with_tokens([question])
        return _token_match(r, tokens[0])

    assert match("vitamin K2 natto") == pytest.approx(1.0)
    # "B12" is not in the passage: it counts zero however its vector looks.
    assert match("vitamin B12 natto") == pytest.approx(2 / 3)
    assert match("what is it?") == 0.0  # no content words, no evidence


def test_token_match_reranks_the_best_candidates(fake_index: Settings) -> None:
    base = service.open_retriever(fake_index)
    tokens_only = Retriever(
        base.index, base.embedder, fusion=Fusion(w_passage=0, w_sentence=0, w_lexical=0)
    )
    ans = tokens_only.ask("leafy greens fortified foods")
    assert "leafy greens and fortified foods" in ans.hits[0].text
    scores = [h.score for h in ans.hits]
    assert scores == sorted(scores, reverse=True)


def test_specific_match_discounts_words_found_everywhere(fake_settings: Settings) -> None:
    filler = " ".join(f"word{n}" for n in range(40))  # ~300 characters: one passage each
    docs = "Tea\n\n" + "\n\n".join(
        f"Tea note {i}: tea is brewed from leaves, sample {w}. {filler}."
        for i, w in enumerate("abcdef")
    )
    _one_doc_index(fake_settings, docs + "\n")
    r = service.open_retriever(fake_settings)
    _, tokens = r.embedder.encode_with_tokens(["tea pregnancy"])
    q = tokens[0]
    weights = r.word_weights(q)
    assert q.surface == ("tea", "pregnancy")
    assert weights[0] < 0.1 * weights[1]  # "tea" is in every passage, "pregnancy" in none
    plain = _token_match(r, q)
    assert plain == pytest.approx(0.5)
    assert r.specific_match(q, 0) < 0.1  # judged on "pregnancy", which no passage has
    assert not r.ask("tea pregnancy").answered
