"""Presentation: the ranked passages as hits, each text shown once, with a highlight sentence.

The highlight is the sentence of a hit most likely to hold the answer, scored per sentence
with the evidence the ranking uses (:func:`sentence_features`, mixed by
:class:`HighlightWeights`):

- its cosine with the question (the stored sentence vectors);
- the IDF-weighted share of the question's BM25 terms it holds;
- whether it holds the kind of text the question asks for (:func:`question_kind`): a number
  for "how much", a year or date for "when", a name for "who", "also called" for "another
  name" (and not only the numbers and names the question itself holds);
- token match: each question word's best cosine with a content token of the sentence,
  averaged with the words' IDF weights (the index's token vectors, placed in sentences by
  :class:`PassageTokens`), and the weighted share of question words whose best-matching
  token in the whole passage lies in this sentence;
- the token match of the sentence before it: an answer often follows the sentence that
  restates the question ("... Allahabad Address ... outlined a vision ..." / "This address
  later inspired the Pakistan movement.").
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ..embedder import TokenVectors
from ..index import match_text
from ..lexical import fold, tokenize
from ..types import Hit, Passage, Span

CACHE_PASSAGES = 10_000  # sentence facts and token places are kept for this many passages
DECODED_PASSAGES = 64  # the decoded token vectors of the passages shown last are kept


@dataclass(frozen=True)
class HighlightWeights:
    """Weights of the highlight score: the sentence cosine plus these times each feature.

    Chosen by ``.venv/bin/python bench/highlight.py --keep DIR --fit``: the grid point with
    the best share on SQuAD dev's fit half among those keeping the vitamin K2 dev questions at
    or above 0.95 (bench/README.md, "Highlight").
    """

    terms: float = 2.0  # IDF-weighted share of the question's terms in the sentence
    answer_type: float = 1.5  # the sentence holds the kind of text the question asks for
    token: float = 3.5  # IDF-weighted mean of the question words' best token cosine
    token_best: float = 1.0  # weighted share of question words best matched in the sentence
    previous: float = 0.75  # token match of the sentence before

    def vector(self) -> np.ndarray:
        """The weights in :data:`FEATURES` order (the cosine weighs 1)."""
        return np.array(
            [1.0, self.terms, self.answer_type, self.token, self.token_best, self.previous],
            np.float32,
        )


FEATURES = ("cosine", "terms", "answer_type", "token", "token_best", "previous")

# ------------------------------------------------------------------ answer-type cues

# What the question asks for (matched on the folded question); the first that matches wins.
_QUESTION_KINDS = (
    (
        "alias",
        re.compile(
            r"\b(?:(?:another|other|alternative|alternate|common|scientific|full|real|"
            r"original|formal|official|popular|better)\s+(?:names?|terms?)|also\s+(?:called|"
            r"known|referred|named|termed)|known\s+as|nicknamed?|stand\s+for)\b"
            r"|\bwhat\b.*\b(?:called|named)\s*\W*$"
        ),
    ),
    (
        "date",
        re.compile(
            r"\b(?:when|since\s+when|how\s+long\s+ago|(?:what|which)\s+(?:\w+\s+)?(?:year|"
            r"years|date|day|month|century|decade|era|period))\b"
        ),
    ),
    (
        "quantity",
        re.compile(
            r"\b(?:how\s+(?:much|many|long|far|old|large|big|high|tall|often|fast|heavy|deep|"
            r"wide|great|small|low|frequently|hot|cold|expensive)|by\s+how|(?:what|which)\s+"
            r"(?:\w+\s+)?(?:dose|doses|dosage|amount|quantity|percentage|percent|proportion|"
            r"share|fraction|number|size|rate|speed|temperature|distance|price|cost|length|"
            r"height|weight|age|population|ratio|value|sum|total))\b"
            r"|\b(?:dose|doses|dosage|percentage|percent|proportion|fraction)\b|%"
        ),
    ),
    ("name", re.compile(r"\b(?:who|whom|whose)\b")),
)
_ALIAS_SENTENCE = re.compile(
    r"\b(?:also\s+(?:called|known|referred|named|termed)|called|known\s+as|referred\s+(?:to\s+)?"
    r"as|named|nicknamed|termed|dubbed|stands\s+for|abbreviated)\b"
)
_YEAR = re.compile(r"^(?:1[0-9]{3}|20[0-9]{2})$")
_NUMBER_TEXT = (
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety "
    "hundred thousand million billion trillion dozen dozens hundreds thousands millions "
    "billions half twice double triple percent"
)
_NUMBER_WORDS = frozenset(_NUMBER_TEXT.split())
_DATE_TEXT = (  # "may" left out: mostly the verb
    "january february march april june july august september october november december "
    "monday tuesday wednesday thursday friday saturday sunday century centuries decade "
    "decades bc ad bce ce"
)
_DATE_WORDS = frozenset(_DATE_TEXT.split())
_WORD = re.compile(r"[^\W_]+(?:[-'’][^\W_]+)*")


def question_kind(question: str) -> str | None:
    """What the question asks for: "alias", "date", "quantity", "name", or None."""
    q = fold(question)
    for kind, pattern in _QUESTION_KINDS:
        if pattern.search(q):
            return kind
    return None


def numbers_in(words: Sequence[str]) -> frozenset[str]:
    """The words that are numbers ("180", "1995", "50-59"; not "K2" nor "MK-4")."""
    return frozenset(w for w in words if w[0].isdigit())


class SentenceFacts:
    """What the highlight needs to know of one sentence: its BM25 terms, and each
    answer-type cue read on first use (most questions ask for no particular kind)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.terms = frozenset(tokenize(text))

    @cached_property
    def _words(self) -> tuple[list[str], list[str]]:
        words = _WORD.findall(self.text)
        return words, [fold(w) for w in words]

    @cached_property
    def names(self) -> frozenset[str]:
        """Folded capitalised words after the first word."""
        words, folded = self._words
        return frozenset(f for w, f in zip(words[1:], folded[1:], strict=True) if w[0].isupper())

    @cached_property
    def years(self) -> frozenset[str]:
        """Four-digit years (1000-2099)."""
        return frozenset(n for n in numbers_in(self._words[0]) if _YEAR.match(n))

    @cached_property
    def numbers(self) -> frozenset[str]:
        """Numbers other than years, and number words."""
        found = numbers_in(self._words[0]) - self.years
        return frozenset(found | (_NUMBER_WORDS & set(self._words[1])))

    @cached_property
    def dated(self) -> bool:
        """Names a month, weekday, century or decade."""
        return bool(_DATE_WORDS & set(self._words[1]))

    @cached_property
    def alias(self) -> bool:
        """Says "also called", "known as", "referred to as", ..."""
        return bool(_ALIAS_SENTENCE.search(fold(self.text)))


