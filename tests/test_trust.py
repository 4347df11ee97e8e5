"""The trust model: features, probabilities, tiers and one confidence per shown passage."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatbot import service
from chatbot.config import ABSTAIN_MESSAGE, Settings
from chatbot.retrieval import Retriever
from chatbot.retrieval.trust import (
    FEATURES,
    TrustModel,
    candidate_features,
    general_rarity,
    load_model,
    question_cues,
)
from chatbot.types import tier_of


def test_tier_of_bounds() -> None:
    assert tier_of(0.9, 0.5, 0.25) == "answer"
    assert tier_of(0.5, 0.5, 0.25) == "answer"
    assert tier_of(0.3, 0.5, 0.25) == "possible"
    assert tier_of(0.1, 0.5, 0.25) == "none"


def test_general_rarity_tells_topic_words_from_common_ones() -> None:
    assert general_rarity("pregnancy") > general_rarity("people") > general_rarity("the")
    assert general_rarity("warfarin") == 1.0  # absent from the general text: rarest
    assert 0.0 <= general_rarity("take") < 0.6


def test_question_cues() -> None:
    c = question_cues("How much vitamin K2 did Japan approve in 1995?", ["vitamin", "K2"], [])
    assert c.quantity and not c.who
    assert frozenset({"k2"}) in c.digit_terms
    assert any("japan" in t for t in c.name_terms)
    assert not question_cues("What is osteocalcin?", ["osteocalcin"], []).quantity
    assert question_cues("When was it approved?", ["approved"], []).time
    assert question_cues("Who approved it?", ["approved"], []).who


def _features(per_word: np.ndarray, texts: list[str], question: str = "How much is needed?"):
    n = len(texts)
    cues = question_cues(question, ["much", "needed"][: per_word.shape[0]], ["need"])
    z = np.zeros(n)
    return candidate_features(
        cues,
        np.ones(per_word.shape[0], np.float32),
        per_word,
        z + 0.5,
        z + 0.4,
        z + 0.3,
        z + 0.2,
        np.linspace(1.0, 0.5, n),
        texts,
        [{"need"}] * n,
        {"need": 2.0},
        100,
    )


def test_candidate_features_shape_and_values() -> None:
    per_word = np.array([[0.9, 0.2], [0.7, 0.1]], np.float32)
    x = _features(per_word, ["It needs 5 mg.", "Nothing here."])
    assert x.shape == (2, len(FEATURES))
    f = dict(zip(FEATURES, x[0], strict=True))
    assert f["token"] == pytest.approx(0.8)
    assert f["qty"] == 1.0 and f["qty_missing"] == 0.0
    assert f["gap_top"] == 0.0 and f["rank"] == 0.0
    g = dict(zip(FEATURES, x[1], strict=True))
    assert g["qty"] == 0.0 and g["qty_missing"] == 1.0
    assert g["gap_top"] == pytest.approx(-0.5)
    assert f["coverage"] == 1.0


def test_model_round_trips_and_refuses_other_features(tmp_path) -> None:
    n = len(FEATURES)
    m = TrustModel(np.zeros(n), np.ones(n), np.linspace(-1, 1, n), 0.3)
    back = TrustModel.from_json(json.loads(json.dumps(m.to_json())))
    x = np.random.default_rng(0).normal(size=(4, n))
    assert np.allclose(m.probability(x), back.probability(x))
    assert ((m.probability(x) > 0) & (m.probability(x) < 1)).all()
    bad = m.to_json() | {"features": ["dense"]}
    with pytest.raises(ValueError, match="refit"):
        TrustModel.from_json(bad)


def test_shipped_model_loads() -> None:
    model = load_model()
    assert model is not None and model.coef.shape == (len(FEATURES),)


def test_every_hit_has_its_own_confidence(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    ans = r.ask("How much calcium do adults need per day?", k=3)
    assert ans.confidence == ans.hits[0].confidence
    assert all(0.0 <= h.confidence <= 1.0 for h in ans.hits)
    assert len({h.confidence for h in ans.hits}) > 1
    record = ans.to_dict()
    assert record["tier"] == ans.tier
    assert all("confidence" in p and "score" in p for p in record["passages"])


@pytest.mark.parametrize(
    ("threshold", "possible", "tier"), [(0.0, 0.0, "answer"), (1.01, 0.0, "possible")]
)
def test_tiers_follow_the_thresholds(fake_index: Settings, threshold, possible, tier) -> None:
    r = service.open_retriever(fake_index)
    r = Retriever(r.index, r.embedder, threshold=threshold, possible_threshold=possible)
    ans = r.ask("How much calcium do adults need per day?")
    assert ans.tier == tier
    assert ans.answered == (tier == "answer")
    assert (ans.answer == ABSTAIN_MESSAGE) == (tier != "answer")


def test_none_tier_below_both_thresholds(fake_index: Settings) -> None:
    r = service.open_retriever(fake_index)
    r = Retriever(r.index, r.embedder, threshold=1.01, possible_threshold=1.01)
    ans = r.ask("How much calcium do adults need per day?")
    assert ans.tier == "none" and not ans.answered and ans.hits
