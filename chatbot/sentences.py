"""Sentence boundaries: nltk's Punkt, trained on the documents being indexed.

Punkt is unsupervised: it learns which words are abbreviations, which word pairs are
collocations and how each word is capitalised from the text itself. No trained model can
be downloaded here, and the untrained tokenizer knows no abbreviation at all, so it ends a
sentence at every "Fig.", "et al." or "e.g.". :class:`SentenceSplitter` trains Punkt on the
documents of a new index (``PunktTrainer``), adds the abbreviations shipped in
``chatbot/data/abbreviations.txt``, and is stored in the index (:meth:`to_dict`), so that
later additions and every reader split exactly as the first build did.

An abbreviation still ends a sentence when the next word is one that starts sentences:
"... et al. The ..." is two sentences, "et al. (2019)" one. Punkt learns such words from the
text (its orthographic rule and frequent sentence starters); a short shipped list of words
that start English sentences (:data:`SENTENCE_STARTERS`) backs it up, since a heading or a
title-case phrase in a small document can teach Punkt that "The" occurs mid-sentence.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

ABBREVIATIONS_FILE = Path(__file__).with_name("data") / "abbreviations.txt"
LOWERCASE_FILE = Path(__file__).with_name("data") / "lowercase_words.txt"
FORMAT = 1
TRAIN_MAX_CHARS = 5_000_000  # Punkt learns from at most this much text (~10 s here)
# Capitalised after an abbreviation, these begin a new sentence ("... et al. The ...").
_STARTERS = """
    the this these those there that it its in we our they their he she his her however
    although though thus therefore moreover furthermore finally here after before when while
    since because as for to on at by with from all both each some many most one two several
    such other further overall together taken similarly likewise conversely instead
    additionally importantly notably interestingly recently previously currently