@dataclass(frozen=True)
class QuestionCues:
    """What the highlight looks for in a sentence, read once per question."""

    weights: dict[str, float]  # each distinct BM25 term of the question: its IDF
    kind: str | None  # :func:`question_kind`
    words: frozenset[str]  # the question's folded words
    numbers: frozenset[str]  # the numbers it holds
    tokens: TokenVectors | None = None  # its content-token vectors
    piece_weights: np.ndarray | None = None  # their weights (:func:`piece_weights`)


def question_cues(
    query: str,
    terms: list[str],
    idf: Callable[[str], float] | None = None,
    tokens: TokenVectors | None = None,
    word_weights: np.ndarray | None = None,
) -> QuestionCues:
    """The cues of ``query`` (its BM25 ``terms`` given); ``idf(term)`` weighs the terms (None:
    all weigh 1); ``tokens`` and their words' ``word_weights`` give the token match."""
    words = _WORD.findall(query)
    return QuestionCues(
        {t: (idf(t) if idf else 1.0) for t in dict.fromkeys(terms)},
        question_kind(query),
        frozenset(fold(w) for w in words),
        numbers_in(words),
        tokens,
        None if tokens is None else piece_weights(tokens, word_weights),
    )


def piece_weights(q: TokenVectors, word_weights: np.ndarray | None) -> np.ndarray:
    """A weight per token of ``q`` such that ``weights @ x`` (``x``: a value per token) is
    the ``word_weights``-weighted mean over the words of the mean over each word's pieces;
    the words count alike without weights or when they sum to 0."""
    if not len(q.words):
        return np.zeros(0, np.float32)
    nwords = int(q.words[-1]) + 1
    w = np.ones(nwords) if word_weights is None else np.asarray(word_weights, np.float64)
    if float(w.sum()) <= 0:
        w = np.ones(nwords)
    pieces = np.bincount(q.words, minlength=nwords)
    return ((w / w.sum())[q.words] / pieces[q.words]).astype(np.float32)


