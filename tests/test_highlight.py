"""The highlight: which sentence of a hit holds the answer (chatbot.retrieval.presentation)."""

from __future__ import annotations

import numpy as np
import pytest

from chatbot import service
from chatbot.config import Settings
from chatbot.embedder import TokenVectors
from chatbot.retrieval import presentation as pres
from chatbot.types import Passage, Span

# Three sentences in the style of the vitamin K2 article (issue 11's examples).
K2_TEXT = (
    "Vitamin K2, also referred as menaquinone, has a side chain of prenyl units. "
    "Based on the number of prenyl units, vitamin K2 is further classified as MK-2 to MK-14. "
    "Vitamin K2 accounts for about 10-25% of the vitamin K in a Western diet."
)


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for part in text.split(". "):
        end = start + len(part) + (1 if not part.endswith(".") else 0)
        spans.append((start, end))
        start = end + 1
    return spans


def _presenter(text: str, sims: list[float], idf=None) -> tuple[pres.Presenter, Passage]:
    """A presenter over one passage whose sentences have the cosines ``sims`` with the
    question (two-dimensional sentence vectors; the question vector is [1, 0])."""
    spans = _sentences(text)
    assert len(spans) == len(sims)
    p = Passage(text, "doc", 0, len(text), sentences=spans)
    vectors = np.array([[s, np.sqrt(max(0.0, 1 - s * s))] for s in sims], np.float32)
    return pres.Presenter([p], {0: vectors}.__getitem__, idf), p


def _highlighted(presenter: pres.Presenter, p: Passage, question: str) -> str:
    from chatbot.lexical import tokenize

    cues = presenter.cues(question, tokenize(question))
    span = presenter.highlight(0, np.array([1.0, 0.0], np.float32), cues, 0, len(p.text), p)
    return p.text[span.start : span.end]


# --------------------------------------------------------------------------- answer-type cues


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("What is another name for vitamin K2?", "alias"),
        ("What is vitamin K2 also called?", "alias"),
        ("What was the merged company called?", "alias"),
        ("When was it approved?", "date"),
        ("In what year did the war end?", "date"),
        ("How much calcium do adults need?", "quantity"),
        ("What daily dose was studied in Japan?", "quantity"),
        ("K2 dose Japan", "quantity"),
        ("nonvertebral fractures %", "quantity"),
        ("Who painted the Mona Lisa?", "name"),
        ("Which foods contain vitamin K2?", None),
    ],
)
def test_question_kind(question: str, kind: str | None) -> None:
    assert pres.question_kind(question) == kind


def test_sentence_facts_tell_years_from_quantities_and_read_names_and_aliases() -> None:
    since = pres.SentenceFacts("Since 1995, Vitamin K2 has been approved in Japan.")
    assert since.years == {"1995"} and since.numbers == set()
    assert since.names == {"vitamin", "k2", "japan"}  # capitalised, the first word left out
    dose = pres.SentenceFacts("Studies supplemented 180 μgm/day for three years.")
    assert dose.numbers == {"180", "three"} and dose.years == set()
    assert pres.SentenceFacts("MK-7 to MK-11, from 50-59 on").numbers == {"50-59"}
    assert pres.SentenceFacts("Vitamin K2, also referred as menaquinone, is ...").alias
    assert not pres.SentenceFacts("It is also found in cheese.").alias
    assert pres.SentenceFacts("It ended in March.").dated


def test_answer_type_wants_more_than_the_question_says() -> None:
    cues = pres.question_cues("How many teams played in 2010?", ["team", "play", "2010"])
    assert cues.kind == "quantity"
    assert not pres.answer_type_match(cues, pres.SentenceFacts("They played in 2010."))
    assert pres.answer_type_match(cues, pres.SentenceFacts("Twelve teams played, 10 won."))
    who = pres.question_cues("Who beat Denver?", ["beat", "denver"])
    assert not pres.answer_type_match(who, pres.SentenceFacts("They beat Denver."))
    assert pres.answer_type_match(who, pres.SentenceFacts("Then Carolina beat Denver."))


