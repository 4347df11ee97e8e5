"""Micro-batching: questions that arrive together are embedded and searched together.

The chat server answers each request on its own worker thread, but the model is one shared
resource (its forward pass is serialised), and a batch of questions embeds far cheaper than
the same questions one by one. :class:`MicroBatcher` lets concurrent callers share that work
without a scheduler thread: the first caller to find the model free becomes the *leader*,
takes every waiting request (up to ``max_batch``), runs them as one batch and hands each
caller its own result; callers that arrive meanwhile wait for the next batch. A lone
request is answered at once, so batching adds no delay when the server is idle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from .retrieval import Retriever
    from .service import LiveRetriever
    from .types import Answer

log = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass(eq=False)
class _Slot(Generic[Req, Res]):
    request: Req
    result: Res | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class MicroBatcher(Generic[Req, Res]):
    """Run ``run_batch`` over the requests of concurrent :meth:`submit` calls.

    ``run_batch(requests)`` returns one result per request, in order. If it raises, each
    request of that batch is retried alone, so one bad request fails only its own caller.
    ``max_batch=1`` turns batching off (each request runs alone, one at a time).
    """

    def __init__(self, run_batch: Callable[[Sequence[Req]], list[Res]], max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._run = run_batch
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Slot[Req, Res]] = []
        self._busy = False

    def submit(self, request: Req) -> Res:
        """The result for ``request``, computed in a batch with whatever else is waiting."""
        slot: _Slot[Req, Res] = _Slot(request)
        with self._cond:
            self._pending.append(slot)
        while True:
            with self._cond:
                while not slot.done and self._busy:
                    self._cond.wait()
                if slot.done:
                    return self._outcome(slot)
                self._busy = True  # this caller leads: it takes the oldest waiting requests
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
            try:
                self._execute(batch)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _execute(self, batch: list[_Slot[Req, Res]]) -> None:
        if not batch:
            return
        try:
            results = self._run([s.request for s in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch of {len(batch)} gave {len(results)} results")
            for s, r in zip(batch, results, strict=True):
                s.result = r
        except Exception as exc:  # noqa: BLE001 - isolate the failing request(s)
            if len(batch) == 1:
                batch[0].error = exc
            else:
                log.debug("batch of %d failed; answering its requests one by one", len(batch))
                for s in batch:
                    try:
                        s.result = self._run([s.request])[0]
                    except Exception as exc:  # noqa: BLE001 - handed to its own caller
                        s.error = exc
        except BaseException as exc:  # e.g. KeyboardInterrupt: no caller may wait forever
            for s in batch:
                if s.error is None:
                    s.error = exc
            raise
        finally:
            for s in batch:
                s.done = True

    @staticmethod
    def _outcome(slot: _Slot[Req, Res]) -> Res:
        if slot.error is not None:
            raise slot.error
        return slot.result  # type: ignore[return-value]


@dataclass(frozen=True)
class AskRequest:
    """One question to answer: the text shown, the text searched, passages wanted."""

    question: str
    query: str
    k: int


def answer_requests(retriever: Retriever, requests: Sequence[AskRequest]) -> list[Answer]:
    """Answers to ``requests`` in order, each as :meth:`Retriever.ask` would give it,
    computed with one :meth:`Retriever.ask_many` call per distinct ``k``."""
    answers: list[Answer | None] = [None] * len(requests)
    for k in sorted({r.k for r in requests}):
        rows = [i for i, r in enumerate(requests) if r.k == k]
        got = retriever.ask_many(
            [requests[i].question for i in rows],
            k=k,
            queries=[requests[i].query for i in rows],
        )
        for i, answer in zip(rows, got, strict=True):
            answers[i] = answer
    return answers  # type: ignore[return-value]


class BatchedAsker:
    """Answers questions from concurrent threads in shared batches, over the current index.

    Each batch is answered by one retriever (the index as it was when the batch started), so
    an answer never mixes an old and a new index.
    """

    def __init__(self, live: LiveRetriever, max_batch: int) -> None:
        self.live = live
        self.batcher: MicroBatcher[AskRequest, Answer] = MicroBatcher(self._run, max_batch)

    def _run(self, requests: Sequence[AskRequest]) -> list[Answer]:
        return answer_requests(self.live.get(), requests)

    def ask(self, question: str, k: int = 3, query: str | None = None) -> Answer:
        """Like :meth:`Retriever.ask`, batched with concurrent calls (``max_batch`` 1: each
        question is answered on its caller's thread, as without batching)."""
        if self.batcher.max_batch == 1:
            return self.live.get().ask(question, k=k, query=query)
        return self.batcher.submit(AskRequest(question, query or question, k))