def answer_type_match(cues: QuestionCues, s: SentenceFacts) -> bool:
    """The sentence holds something of the kind the question asks for, beyond what the
    question itself says (a year the question names is no answer to "when")."""
    if cues.kind == "quantity":
        return bool(s.numbers - cues.numbers - cues.words)
    if cues.kind == "date":
        return bool(s.years - cues.numbers) or s.dated
    if cues.kind == "name":
        return bool(s.names - cues.words)
    if cues.kind == "alias":
        return s.alias
    return False


def sentence_features(
    sims: np.ndarray,
    facts: list[SentenceFacts],
    cues: QuestionCues,
    token: np.ndarray | None = None,
) -> np.ndarray:
    """(sentences, :data:`FEATURES`) of one passage's sentences, in order: ``sims`` their
    cosine with the question, ``token`` their (token match, best-matched share) from
    :func:`sentence_token_match` (zeros if None)."""
    out = np.zeros((len(facts), len(FEATURES)), np.float32)
    out[:, 0] = sims
    total = sum(cues.weights.values())
    for j, s in enumerate(facts):
        if total > 0:
            out[j, 1] = sum(w for t, w in cues.weights.items() if t in s.terms) / total
        out[j, 2] = answer_type_match(cues, s)
    if token is not None:
        out[:, 3:5] = token
        out[1:, 5] = token[:-1, 0]
    return out


@dataclass(frozen=True)
class TokenPlaces:
    """Where a passage's content tokens lie: ``sentence_of`` each token's sentence (-1: the
    title or heading); ``order`` the tokens inside sentences, by sentence; ``present`` the
    sentences holding tokens and ``starts`` where each one's tokens start in ``order``."""

    sentence_of: np.ndarray
    order: np.ndarray
    present: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, sentence_of: np.ndarray) -> TokenPlaces:
        inside = np.flatnonzero(sentence_of >= 0)
        order = inside[np.argsort(sentence_of[inside], kind="stable")]
        present, starts = np.unique(sentence_of[order], return_index=True)
        return cls(sentence_of, order, present, starts)


def sentence_token_match(
    q: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
    places: TokenPlaces,
    sentences: int,
) -> np.ndarray:
    """(sentences, 2): per sentence, the ``weights``-weighted sum over the question's tokens
    ``q`` of their best cosine with a content token of the sentence, and of whether their
    best token in the passage lies in the sentence (``weights``: :func:`piece_weights`, so
    both are weighted means over the question's words). ``vectors`` are the passage's content
    tokens, placed by ``places``; a sentence without tokens gets zeros."""
    out = np.zeros((sentences, 2), np.float32)
    if not len(q) or not len(places.order):
        return out
    sims = q @ vectors.T
    where = places.sentence_of[sims.argmax(axis=1)]  # each question token's best sentence
    best = np.maximum.reduceat(sims[:, places.order], places.starts, axis=1)
    out[places.present, 0] = weights @ best
    out[places.present, 1] = weights @ (where[:, None] == places.present[None, :])
    return out