"""
SENTENCE_STARTERS = frozenset(_STARTERS.split())


@lru_cache(maxsize=1)
def shipped_abbreviations() -> frozenset[str]:
    """Punkt types (lower case, final period dropped, last word of a multi-word one) of the
    abbreviations in ``chatbot/data/abbreviations.txt``."""
    out = set()
    for line in ABBREVIATIONS_FILE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.add(line.split()[-1].lower().removesuffix("."))
    return frozenset(out)


@lru_cache(maxsize=1)
def lowercase_words() -> frozenset[str]:
    """Common English words written in lower case inside sentences
    (``chatbot/data/lowercase_words.txt``, made by ``tools/lowercase_words.py``)."""
    lines = LOWERCASE_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip() for w in lines if w.strip() and not w.startswith("#"))


def _add_general(params: Any) -> None:
    """Teach ``params`` what a large English text would: the shipped sentence starters
    start sentences, and common lower-case words are capitalised only at a sentence start
    (a capitalised one inside a sentence in the training text was a title or a missed
    boundary, so that evidence is dropped). Then "vitamin K. It" and "etc. Detailed" end a
    sentence even in a small document. Learned collocations whose second word is such a
    word are dropped too: a collocation is a name-like pair ("S. Bach"), and a number or
    initial followed by "It" is a sentence end, however often a text repeats it."""
    from nltk.tokenize import punkt

    general = lowercase_words() | SENTENCE_STARTERS
    params.sent_starters |= SENTENCE_STARTERS
    for word in general:
        flags = params.ortho_context.get(word, 0) & ~punkt._ORTHO_MID_UC
        params.ortho_context[word] = flags | punkt._ORTHO_BEG_UC | punkt._ORTHO_MID_LC
    params.collocations = {(a, b) for a, b in params.collocations if b not in general}


class SentenceSplitter:
    """Punkt with learned parameters: ``spans(text)`` gives sentence spans."""

    def __init__(self, params: Any, documents: int = 0) -> None:
        from nltk.tokenize.punkt import PunktSentenceTokenizer

        self.params = params
        self.documents = documents  # how many documents it was trained on
        self._tokenizer = PunktSentenceTokenizer(params)

    @classmethod
    def default(cls) -> SentenceSplitter:
        """No training: the shipped abbreviations only (an index built before training)."""
        from nltk.tokenize import punkt

        params = punkt.PunktParameters()
        params.abbrev_types = set(shipped_abbreviations())
        _add_general(params)
        return cls(params)

    @classmethod
    def train(cls, texts: Iterable[str], max_chars: int = TRAIN_MAX_CHARS) -> SentenceSplitter:
        """Punkt trained on the first ``max_chars`` characters of ``texts`` (the documents
        being indexed), plus the shipped abbreviations. Single letters learned as
        abbreviations are dropped: Punkt's rule for initials handles "J. Bach" and "E. coli"
        without them, and with them a sentence could never end at "vitamin K."."""
        from nltk.tokenize.punkt import PunktTrainer

        trainer = PunktTrainer()
        n = seen = 0
        for text in texts:
            if seen >= max_chars:  # enough to learn from; training is linear in the text
                break
            trainer.train(text[: max_chars - seen], finalize=False)
            seen += len(text)
            n += 1
        trainer.finalize_training()
        params = trainer.get_params()
        learned = {a for a in params.abbrev_types if len(a.replace(".", "")) > 1}
        params.abbrev_types = learned | set(shipped_abbreviations())
        _add_general(params)
        return cls(params, documents=n)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of each sentence of ``text``: Punkt's boundaries, mended where
        scholarly text fools it (:func:`mend`)."""
        return mend(text, list(self._tokenizer.span_tokenize(text)))

    # -------------------------------------------------------------- stored in the index

    def to_dict(self) -> dict[str, Any]:
        """The learned parameters as JSON-ready data (sorted, so equal splitters are equal
        files)."""
        p = self.params
        return {
            "format": FORMAT,
            "documents": self.documents,
            "abbreviations": sorted(p.abbrev_types),
            "collocations": sorted([a, b] for a, b in p.collocations),
            "sentence_starters": sorted(p.sent_starters),
            "orthography": {k: v for k, v in sorted(p.ortho_context.items()) if v},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SentenceSplitter:
        """The splitter :meth:`to_dict` stored; ValueError if it is not one."""
        from nltk.tokenize.punkt import PunktParameters

        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a sentence-splitter file this version reads")
        params = PunktParameters()
        params.abbrev_types = set(data["abbreviations"])
        params.collocations = {(a, b) for a, b in data["collocations"]}
        params.sent_starters = set(data["sentence_starters"])
        for k, v in data["orthography"].items():
            params.ortho_context[k] = int(v)
        return cls(params, documents=int(data.get("documents", 0)))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    def digest(self) -> str:
        """sha256 of :meth:`to_json` (names its file in the index)."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()


# A "sentence" that is only a label of what follows: a list marker, "Fig. 1.", "Table 3:".
_LABEL = re.compile(
    r"(?:[-*•]|\(?\d{1,3}[.)]|\(?[A-Za-z][.)]"
    r"|(?:Fig(?:ure)?s?|Tab(?:le)?s?|Eqs?|Step|Part|No|Box|Panel)\.?\s*[A-Z]?\d+[A-Za-z]?[.:])"
)
_CITATION_START = re.compile(r"\[\d{1,3}(?:\s*[,–-]\s*\d{1,3})*\]")  # "[3]", "[4, 5]"
_NUMBERS = r"\d{1,3}(?:\s*[,–-]\s*\d{1,3})*"
_NUMBERS_START = re.compile(rf"{_NUMBERS}(?=\s+[A-Z]|\s*$)")  # "40 The ...", "12, 32"
# A superscript-style reference after a sentence's period: "households.3 Schools ...".
_SUPERSCRIPT = re.compile(rf"(?<=[a-z%)\]])\.{_NUMBERS}(?=\s+[A-Z])")
_FIRST_WORD = re.compile(r"[a-z]+\b")
# Abbreviations that stand before a name: only a sentence starter ("The", "It") after one
# begins a new sentence, not a capitalised common word ("U.S. Food", "Dr. Brown").
_BEFORE_NAME = re.compile(
    r"(?:^|\s)(?:U\.S|U\.K|U\.N|E\.U|Dr|Drs|Prof|Mr|Mrs|Ms|Mx|St|Gen|Col|Capt|Lt|Sgt|Gov|Sen"
    r"|Rep|Pres|Hon|Rev)\.$"
)
# A sentence that starts with a mixed-case word ("siRNA", "eGFP", "mRNA") after a period
# that ends no known abbreviation: Punkt takes such a lower-case start as a continuation.
_MIXED_START = re.compile(r"(?<=[\w%)\]])\.\s+(?=[a-z]+[A-Z][\w-]*)")


def mend(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Punkt's sentence ``spans`` of ``text`` with the boundaries it gets wrong in papers
    fixed: no sentence starts with a period (a spaced ellipsis ". . .") or with a common
    lower-case word ("30 min. at room temperature"); a list marker or a figure label
    ("1.", "Fig. 1.") belongs to the sentence it introduces; a reference after the period
    ("... households.[3] Schools", "... 47.9%. 40 The ...") belongs to the sentence it
    cites, and a superscript one ("... households.3 Schools ...") ends it."""
    out: list[list[int]] = []
    for s, e in spans:
        if out:
            prev = out[-1]
            head = text[s:e]
            if _joins(text[prev[0] : prev[1]], head):
                prev[1] = e
                continue
            m = _CITATION_START.match(head) or _NUMBERS_START.match(head)
            if m and text[prev[0] : prev[1]].rstrip().endswith("."):
                prev[1] = s + m.end()
                s = s + m.end()
                while s < e and text[s].isspace():
                    s += 1
                if s >= e:
                    continue
        out.append([s, e])
    result: list[tuple[int, int]] = []
    for s, e in out:
        cuts = [m.end() for m in _SUPERSCRIPT.finditer(text, s, e)]
        cuts += [
            m.start() + 1
            for m in _MIXED_START.finditer(text, s, e)
            if _ends_sentence(text, s, m.start())
        ]
        for cut in sorted(cuts):
            nxt = cut
            while nxt < e and text[nxt].isspace():
                nxt += 1
            result.append((s, cut))
            s = nxt
        result.append((s, e))
    return result


def _ends_sentence(text: str, start: int, period: int) -> bool:
    """Is the period at ``period`` a sentence end, not an abbreviation's?"""
    word = text[start:period].rsplit(None, 1)[-1].lower()
    return word.lstrip("([") not in shipped_abbreviations()


def _joins(prev: str, head: str) -> bool:
    """Does the span ``head`` continue the sentence ``prev`` instead of starting one?"""
    if head.startswith(".") or not any(c.isalnum() for c in head):
        return True  # ". . ." or punctuation only
    last = prev.strip().rsplit("\n", 1)[-1].strip()
    if _LABEL.fullmatch(last):
        return True
    m = _BEFORE_NAME.search(last)
    if m and head[:1].isupper() and head.split(None, 1)[0].lower() not in SENTENCE_STARTERS:
        return True  # "the U.S. Food and Drug Administration", "Dr. Brown"
    m = _FIRST_WORD.match(head)
    return m is not None and m.group() in lowercase_words()


__all__ = [
    "SENTENCE_STARTERS",
    "SentenceSplitter",
    "lowercase_words",
    "mend",
    "shipped_abbreviations",
]
