"""Batch questions: stream a question file through the retriever, write results, evaluate.

``chatbot ask`` (:func:`run_batch`) reads questions lazily
(:func:`chatbot.batchio.read_questions`), answers them a window of
``WINDOW_BATCHES * batch_size`` at a time (one ``Retriever.ask_many`` call per window, see
:func:`answer_stream`), writes one ``Answer.to_dict()`` record per question in input order, and
scores questions that carry expected answers (:class:`chatbot.evaluate.Evaluation`). Memory is
bounded by one window plus one small result per question *with* expected answers.
``chatbot eval`` (:func:`run_squad_eval`) prints the same evaluation for a SQuAD-format file,
indexed into a temporary index by :func:`chatbot.squad.evaluate_answers`.

The command line parses the flags; these functions take :class:`AskOptions` and
:class:`EvalOptions`, with ``k``, the threshold, the index and the model in the settings.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Any

from .batchio import (
    STDIN_NAME,
    InputError,
    Question,
    json_text,
    open_writer,
    read_questions,
    scan_output,
    written_records,
)
from .config import Settings
from .evaluate import Evaluation, write_report
from .progress import Bar, progress_bar

log = logging.getLogger(__name__)

MAX_WARNINGS = 50  # skipped-line warnings printed one by one; the rest are only counted


@dataclass(frozen=True)
class AskOptions:
    """What ``chatbot ask`` does besides answering (``k`` and the threshold are settings).

    ``file`` is the question file (``'-'``: stdin); ``out`` the result file (None or ``'-'``:
    stdout); ``fmt`` the output format (None: from ``out``, see :func:`output_format`);
    ``input_format`` the question file format (None: from its extension); ``report`` an HTML
    evaluation report to write; ``quiet`` drops the progress bar and the stderr summary.
    """

    file: str
    out: str | None = None
    fmt: str | None = None
    input_format: str | None = None
    skip_bad: bool = False
    resume: bool = False
    report: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class EvalOptions:
    """What ``chatbot eval`` evaluates: the SQuAD-format ``file``, only its first ``limit``
    articles (None: all), ``baselines`` adds the BM25-only and dense-only rankings,
    ``report`` an HTML report to write, ``quiet`` drops the "report written" line."""

    file: str
    limit: int | None = None
    baselines: bool = False
    report: str | None = None
    quiet: bool = False


# --------------------------------------------------------------------------- answering


WINDOW_BATCHES = 16  # questions are read and answered this many batches at a time


def _windows(
    stream: Iterator[Question], size: int
) -> Iterator[tuple[list[Question], InputError | None]]:
    """Consecutive lists of up to ``size`` questions; a read error ends the last one."""
    while True:
        chunk: list[Question] = []
        error: InputError | None = None
        try:
            for q in stream:
                chunk.append(q)
                if len(chunk) >= size:
                    break
        except InputError as exc:
            error = exc
        yield chunk, error
        if error is not None or len(chunk) < size:
            return


def answer_stream(
    retriever: Any,
    questions: Iterable[Question],
    k: int,
    batch_size: int = 64,
    *,
    window: int | None = None,
) -> Iterator[tuple[Question, Any]]:
    """Yield ``(question, Answer)`` in input order.

    Questions are read ``window`` at a time (default ``WINDOW_BATCHES * batch_size``) and each
    window goes through one ``Retriever.ask_many`` call, which embeds it in batches of
    ``batch_size``. Whole windows are faster than single batches: sentence-transformers sorts a
    call's texts by length, so batches carry less padding, and the dense search runs once per
    window. Only one window is held, so memory does not grow with the input. If reading fails
    on a bad line, the questions before it are still answered before the error is raised, so
    ``--resume`` after fixing the line continues right there.
    """
    size = max(int(batch_size), 1)
    for chunk, error in _windows(iter(questions), max(window or size * WINDOW_BATCHES, 1)):
        if chunk:
            answers = retriever.ask_many([q.question for q in chunk], k=k, batch_size=size)
            for q, a in zip(chunk, answers, strict=True):
                a.id = q.id
                yield q, a
        if error is not None:
            raise error


def output_format(fmt: str | None, out: str | None) -> str:
    """``--format`` if given, else ``csv`` for an ``--out`` ending in ``.csv``, else ``jsonl``."""
    if fmt:
        return fmt
    return "csv" if out and out.lower().endswith(".csv") else "jsonl"


def _same_file(a: str, b: str | None) -> bool:
    if a == "-" or not b or b == "-":
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class _Reporter:
    """Skipped-line warnings on stderr (through tqdm while a bar is showing), capped."""

    def __init__(self) -> None:
        self.skipped = 0
        self.bar: Bar | None = None

    def bad(self, message: str) -> None:
        self.skipped += 1
        if self.skipped <= MAX_WARNINGS:
            self.say(f"Warning: skipped {message}")
        elif self.skipped == MAX_WARNINGS + 1:
            self.say("Warning: more bad lines skipped; only their count is reported")

    def say(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)


def run_batch(settings: Settings, options: AskOptions, progress: bool = False) -> int:
    """``chatbot ask``: answer every question in input order; exit 2 if lines were skipped.

    ``progress`` shows a bar (the caller enables it on a terminal, unless ``quiet``).
    """
    out = options.out
    fmt = output_format(options.fmt, out)
    if _same_file(options.file, out):
        raise InputError(f"--out {out} is the question file itself; choose another output file")
    reporter = _Reporter()
    questions = iter(
        read_questions(
            options.file, options.input_format, skip_bad=options.skip_bad, on_bad=reporter.bad
        )
    )
    retriever, stream = _answerer(settings)
    evaluation = Evaluation(
        threshold=settings.threshold, k=settings.k, possible_threshold=settings.possible_threshold
    )
    started = time.perf_counter()
    scanned = None
    if options.resume and out not in (None, "-"):
        # Every written record is checked against the input before the file is touched.
        scanned = scan_output(fmt, out, settings.k)
        done = scanned[0]
        if done:
            name = STDIN_NAME if options.file == "-" else options.file
            replayed = _replay(out, fmt, done, questions, evaluation, retriever, settings, name)
            if replayed < done:
                log.warning(
                    "%s holds %d records but the input has only %d questions; nothing to add",
                    out,
                    done,
                    replayed,
                )
            elif not options.quiet:
                print(f"resuming {out} after {done} answered questions", file=sys.stderr)
    writer, done = open_writer(fmt, out, resume=options.resume, k=settings.k, scanned=scanned)
    with writer:
        bar = answering_bar(progress and not options.quiet)
        reporter.bar = bar
        try:
            for q, answer in stream(questions, settings.k, settings.batch_size):
                record = answer.to_dict()
                writer.write(record)
                evaluation.add(record, q.expected)
                bar.update(1)
        except KeyboardInterrupt:
            if out not in (None, "-"):
                reporter.say(
                    f"interrupted after {done + writer.count} answers in {out}; "
                    "run the same command with --resume to continue"
                )
            raise
        finally:
            reporter.bar = None
            bar.close()
    elapsed = time.perf_counter() - started
    log.info("answered %d questions in %.1f s", writer.count, elapsed)
    if evaluation.results:
        if not options.quiet:
            print(evaluation.format_text(), file=sys.stderr)
    elif options.report:
        log.warning("no question had an expected answer; the report shows no figures")
    if options.report:
        write_report(evaluation, options.report, title=f"Batch evaluation: {options.file}")
        if not options.quiet:
            print(f"report written to {options.report}", file=sys.stderr)
    if reporter.skipped:
        if not options.quiet:
            print(f"skipped {reporter.skipped} bad lines", file=sys.stderr)
        return 2
    return 0


def _answerer(settings: Settings) -> tuple[Any, Callable[..., Iterator[tuple[Question, Any]]]]:
    """The retriever ``chatbot ask`` uses and its ``stream(questions, k, batch_size)``: this
    process's, or with ``settings.ray_address`` the Ray cluster's actors
    (:class:`chatbot.distributed.RayAnswerer`, answers in the same order)."""
    if settings.ray_address:
        from .distributed import RayAnswerer

        ray_answerer = RayAnswerer(settings)
        return ray_answerer, ray_answerer.answer_stream
    from .service import open_retriever

    retriever = open_retriever(settings)
    return retriever, partial(answer_stream, retriever)


def _replay(
    out: str,
    fmt: str,
    done: int,
    questions: Iterator[Question],
    evaluation: Evaluation,
    retriever: Any,
    settings: Settings,
    name: str,
) -> int:
    """Consume the ``done`` questions already answered in ``out``, checking that each record
    answers the input's question at its position (same id, same question text), and score
    them so a resumed run reports the same evaluation as an uninterrupted one.

    JSON Lines records are scored from the file; CSV rows lack the passages, so their
    questions with expected answers are answered again (retrieval is deterministic).
    Returns how many questions were consumed; raises :class:`InputError` (``name`` is the
    question file) at the first record written for another question.
    """
    consumed = 0
    again: list[Question] = []
    rows = written_records(fmt, out)
    try:
        for q, (line, record) in zip(islice(questions, done), rows, strict=False):
            consumed += 1
            if str(record.get("id", "")) != q.id or record.get("question") != q.question:
                raise InputError(
                    f"{out} holds answers to other questions (line {line}: "
                    f"{_shown(record.get('id'), record.get('question'))}, but question "
                    f"{consumed} of {name} is {_shown(q.id, q.question)}); "
                    "use a new --out file or run without --resume",
                    path=out,
                    line=line,
                )
            if not q.expected:
                evaluation.add(record, None)
            elif fmt == "jsonl":
                evaluation.add(record, q.expected)
            else:
                again.append(q)
                if len(again) >= settings.batch_size:
                    _score(retriever, again, evaluation, settings)
                    again = []
    finally:
        rows.close()
    _score(retriever, again, evaluation, settings)
    return consumed


def _shown(qid: Any, question: Any, limit: int = 80) -> str:
    """``id '7' "question text"`` for a one-line message (long questions shortened)."""
    text = question if isinstance(question, str) else str(question)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"id {str(qid)!r} {json_text(text)}"


def _score(retriever: Any, qs: list[Question], evaluation: Evaluation, settings: Settings) -> None:
    for q, answer in answer_stream(retriever, qs, settings.k, settings.batch_size):
        evaluation.add(answer.to_dict(), q.expected)


def answering_bar(enabled: bool, total: int | None = None) -> Bar:
    """The "answering" bar on stderr (questions/second) when ``enabled``, else a no-op bar."""
    return progress_bar(total, "answering", "q", enabled, leave=True, smoothing=0.1)


# --------------------------------------------------------------------------- SQuAD evaluation


def run_squad_eval(settings: Settings, options: EvalOptions, progress: bool = False) -> int:
    """``chatbot eval``: index a SQuAD-format file into a temporary index and print figures."""
    from .squad import evaluate_answers, format_figures

    evaluation, info = evaluate_answers(
        Path(options.file),
        settings,
        limit=options.limit,
        baselines=options.baselines,
        progress=progress,
    )
    rate = info["questions"] / info["answer_s"] if info["answer_s"] > 0 else 0.0
    print(
        f"{info['questions']} questions, {info['documents']} documents, "
        f"{info['passages']} passages; indexing {info['index_s']:.1f} s, "
        f"answering {info['answer_s']:.1f} s ({rate:.0f} q/s)"
    )
    print(evaluation.format_text())
    if info["figures"]:
        print()
        print(format_figures(info["figures"]))
    if options.report:
        write_report(evaluation, options.report, title=f"SQuAD evaluation: {options.file}")
        if not options.quiet:
            print(f"report written to {options.report}", file=sys.stderr)
    return 0


__all__: list[str] = [
    "AskOptions",
    "EvalOptions",
    "answer_stream",
    "answering_bar",
    "output_format",
    "run_batch",
    "run_squad_eval",
]
