"""Follow-up questions: decide when a short question leans on the previous one.

Only the *retrieval query* changes: ``"and in men?"`` after a question about osteoporosis in
women is searched as both questions together. A follow-up is combined with the previous
question as the user asked it, never with the previous search text, so a run of follow-ups
never snowballs into one long query. Nothing is generated; answers stay verbatim.
"""

from __future__ import annotations

import re

from .lexical import STOPWORDS

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")

# Openers that mark a question as continuing the previous one.
_OPENERS = (
    ("and",),
    ("or",),
    ("but",),
    ("also",),
    ("then",),
    ("what", "about"),
    ("how", "about"),
    ("what", "if"),
    ("same", "for"),
)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Pronouns that point back at the previous topic when no topic noun of their own is given.
_PRONOUNS = _wordset(
    "it its it's itself that this these those they them their theirs there he she him her "
    "his one ones"
)

# Words that carry no topic: the stop words BM25 ignores (chatbot.lexical, the one list),
# plus words of asking and conversation (question words, modal verbs, "tell", "explain",
# "okay") and the pronouns above. Everything else counts as a content word.
_STOPWORDS = (
    STOPWORDS
    | _wordset(
        """
    without onto among per via vs versus whats what's much many less least
    shall may might must ought need needs another every either neither
    really even still please tell give show say says said know explain describe
    ok okay well yes
    """
    )
    | _PRONOUNS
)

MAX_FOLLOWUP_CONTENT_WORDS = 3  # an opener question with more content words stands alone
MAX_PRONOUN_CONTENT_WORDS = 2  # "is it safe in pregnancy?" leans back; longer ones don't


def words(text: str) -> list[str]:
    """Lower-cased word tokens (letters and digits; inner apostrophes kept)."""
    return [w.replace("’", "'") for w in _WORD.findall(text.casefold())]


def content_words(tokens: list[str]) -> list[str]:
    """Tokens that can name a topic (not stopwords, pronouns or question words)."""
    return [t for t in tokens if t not in _STOPWORDS]


def is_followup(question: str) -> bool:
    """True when ``question`` reads as a short follow-up that needs the previous question."""
    tokens = words(question)
    if not tokens:
        return False
    content = content_words(tokens)
    starts_as_followup = any(tuple(tokens[: len(o)]) == o for o in _OPENERS)
    if starts_as_followup and len(content) <= MAX_FOLLOWUP_CONTENT_WORDS:
        return True
    has_pronoun = any(t in _PRONOUNS for t in tokens)
    if has_pronoun and len(content) <= MAX_PRONOUN_CONTENT_WORDS:
        return True
    # "Why?", "How much?": a question word with no topic at all.
    return not content and len(tokens) <= 3


def followup_query(question: str, previous: str | None) -> str:
    """The retrieval query for ``question``: ``previous + " " + question`` for a follow-up.

    ``previous`` is the previous question as the user asked it (not the text searched for
    it), or ``None`` at the start of a conversation: "A? what about the dose?" is followed by
    "what about the dose? Is it safe?", never by a chain of every earlier question. A
    question that stands on its own is returned unchanged, so a new topic is never mixed
    with the old one.
    """
    question = question.strip()
    previous = (previous or "").strip()
    if not previous or not is_followup(question):
        return question
    return f"{previous} {question}"