# --------------------------------------------------------------------------- choosing


def test_another_name_highlights_the_also_called_sentence_over_a_closer_cosine() -> None:
    # cosine prefers the classification sentence; "another name" asks for an alias
    presenter, p = _presenter(K2_TEXT, [0.5, 0.8, 0.6])
    assert _highlighted(presenter, p, "What is another name for vitamin K2?").startswith(
        "Vitamin K2, also referred as menaquinone"
    )
    # the same cosines without the alias cue: the classification sentence
    assert "MK-2 to MK-14" in _highlighted(presenter, p, "What about vitamin K2?")


def test_rare_question_terms_outweigh_common_ones() -> None:
    text = (
        "Vitamin K2 accounts for about 10-25% of the vitamin K in a Western diet. "
        "It is also found in meat, dairy, eggs and fermented foods such as natto."
    )
    idf = {"vitamin": 0.01, "k2": 0.01, "food": 3.0, "contain": 3.0}
    presenter, p = _presenter(text, [0.75, 0.5], lambda t: idf.get(t, 1.0))
    assert "natto" in _highlighted(presenter, p, "Which foods contain vitamin K2?")
    # every term alike: "vitamin" and "k2" tie with "food", and cosine decides
    flat, p = _presenter(text, [0.75, 0.5])
    assert "Western diet" in _highlighted(flat, p, "Which foods contain vitamin K2?")


def test_highlight_stays_within_the_span_and_is_relative_to_it() -> None:
    sentences = [(0, 8), (9, 19), (20, 30)]
    features = np.zeros((3, len(pres.FEATURES)), np.float32)
    features[:, 0] = [0.9, 0.5, 0.6]  # cosine
    assert pres.highlight(features, sentences, 0, 30) == Span(0, 8)
    assert pres.highlight(features, sentences, 9, 30) == Span(11, 21)  # relative to lo
    assert pres.highlight(features, sentences, 1, 7) == Span(0, 6)  # none inside: the span
    features[1, 1] = 1.0  # holds every question term
    assert pres.highlight(features, sentences, 0, 30) == Span(9, 19)


# --------------------------------------------------------------------------- token match


def test_piece_weights_average_pieces_within_words_and_weigh_words() -> None:
    q = TokenVectors(np.zeros((3, 2), np.float32), np.array([0, 0, 1], np.int32), ("ab", "c"))
    assert pres.piece_weights(q, np.array([1.0, 3.0])) == pytest.approx([0.125, 0.125, 0.75])
    assert pres.piece_weights(q, None) == pytest.approx([0.25, 0.25, 0.5])
    assert pres.piece_weights(q, np.zeros(2)) == pytest.approx([0.25, 0.25, 0.5])


def test_sentence_token_match_per_sentence_and_best_match_share() -> None:
    e = np.eye(4, dtype=np.float32)
    q = e[[0, 1]]  # two question words, one token each
    # passage tokens: title token (-1), sentence 0: e0 and e2, sentence 1: 0.6*e1+0.8*e3
    vectors = np.stack([e[3], e[0], e[2], 0.6 * e[1] + 0.8 * e[3]])
    places = pres.TokenPlaces.of(np.array([-1, 0, 0, 1]))
    out = pres.sentence_token_match(q, np.array([0.5, 0.5], np.float32), vectors, places, 3)
    assert out[0] == pytest.approx([0.5, 0.5])  # word 0 found (1.0), word 1 not (0.0)
    assert out[1] == pytest.approx([0.3, 0.5])  # word 1 at 0.6, its best token in the passage
    assert out[2] == pytest.approx([0.0, 0.0])  # no tokens


def test_a_sentence_after_one_that_matches_gets_the_previous_feature() -> None:
    facts = [pres.SentenceFacts("Tea brews."), pres.SentenceFacts("Bones grow.")]
    cues = pres.question_cues("tea?", ["tea"])
    token = np.array([[0.9, 1.0], [0.2, 0.0]], np.float32)
    x = pres.sentence_features(np.array([0.5, 0.4]), facts, cues, token)
    names = pres.FEATURES
    assert x[:, names.index("token")] == pytest.approx([0.9, 0.2])
    assert x[:, names.index("token_best")] == pytest.approx([1.0, 0.0])
    assert x[:, names.index("previous")] == pytest.approx([0.0, 0.9])
    assert x[:, names.index("terms")] == pytest.approx([1.0, 0.0])


