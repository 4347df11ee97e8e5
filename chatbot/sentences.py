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
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

ABBREVIATIONS_FILE = Path(__file__).with_name("data") / "abbreviations.txt"
FORMAT = 1
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


def _add_starters(params: Any) -> None:
    """Teach ``params`` the shipped sentence starters: frequent starters, and what a large
    text shows of them (capitalised at a sentence start, lower case inside one), so that
    "vitamin K. It" ends a sentence after the initial even in a small document."""
    from nltk.tokenize import punkt

    params.sent_starters |= SENTENCE_STARTERS
    for word in SENTENCE_STARTERS:
        params.add_ortho_context(word, punkt._ORTHO_BEG_UC | punkt._ORTHO_MID_LC)


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
        _add_starters(params)
        return cls(params)

    @classmethod
    def train(cls, texts: Iterable[str]) -> SentenceSplitter:
        """Punkt trained on ``texts`` (the documents being indexed), plus the shipped
        abbreviations. Single letters learned as abbreviations are dropped: Punkt's rule
        for initials handles "J. Bach" and "E. coli" without them, and with them a sentence
        could never end at "vitamin K."."""
        from nltk.tokenize.punkt import PunktTrainer

        trainer = PunktTrainer()
        n = 0
        for text in texts:
            trainer.train(text, finalize=False)
            n += 1
        trainer.finalize_training()
        params = trainer.get_params()
        learned = {a for a in params.abbrev_types if len(a.replace(".", "")) > 1}
        params.abbrev_types = learned | set(shipped_abbreviations())
        _add_starters(params)
        return cls(params, documents=n)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """``(start, end)`` of each sentence of ``text`` (Punkt's boundaries)."""
        return list(self._tokenizer.span_tokenize(text))

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


__all__ = ["SENTENCE_STARTERS", "SentenceSplitter", "shipped_abbreviations"]
