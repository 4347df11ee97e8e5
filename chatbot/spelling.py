"""Spelling: fix a question's misspelt words against the words of the indexed documents.

"vitamn k2 dairy eggs" or "osteoporosis drug approval japn" match the text poorly, lexically
and as embeddings. A word is corrected only when all of these hold: it is a word of letters
(at least 4) and not a stopword, the documents don't contain it, the model's tokenizer doesn't
know it as one word (so ordinary English words are never "corrected" into document words), and
exactly one edit (insert, delete, substitute, swap two neighbours) turns it into a document word. Of
several such words the most frequent in the documents wins.

Words longer than ``max_word_chars`` (``Settings.max_word_chars``, 40) never enter the vocabulary
and are never corrected: the deletion index holds every one-letter deletion of every word, so its
size grows with the square of a word's length (one 200,000-letter "word" in a document would need
about 40 GB). With the bound, the work per word is at most ``max_word_chars`` variants.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

from .config import Settings
from .lexical import STOPWORDS, fold

_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)
MIN_LENGTH = 4
MAX_WORD_CHARS = Settings.max_word_chars

STORED_WORD_CHARS = 100  # the index stores the counts of words up to this long


def count_words(text: str, max_word_chars: int = STORED_WORD_CHARS) -> Counter[str]:
    """The words a speller counts in ``text`` (folded, ``MIN_LENGTH`` to
    ``max_word_chars`` letters), with their counts."""
    return Counter(
        w
        for m in _WORD_RE.finditer(fold(text))
        if MIN_LENGTH <= len(w := m.group()) <= max_word_chars
    )


class Speller:
    """Corrects words against a vocabulary counted from document texts.

    Only words of ``MIN_LENGTH`` to ``max_word_chars`` letters are counted or corrected.
    """

    def __init__(self, texts: Iterable[str], max_word_chars: int = MAX_WORD_CHARS) -> None:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(count_words(text, max_word_chars))
        self._init(counts, max_word_chars)

    @classmethod
    def from_counts(cls, counts: Counter[str], max_word_chars: int = MAX_WORD_CHARS) -> Speller:
        """A speller over word counts already made by :func:`count_words` (the index stores
        them per document); words over ``max_word_chars`` are left out."""
        speller = cls.__new__(cls)
        kept = Counter({w: c for w, c in counts.items() if len(w) <= max_word_chars})
        speller._init(kept, max_word_chars)
        return speller

    def _init(self, counts: Counter[str], max_word_chars: int) -> None:
        self.max_word_chars = max_word_chars
        self.counts = counts
        self._deletes: dict[str, list[str]] | None = None

    def _index(self) -> dict[str, list[str]]:
        """Every vocabulary word under each of its one-letter deletions (built on first use)."""
        if self._deletes is None:
            deletes: dict[str, list[str]] = {}
            for word in self.counts:
                for variant in {word[:i] + word[i + 1 :] for i in range(len(word))}:
                    deletes.setdefault(variant, []).append(word)
            self._deletes = deletes
        return self._deletes

    def candidate(self, word: str) -> str | None:
        """The document word one edit away from ``word`` (folded), or None."""
        if len(word) > self.max_word_chars:  # before folding: bounded work for any input
            return None
        w = fold(word)
        if not MIN_LENGTH <= len(w) <= self.max_word_chars:
            return None
        if w in self.counts or w in STOPWORDS or not w.isalpha():
            return None
        deletes = self._index()
        found = set(deletes.get(w, ()))  # a letter is missing from w
        for i in range(len(w)):
            variant = w[:i] + w[i + 1 :]
            if variant in self.counts:  # w has an extra letter
                found.add(variant)
            found.update(deletes.get(variant, ()))  # substitution (or a swap, checked below)
        found = {c for c in found if _one_edit(w, c)}
        if not found:
            return None
        return max(sorted(found), key=lambda c: self.counts[c])

    def correct(self, text: str, known: Callable[[str], bool] = lambda _: False) -> str:
        """``text`` with each correctable word replaced; ``known(word)`` protects real words."""
        out: list[str] = []
        last = 0
        for m in _WORD_RE.finditer(text):
            word = m.group()
            if not MIN_LENGTH <= len(word) <= self.max_word_chars:
                continue
            if word.lower() in self.counts:  # the common case, fast
                continue
            fix = self.candidate(word)
            if fix is not None and not known(word):
                out.append(text[last : m.start()])
                out.append(fix)
                last = m.end()
        return "".join(out) + text[last:] if out else text


def _one_edit(a: str, b: str) -> bool:
    """True if one insert, delete, substitution or swap of neighbours turns ``a`` into ``b``."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return True
        i = diff[0]
        return len(diff) == 2 and diff[1] == i + 1 and a[i] == b[i + 1] and a[i + 1] == b[i]
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(short) and short[i] == long_[i]:
        i += 1
    return short[i:] == long_[i + 1 :]
