"""Trust: the probability that each of the best candidates answers the question.

A small logistic model over the evidence the ranking already computes (passage, sentence and
token match, the IDF-weighted specific match, the least-matched specific word, BM25, rank and
gaps, exact digits and names, answer-type cues, length). It re-orders the head of the ranking
and gives every shown passage its own calibrated confidence, so the answer, the runner-ups
and the nearest passages under "not found" are all on one scale.

The weights live in ``chatbot/data/trust.json``, fitted by ``bench/fit_trust.py`` on the fit
half of SQuAD dev and the vitamin K2 dev questions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..lexical import tokenize

MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "trust.json"
# How common BM25 terms are in general English prose (document frequencies over 1,048
# Wikipedia paragraphs: the SQuAD fit half; bench/fit_trust.py --write-general).
GENERAL_FILE = MODEL_FILE.parent / "general_df.json"
POOR_MATCH = 0.4  # a question word whose best token cosine is below this is not matched
RARE_WORD = 0.6  # general rarity (0..1) from which a word names the question's topic

_DIGIT = re.compile(r"\d")
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)s?\b")
_QUANTITY_Q = re.compile(
    r"\bhow (much|many|long|often|old|far|large|big|high|low|fast)\b"
    r"|\b(what|which) (dose|dosage|amount|percentage|proportion|number|size|age)\b"
    r"|\b(dose|dosage|percent|percentage)\b",
    re.I,
)
_TIME_Q = re.compile(r"\bwhen\b|\b(what|which) (year|date|month|decade|century)\b", re.I)
_WHO_Q = re.compile(r"\b(who|whom|whose)\b", re.I)
_CAPITAL = re.compile(r"\b[A-Z][\w-]*")

BASE_FEATURES = (
    "fused",  # the evidence mix (passage, sentence cosine, BM25)
    "dense",  # cosine(question, passage)
    "sentence",  # best cosine(question, one sentence)
    "lexical",  # BM25 / BM25 of an ideal passage
    "token",  # mean over question words of their best token cosine
    "specific",  # the same, words weighted by IDF
    "weakest",  # least-matched specific word (weight >= half the largest)
    "gspecific",  # mean word match, words weighted by rarity in general English
    "gweakest",  # least-matched word that is rare in general English (>= RARE_WORD)
    "gmissing",  # general-rarity-weighted share of words matched below POOR_MATCH
    "coverage",  # IDF-weighted share of the question's BM25 terms the passage holds
    "digits",  # share of the question's digit words found verbatim (1 without any)
    "names",  # share of the question's capitalised words found (1 without any)
    "gap_top",  # score minus the best candidate's score (0 for the best)
    "gap_next",  # score minus the next candidate's score
    "rank",  # log(1 + position in the ranking)
    "qty",  # question asks a quantity and the passage has a number
    "qty_missing",  # question asks a quantity and the passage has none
    "time",  # question asks a time and the passage has a year
    "who",  # question asks who and the passage names someone (a capitalised word)
    "length",  # log(passage characters)
    "qwords",  # log(1 + question content words)
    "corpus",  # log(1 + passages indexed): scores spread differently in a tiny corpus
)
# Each of these also relative to the best of the head (value minus the head's largest), so
# the model can tell "best on this evidence" from "good on it".
RELATIVE = ("dense", "sentence", "lexical", "token", "specific", "gspecific", "coverage")
FEATURES = BASE_FEATURES + tuple(f"{name}_rel" for name in RELATIVE)
_REL_COLUMNS = [BASE_FEATURES.index(name) for name in RELATIVE]


def with_relative(x: np.ndarray) -> np.ndarray:
    """``x`` (head candidates, :data:`BASE_FEATURES`) with the :data:`RELATIVE` columns
    appended as differences from their largest value in the head."""
    rel = x[:, _REL_COLUMNS]
    if len(x):
        rel = rel - rel.max(axis=0)
    return np.concatenate([x, rel], axis=1)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


@dataclass(frozen=True)
class TrustModel:
    """Logistic weights over :data:`FEATURES` (standardised by ``mean``/``scale``), then a
    calibration of the passages shown: ``sigmoid(a * logit(p) + c * is_top + b)`` with
    ``calibration = (a, c, b)``, fitted on the passages a person sees (the first three of a
    ranking, the top one apart), so a shown number means what it says on unmasked questions.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    bias: float
    features: tuple[str, ...] = FEATURES
    calibration: tuple[float, float, float] = (1.0, 0.0, 0.0)

    def score(self, x: np.ndarray) -> np.ndarray:
        """The ranking probability of rows of features ``x`` (candidates, features): what
        orders the head."""
        return _sigmoid(((x - self.mean) / self.scale) @ self.coef + self.bias)

    def shown(self, p: np.ndarray, top: np.ndarray) -> np.ndarray:
        """Calibrated P(passage answers) for ranking probabilities ``p`` of passages shown,
        ``top`` true for the first of the ranking."""
        a, c, b = self.calibration
        q = np.clip(p, 1e-9, 1 - 1e-9)
        return _sigmoid(a * np.log(q / (1 - q)) + c * top + b)

    def probability(self, x: np.ndarray) -> np.ndarray:
        """Calibrated P(passage answers) of a head of features ``x`` in ranking order: the
        best-scored row as the top passage, the others as runner-ups."""
        p = self.score(x)
        top = np.zeros(len(p))
        if len(p):
            top[int(np.argmax(p))] = 1.0
        return self.shown(p, top)

    def to_json(self) -> dict:
        return {
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "bias": self.bias,
            "calibration": list(self.calibration),
        }

    @classmethod
    def from_json(cls, d: dict) -> TrustModel:
        features = tuple(d["features"])
        if features != FEATURES:
            raise ValueError(
                "trust model features differ from the code's; refit with bench/fit_trust.py"
            )
        return cls(
            np.asarray(d["mean"], np.float64),
            np.asarray(d["scale"], np.float64),
            np.asarray(d["coef"], np.float64),
            float(d["bias"]),
            features,
            tuple(d.get("calibration", (1.0, 0.0, 0.0))),
        )


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> TrustModel | None:
    """The shipped trust model (None when the file is absent: the ranking alone decides)."""
    if not path.exists():
        return None
    return TrustModel.from_json(json.loads(path.read_text(encoding="utf-8")))


