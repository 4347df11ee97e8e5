"""The library's front door: a folder of documents in, verbatim answers out.

    from chatbot import Chatbot

    bot = Chatbot(index="kb-index")            # any Settings field as a keyword
    bot.add("papers/")                          # index files and folders (incrementally)
    answer = bot.ask("What does vitamin K2 do for bones?")
    print(answer.answered, answer.confidence, answer.answer)

Everything here calls the same functions as the ``chatbot`` command line, so an index
built with one is used by the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from os import PathLike
from pathlib import Path
from typing import Any

from . import service
from .config import Settings
from .index import Summary
from .types import Answer

StrPath = str | PathLike[str]


class Chatbot:
    """An index folder and the model that reads it: add documents, ask questions.

    ``settings`` (default: :meth:`Settings.from_env`) can be adjusted with keywords, e.g.
    ``Chatbot(index="kb-index", threshold=0.6)``. The index is opened on the first question
    and re-opened by itself after documents are added, updated or removed.
    """

    def __init__(self, settings: Settings | None = None, **changes: Any) -> None:
        self.settings = replace(settings or Settings.from_env(), **changes)
        self._live: service.LiveRetriever | None = None

    # -------------------------------------------------------------- documents

    def add(self, *paths: StrPath) -> Summary:
        """Index new or changed files (folders are searched recursively); returns the summary
        (``summary.line()`` reads like the CLI's, ``summary.failed`` lists skipped files)."""
        return service.build(self.settings, [Path(p) for p in paths])

    def build(self, *paths: StrPath) -> Summary:
        """Make the index hold exactly ``paths`` (default: the configured corpus folder);
        unchanged documents are reused."""
        return service.build(self.settings, [Path(p) for p in paths] or None, replace_all=True)

    def remove(self, *names: StrPath) -> Summary:
        """Remove documents by path or by indexed name."""
        return service.remove(self.settings, [str(n) for n in names])

    def update(self) -> Summary:
        """Re-scan the indexed files: changed ones re-indexed, deleted ones removed."""
        return service.update(self.settings)

    def documents(self) -> list[str]:
        """The names of the indexed documents."""
        return list(self._retriever().index.documents)

    # -------------------------------------------------------------- questions

    def ask(self, question: str, k: int | None = None, previous: str | None = None) -> Answer:
        """The best passages for ``question``, quoted verbatim, or an abstention.

        ``previous`` (the previous question as asked, not its search text) makes a short
        follow-up such as "and in men?" search both together, as the chat does.
        """
        from .conversation import followup_query

        query = followup_query(question, previous)
        return self._retriever().ask(question, k=k or self.settings.k, query=query)

    def ask_many(self, questions: Iterable[str], k: int | None = None) -> list[Answer]:
        """Answers to many questions, embedded and searched in batches (much faster)."""
        return self._retriever().ask_many(
            list(questions), k=k or self.settings.k, batch_size=self.settings.batch_size
        )

    def _retriever(self) -> Any:
        if self._live is None:
            self._live = service.LiveRetriever(self.settings)
        return self._live.get()