def test_decoded_tokens_are_kept_for_the_last_passages_and_read_only() -> None:
    calls: list[int] = []

    def decode(i: int) -> np.ndarray:
        calls.append(i)
        return np.full((2, 3), i, np.float32)

    tokens = pres.DecodedTokens(decode)
    first = tokens(1)
    assert tokens(1) is first and calls == [1]
    with pytest.raises(ValueError):
        first[0, 0] = 5.0
    for i in range(2, pres.DECODED_PASSAGES + 2):
        tokens(i)
    tokens(1)
    assert calls.count(1) == 2  # evicted once more than DECODED_PASSAGES others came


# --------------------------------------------------------------------------- with an index


def _index(settings: Settings, text: str) -> None:
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    (settings.corpus_dir / "doc.txt").write_text(text, encoding="utf-8")
    service.build(settings, replace_all=True)


def test_passage_tokens_are_placed_in_their_sentences(fake_settings: Settings) -> None:
    _index(fake_settings, "Vitamin K2\n\n" + K2_TEXT + "\n")
    r = service.open_retriever(fake_settings)
    placed = pres.PassageTokens(r.index, r.embedder.token_starts)(0)
    assert placed is not None
    vectors, places = placed
    assert len(vectors) == r.index.token_counts[0] == len(places.sentence_of)
    p = r.index.passages[0]
    assert places.sentence_of.min() == -1  # the title's tokens
    assert list(places.present) == list(range(len(p.sentences)))
    # the fake embedder's tokens are content words: "menaquinone" lies in sentence 0
    _, q = r.embedder.encode_with_tokens(["menaquinone"])
    match = pres.sentence_token_match(
        q[0].vectors, pres.piece_weights(q[0], None), vectors, places, len(p.sentences)
    )
    assert match[:, 0] == pytest.approx([1.0, 0.0, 0.0])
    # an embedder without token_starts: no token match
    assert pres.PassageTokens(r.index, None)(0) is None


@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("What is another name for vitamin K2?", "also referred as menaquinone"),
        ("What daily dose of vitamin K2 was studied in Japan?", "180 μgm/day"),
    ],
)
def test_issue_examples_with_the_fake_embedder(
    fake_settings: Settings, question: str, sentence: str
) -> None:
    _index(
        fake_settings,
        "Vitamin K2\n\n"
        + K2_TEXT
        + " It is also found in meat, dairy, eggs and fermented foods such as natto.\n\n"
        "Use in Japan\n\nSince 1995, vitamin K2 has been approved for osteoporosis in Japan. "
        "Studies in Japan gave vitamin K2 at 180 μgm/day to slow the loss of bone.\n",
    )
    top = service.open_retriever(fake_settings).ask(question).hits[0]
    assert sentence in top.text[top.highlight.start : top.highlight.end]


@pytest.mark.model
@pytest.mark.parametrize(
    ("question", "sentence"),
    [
        ("What is another name for vitamin K2?", "also referred as menaquinone"),
        ("Which foods contain vitamin K2?", "fermented foods, such as cheese"),
        ("What daily dose was studied in Japan?", "μgm/day"),
    ],
)
def test_issue_examples_with_the_model(real_retriever, question: str, sentence: str) -> None:
    top = real_retriever.ask(question).hits[0]
    assert sentence in top.text[top.highlight.start : top.highlight.end]


@pytest.mark.model
def test_the_models_tokens_are_placed_in_every_passage(real_retriever) -> None:
    index = real_retriever.index
    places = pres.PassageTokens(index, real_retriever.embedder.token_starts)
    for i in range(index.size):
        placed = places(i)
        assert placed is not None, index.passages[i].text[:60]
        assert len(placed[1].present) == len(index.passages[i].sentences)