@lru_cache(maxsize=1)
def _general() -> tuple[dict[str, int], float]:
    doc = json.loads(GENERAL_FILE.read_text(encoding="utf-8"))
    return doc["df"], float(doc["documents"])


@lru_cache(maxsize=1 << 14)
def general_rarity(word: str) -> float:
    """How rare ``word`` is in general English, 0 (in every paragraph) to 1 (in none): the
    mean IDF of its BM25 terms over :data:`GENERAL_FILE`, over the IDF of an absent term."""
    terms = tokenize(word)
    if not terms:
        return 0.0
    df, n = _general()
    top = math.log(1 + (n + 0.5) / 0.5)
    idf = [math.log(1 + (n - df.get(t, 0) + 0.5) / (df.get(t, 0) + 0.5)) for t in terms]
    return sum(idf) / len(idf) / top


@dataclass(frozen=True)
class QuestionCues:
    """What a question asks for, read once per question."""

    quantity: bool
    time: bool
    who: bool
    digit_terms: tuple[frozenset[str], ...]  # BM25 terms of each word with a digit
    name_terms: tuple[frozenset[str], ...]  # BM25 terms of each capitalised word (not first)
    terms: tuple[str, ...]  # the question's BM25 terms
    content_words: int
    rarity: np.ndarray  # general_rarity of each content word (TokenVectors.surface)


def question_cues(question: str, surface: Sequence[str], terms: Sequence[str]) -> QuestionCues:
    """The cues of ``question`` (``surface``: its content words, ``terms``: its BM25 terms)."""
    digits = tuple(frozenset(t) for w in surface if _DIGIT.search(w) and (t := tokenize(w)))
    caps = [m.group(0) for m in _CAPITAL.finditer(question)]
    first = question.lstrip()[:1]
    if caps and first.isupper() and question.lstrip().startswith(caps[0]):
        caps = caps[1:]  # the first word is capitalised as a sentence start
    names = tuple(frozenset(t) for w in caps if not _DIGIT.search(w) and (t := tokenize(w)))
    return QuestionCues(
        quantity=bool(_QUANTITY_Q.search(question)),
        time=bool(_TIME_Q.search(question)),
        who=bool(_WHO_Q.search(question)),
        digit_terms=digits,
        name_terms=names,
        terms=tuple(terms),
        content_words=len(surface),
        rarity=np.array([general_rarity(w) for w in surface], np.float64),
    )


def _share(wanted: Sequence[frozenset[str]], have: set[str]) -> float:
    return sum(w <= have for w in wanted) / len(wanted) if wanted else 1.0


def candidate_features(
    cues: QuestionCues,
    weights: np.ndarray,
    per_word: np.ndarray,
    fused: np.ndarray,
    dense: np.ndarray,
    sentence: np.ndarray,
    lexical: np.ndarray,
    scores: np.ndarray,
    texts: Sequence[str],
    terms: Sequence[set[str]],
    idf: dict[str, float],
    corpus_passages: int,
) -> np.ndarray:
    """(candidates, :data:`FEATURES`) for the head of one question's ranking, best first.

    Arrays are aligned with the head; ``per_word`` is (question words, candidates) token
    match, ``weights`` the words' specificity, ``scores`` the ranking scores, ``texts`` and
    ``terms`` the passages' texts and BM25 term sets, ``idf`` the question terms' IDFs,
    ``corpus_passages`` how many passages the index holds.
    """
    n = len(texts)
    x = np.zeros((n, len(BASE_FEATURES)), np.float64)
    wsum = float(weights.sum())
    big = weights >= 0.5 * weights.max() if len(weights) else np.zeros(0, bool)
    g = cues.rarity
    gsum = float(g.sum())
    rare = g >= RARE_WORD
    qterms = list(dict.fromkeys(cues.terms))
    idf_total = sum(idf.get(t, 0.0) for t in qterms)
    for j in range(n):
        col = per_word[:, j] if per_word.shape[0] else np.zeros(0)
        text = texts[j]
        have = terms[j]
        has_number = bool(_DIGIT.search(text))
        x[j] = (
            fused[j],
            dense[j],
            sentence[j],
            lexical[j],
            float(col.mean()) if len(col) else 0.0,
            float(weights @ col / wsum) if wsum > 0 else 0.0,
            float(col[big].min()) if big.any() else 0.0,
            float(g @ col / gsum) if gsum > 0 else 0.0,
            float(col[rare].min()) if rare.any() else 1.0,
            float(g @ (col < POOR_MATCH) / gsum) if gsum > 0 else 0.0,
            sum(idf.get(t, 0.0) for t in qterms if t in have) / idf_total if idf_total else 0.0,
            _share(cues.digit_terms, have),
            _share(cues.name_terms, have),
            scores[j] - scores[0],
            scores[j] - scores[j + 1] if j + 1 < n else 0.0,
            math.log1p(j),
            float(cues.quantity and has_number),
            float(cues.quantity and not has_number),
            float(cues.time and bool(_YEAR.search(text))),
            float(cues.who and bool(_CAPITAL.search(text[1:]))),
            math.log(max(len(text), 1)),
            math.log1p(cues.content_words),
            math.log1p(corpus_passages),
        )
    return with_relative(x)