class DecodedTokens:
    """``passage_tokens(i)`` (decoding a passage's stored token codes) for the last
    :data:`DECODED_PASSAGES` passages asked, kept: the ranking's token match and the highlight
    read the same passages for a question. Thread-safe."""

    def __init__(self, passage_tokens: Callable[[int], np.ndarray]) -> None:
        self._decode = passage_tokens
        self._kept: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, i: int) -> np.ndarray:
        with self._lock:
            vectors = self._kept.get(i)
            if vectors is not None:
                self._kept.move_to_end(i)
                return vectors
        vectors = self._decode(i)
        vectors.setflags(write=False)
        with self._lock:
            self._kept[i] = vectors
            if len(self._kept) > DECODED_PASSAGES:
                self._kept.popitem(last=False)
        return vectors


class PassageTokens:
    """Passage ``i``'s stored content-token vectors and the sentence each lies in (-1: the
    title or heading of its match text).

    The index stores the tokens without offsets; ``token_starts`` (the embedder's, e.g.
    ``SentenceTransformerEmbedder.token_starts``) re-tokenises the match text to place them.
    None when it cannot (no ``token_starts``, or its count differs from the stored one).
    ``passage_tokens`` decodes them (default: a :class:`DecodedTokens` of the index's).
    """

    def __init__(
        self,
        index: Any,
        token_starts: Callable[[list[str]], list[np.ndarray]] | None,
        passage_tokens: Callable[[int], np.ndarray] | None = None,
    ) -> None:
        self._index = index
        self._token_starts = token_starts
        self._places: dict[int, TokenPlaces | None] = {}
        self._vectors = passage_tokens or DecodedTokens(index.passage_tokens)

    def __call__(self, i: int) -> tuple[np.ndarray, TokenPlaces] | None:
        if self._token_starts is None:
            return None
        if i in self._places:
            places = self._places[i]
        else:
            places = self._place(i)
            if len(self._places) < CACHE_PASSAGES:
                self._places[i] = places
        if places is None:
            return None
        return self._vectors(i), places

    def _place(self, i: int) -> TokenPlaces | None:
        assert self._token_starts is not None
        p = self._index.passages[i]
        text = match_text(p, self._index.title(p.source))
        starts = self._token_starts([text])[0] - (len(text) - len(p.text))
        if len(starts) != int(self._index.token_counts[i]):
            return None
        sentence_of = np.full(len(starts), -1, np.int64)
        for j, (s, e) in enumerate(p.sentences):
            sentence_of[(starts >= s) & (starts < e)] = j
        return TokenPlaces.of(sentence_of)


def highlight(
    features: np.ndarray,
    sentences: list[tuple[int, int]],
    lo: int,
    hi: int,
    weights: HighlightWeights = HighlightWeights(),
) -> Span:
    """The best sentence within ``[lo, hi)`` of a passage, relative to ``lo`` (``[lo, hi)``
    itself if no sentence lies inside): the highest ``features @ weights.vector()`` (the
    first of equals); ``features`` has a row per sentence (:func:`sentence_features`)."""
    scores = features @ weights.vector()
    best, best_score = (lo, hi), -np.inf
    for j, (s, e) in enumerate(sentences):
        if s < lo or e > hi:
            continue
        if scores[j] > best_score:
            best, best_score = (s, e), float(scores[j])
    return Span(best[0] - lo, best[1] - lo)


# ------------------------------------------------------------------ passages to hits


def unshown(p: Passage, shown: list[tuple[int, int]]) -> tuple[int, int] | None:
    """The document span of ``p``'s sentences that overlap none of the ``shown`` spans (same
    document), from the first such sentence to the last; None if every sentence was shown.

    Neighbouring windows share a sentence, so a runner-up is trimmed to what is new in it.
    """
    keep = [
        (s, e)
        for s, e in p.sentences
        if not any(p.start + s < b and a < p.start + e for a, b in shown)
    ]
    if not keep:
        return None
    return p.start + keep[0][0], p.start + keep[-1][1]


def text_key(text: str) -> str:
    """What makes two texts the same to a reader: whitespace runs and case ignored."""
    return " ".join(text.split()).casefold()


