"""Batch questions: stream a question file through the retriever, write results, evaluate."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from itertools import islice
from pathlib import Path

from .batchio import open_writer, read_questions
from .config import Settings
from .evaluate import Evaluation, write_report

log = logging.getLogger(__name__)


def run_batch(settings: Settings, args: argparse.Namespace, progress: bool = False) -> int:
    """``chatbot ask``: answer every question in input order; exit 2 if lines were skipped."""
    from .service import open_retriever

    skipped: list[str] = []

    def on_bad(message: str) -> None:
        skipped.append(message)
        print(f"Warning: skipped {message}", file=sys.stderr)

    questions = read_questions(args.file, args.input_format, skip_bad=args.skip_bad, on_bad=on_bad)
    retriever = open_retriever(settings)
    writer, done = open_writer(args.format, args.out, resume=args.resume, k=settings.k)
    evaluation = Evaluation(threshold=settings.threshold, k=settings.k)
    bar = _bar(progress and not args.quiet)
    with writer:
        stream = islice(questions, done, None)
        while chunk := list(islice(stream, settings.batch_size)):
            answers = retriever.ask_many(
                [q.question for q in chunk], k=settings.k, batch_size=settings.batch_size
            )
            for q, a in zip(chunk, answers, strict=False):
                a.id = q.id
                record = a.to_dict()
                writer.write(record)
                if q.expected:
                    evaluation.add(record, q.expected)
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if evaluation.results:
        if not args.quiet:
            print(evaluation.format_text(), file=sys.stderr)
        if args.report:
            write_report(evaluation, args.report)
    elif args.report:
        log.warning("no question had an expected answer; the report shows no figures")
        write_report(evaluation, args.report)
    if skipped:
        if not args.quiet:
            print(f"skipped {len(skipped)} bad lines", file=sys.stderr)
        return 2
    return 0


def _bar(enabled: bool):  # noqa: ANN202 - tqdm or None
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit="q", desc="answering", file=sys.stderr, dynamic_ncols=True)


def run_squad_eval(settings: Settings, args: argparse.Namespace, progress: bool = False) -> int:
    """``chatbot eval``: index a SQuAD-format file into a temporary index and print figures."""
    from .embedder import get_embedder
    from .squad import run

    path = Path(args.file)
    if not path.exists():
        raise ValueError(f"{path}: no such file; pass a SQuAD-format JSON file")
    with tempfile.TemporaryDirectory(prefix="chatbot-eval-") as tmp:
        figures, timings = run(
            path,
            Path(tmp),
            get_embedder(settings.model),
            settings.splitter_settings(),
            limit=args.limit,
            baselines=args.baselines,
            progress=progress,
        )
    print(format_figures(figures, timings))
    return 0


def format_figures(figures: list, timings: dict[str, float]) -> str:
    """A plain table of SQuAD retrieval figures."""
    lines = [
        f"{timings['questions']:.0f} questions, {timings['passages']:.0f} passages; "
        f"indexing {timings['index_s']:.1f} s, "
        f"question embedding {timings['embed_questions_s']:.1f} s",
        f"{'run':<12}{'hit@1':>8}{'hit@5':>8}{'MRR@10':>8}{'mean len':>10}",
    ]
    for f in figures:
        lines.append(f"{f.name:<12}{f.hit1:>8.3f}{f.hit5:>8.3f}{f.mrr10:>8.3f}{f.mean_len:>10.0f}")
    return "\n".join(lines)
