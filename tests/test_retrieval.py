"""Ranking, abstention, highlights and de-duplication with the fake embedder."""

from __future__ import annotations

from chatbot import service
from chatbot.config import ABSTAIN_MESSAGE, Settings


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
    assert all(ans.hits[i].score >= ans.hits[i + 1].score for i in range(len(ans.hits) - 1))


def test_empty_question_abstains(fake_index: Settings) -> None:
    ans = service.open_retriever(fake_index).ask("   ")
    assert not ans.answered and ans.hits == []


def test_ask_many_matches_ask(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    qs = ["green tea brewing temperature", "weight-bearing exercise"]
    assert [a.to_dict() for a in r.ask_many(qs)] == [r.ask(q).to_dict() for q in qs]