class Presenter:
    """Turns a ranking into hits over ``passages``. For the highlight: ``passage_sentences(i)``
    gives passage ``i``'s sentence vectors, ``idf(term)`` a term's IDF (None: every term weighs
    the same), ``tokens(i)`` its content tokens placed in sentences (:class:`PassageTokens`;
    None: no token match) and ``word_weights(words)`` how specific question words are."""

    def __init__(
        self,
        passages: Sequence[Passage],
        passage_sentences: Callable[[int], np.ndarray],
        idf: Callable[[str], float] | None = None,
        tokens: Callable[[int], tuple[np.ndarray, TokenPlaces] | None] | None = None,
        word_weights: Callable[[Sequence[str]], np.ndarray] | None = None,
        weights: HighlightWeights = HighlightWeights(),
    ) -> None:
        self._passages = passages
        self._passage_sentences = passage_sentences
        self._idf = idf
        self._tokens = tokens
        self._word_weights = word_weights
        self.weights = weights
        self._facts: dict[int, list[SentenceFacts]] = {}

    def hits(
        self,
        cand: np.ndarray,
        scores: np.ndarray,
        order: np.ndarray,
        qvec: np.ndarray,
        terms: list[str],
        k: int,
        query: str = "",
        tokens: TokenVectors | None = None,
    ) -> list[Hit]:
        """The first ``k`` hits of ``order`` (positions in ``cand``, ``scores`` aligned).

        A passage overlapping a better-ranked one is trimmed to its sentences not shown yet
        (:func:`unshown`), or skipped if none are left; text already shown (from another
        document, or another passage) is skipped too. ``query`` (the text searched, whose
        BM25 ``terms`` are given) and its content ``tokens`` guide the highlight.
        """
        hits: list[Hit] = []
        shown: dict[str, list[tuple[int, int]]] = {}
        seen_text: set[str] = set()
        cues = self.cues(query, terms, tokens)
        for o in order:
            i = int(cand[o])
            p = self._passages[i]
            spans = shown.setdefault(p.source, [])
            span = unshown(p, spans)
            if span is None:
                continue
            start, end = span
            text = p.text[start - p.start : end - p.start]
            key = text_key(text)
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
                    score=float(scores[o]),
                    highlight=self.highlight(i, qvec, cues, start - p.start, end - p.start, p),
                    page=p.page,
                    kind=p.kind,
                )
            )
            if len(hits) >= k:
                break
        return hits

    def cues(
        self, query: str, terms: list[str], tokens: TokenVectors | None = None
    ) -> QuestionCues:
        """:func:`question_cues` with this presenter's IDF and word weights."""
        weights = None
        if tokens is not None and self._word_weights is not None:
            weights = self._word_weights(tokens.surface)
        return question_cues(query, terms, self._idf, tokens, weights)

    def features(
        self, i: int, qvec: np.ndarray, cues: QuestionCues, p: Passage | None = None
    ) -> np.ndarray:
        """:func:`sentence_features` of passage ``i``'s (``p``'s) sentences."""
        p = self._passages[i] if p is None else p
        facts = self._facts.get(i)
        if facts is None:
            facts = [SentenceFacts(p.text[s:e]) for s, e in p.sentences]
            if len(self._facts) < CACHE_PASSAGES:
                self._facts[i] = facts
        placed = None
        if cues.tokens is not None and self._tokens is not None:
            placed = self._tokens(i)
        token = None
        if placed is not None and cues.tokens is not None and cues.piece_weights is not None:
            token = sentence_token_match(
                cues.tokens.vectors, cues.piece_weights, *placed, sentences=len(p.sentences)
            )
        return sentence_features(self._passage_sentences(i) @ qvec, facts, cues, token)

    def highlight(
        self, i: int, qvec: np.ndarray, cues: QuestionCues, lo: int, hi: int, p: Passage
    ) -> Span:
        """:func:`highlight` within ``[lo, hi)`` of passage ``i`` (``p``)."""
        return highlight(self.features(i, qvec, cues, p), p.sentences, lo, hi, self.weights)
