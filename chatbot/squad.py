"""SQuAD-format files: the one "index the articles, then evaluate" flow.

Each article becomes one ``.txt`` document (title line, paragraphs joined by a blank line) and
each question keeps its gold answer spans in that document; a passage is right for a question
when it covers at least half of a gold span (:func:`covers`). :func:`index_articles` builds
the index; on it, :func:`evaluate_answers` scores the ``chatbot ask`` batch path
(``chatbot eval``) and :func:`evaluate_runs` the rankings of the fused, BM25-only and
dense-only retrievers (``chatbot eval --baselines``, bench/quality.py). bench/calibrate.py
uses :func:`index_articles` for its training data. Figures come from
:func:`chatbot.evaluate.metrics`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .batch import answer_stream, answering_bar
from .batchio import InputError, Question
from .build import index_files
from .config import Settings
from .embedder import Embedder, TokenVectors, get_embedder
from .evaluate import Evaluation, metrics
from .index import Index
from .retrieval import Fusion, Retriever
from .store import IndexUnusable, commit, load, write_lock

log = logging.getLogger(__name__)

SQUAD_SHAPE = '{"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}]}'


@dataclass
class SquadQuestion:
    """A SQuAD question with its gold answer spans in the article's written document."""

    id: str
    question: str
    source: str
    spans: list[tuple[int, int]]  # gold answer spans in the written document


@dataclass
class RunFigures:
    """Ranking figures of one retrieval run (see :func:`evaluate_runs`)."""

    name: str
    n: int = 0
    hit1: float = 0.0
    hit5: float = 0.0
    mrr10: float = 0.0
    mean_len: float = 0.0
    ranks: list[int | None] = field(default_factory=list)


@dataclass
class SquadIndex:
    """The index of a SQuAD file's articles, its questions and the seconds indexing took."""

    index: Index
    questions: list[SquadQuestion]
    index_s: float


def write_articles(
    squad_file: Path, out_dir: Path, limit: int | None = None
) -> list[SquadQuestion]:
    """Write each article as one .txt document (its title line, if it has a title, then its
    paragraphs joined by a blank line).

    Raises :class:`~chatbot.batchio.InputError` if the file is not in SQuAD format.
    """
    try:
        return _write_articles(Path(squad_file), out_dir, limit)
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"{squad_file}: not a SQuAD-format file ({exc.__class__.__name__}: {exc}); "
            f"expected {SQUAD_SHAPE}",
            path=str(squad_file),
        ) from None


def _write_articles(squad_file: Path, out_dir: Path, limit: int | None) -> list[SquadQuestion]:
    data = json.loads(squad_file.read_text(encoding="utf-8"))["data"]
    out_dir.mkdir(parents=True, exist_ok=True)
    questions: list[SquadQuestion] = []
    for n, article in enumerate(data[:limit] if limit else data):
        # An article without a title (COVID-QA: the paper's own first line is its title)
        # gets no made-up title line.
        title = (article.get("title") or "").replace("_", " ")
        label = title or f"Article {n + 1}"
        name = f"{n:03d}-{re.sub(r'[^A-Za-z0-9]+', '_', label)[:60]}.txt"
        text = title + "\n\n" if title else ""
        for para in article["paragraphs"]:
            base = len(text)
            text += para["context"]
            for qa in para["qas"]:
                spans = [
                    (base + a["answer_start"], base + a["answer_start"] + len(a["text"]))
                    for a in qa.get("answers", [])
                ]
                if spans and qa.get("question", "").strip():
                    questions.append(SquadQuestion(str(qa["id"]), qa["question"], name, spans))
            text += "\n\n"
        (out_dir / name).write_text(text, encoding="utf-8", newline="")
    return questions


def covers(hit_source: str, start: int, end: int, q: SquadQuestion) -> bool:
    """A hit covers a gold answer if it contains at least half of one gold span."""
    if hit_source != q.source:
        return False
    return any(min(end, e) - max(start, s) >= (e - s) / 2 for s, e in q.spans)


def index_articles(
    squad_file: Path,
    embedder: Embedder,
    splitter: dict,
    *,
    work_dir: Path | None = None,
    limit: int | None = None,
    keep_index: Path | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> SquadIndex:
    """Write the articles of ``squad_file`` as documents and index them.

    The documents go to ``work_dir/docs`` and the index to ``work_dir/index`` (default: a
    temporary folder, removed once they are indexed: the loaded index keeps its files
    mapped, which Linux keeps readable). With ``keep_index`` the index is built there
    instead and reused by later runs with the same model, splitter and articles (content
    hashes decide, as for any index).
    """
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="chatbot-squad-") as tmp:
            return index_articles(
                squad_file,
                embedder,
                splitter,
                work_dir=Path(tmp),
                limit=limit,
                keep_index=keep_index,
                batch_size=batch_size,
                progress=progress,
            )
    docs_dir = work_dir / "docs"
    questions = write_articles(squad_file, docs_dir, limit)
    index_dir = keep_index if keep_index is not None else work_dir / "index"
    base = None
    if (index_dir / "manifest.json").exists():
        try:
            base = load(index_dir, embedder.name, splitter)
        except IndexUnusable:
            base = None
    t0 = time.perf_counter()
    change, summary = index_files(
        [docs_dir],
        embedder,
        splitter,
        base=base,
        replace_all=True,
        batch_size=batch_size,
        progress=progress,
        source_of=lambda p: p.name,
    )
    if base is None or summary.added or summary.updated or summary.removed:
        with write_lock(index_dir, 60):
            commit(index_dir, change, base)
    index_s = time.perf_counter() - t0
    index = load(index_dir, embedder.name, splitter)
    return SquadIndex(index, questions, index_s)


def evaluate_runs(
    retrievers: dict[str, Retriever],
    questions: list[SquadQuestion],
    encoded: tuple[np.ndarray, list[TokenVectors]],
    k: int = 10,
    queries: list[str] | None = None,
) -> list[RunFigures]:
    """hit@1, hit@5, MRR@10 and mean passage length (top 5) for each named retriever.

    ``encoded`` is ``Embedder.encode_with_tokens`` of the queries searched, ``queries`` (the
    questions after spelling correction, see :func:`queries_of`).
    """
    results = []
    qvecs, qtokens = encoded
    texts = queries if queries is not None else [q.question for q in questions]
    for name, r in retrievers.items():
        fig = RunFigures(name)
        lengths = []
        for q, text, v, t in zip(questions, texts, qvecs, qtokens, strict=False):
            ans = r.answer_with_vector(q.question, text, v, k, token_vectors=t)
            rank = next((h.rank for h in ans.hits if covers(h.source, h.start, h.end, q)), None)
            fig.ranks.append(rank)
            lengths.extend(len(h.text) for h in ans.hits[:5])
        m = metrics(fig.ranks, 5, mrr_k=10)
        fig.n, fig.hit1, fig.hit5, fig.mrr10 = m.n, m.hit1, m.hitk, m.mrr
        fig.mean_len = float(np.mean(lengths)) if lengths else 0.0
        results.append(fig)
    return results


def queries_of(retriever: Retriever, questions: list[SquadQuestion]) -> list[str]:
    """The text searched for each question, as ``Retriever.ask`` would (spelling corrected)."""
    return [retriever.spell(q.question) for q in questions]


def baseline_retrievers(index: Index, embedder: Embedder) -> dict[str, Retriever]:
    """BM25-only and dense-only (passage cosine) rankings over the same passages."""
    return {
        "bm25-only": Retriever(
            index, embedder, fusion=Fusion(w_passage=0, w_sentence=0, w_lexical=1, w_token=0)
        ),
        "dense-only": Retriever(
            index, embedder, fusion=Fusion(w_passage=1, w_sentence=0, w_lexical=0, w_token=0)
        ),
    }


def run(
    squad_file: Path,
    work_dir: Path,
    embedder: Embedder,
    splitter: dict,
    *,
    limit: int | None = None,
    fusion: Fusion = Fusion(),
    baselines: bool = True,
    progress: bool = False,
    keep_index: Path | None = None,
) -> tuple[list[RunFigures], dict[str, float]]:
    """Index the articles of ``squad_file`` and rank their questions with the fused and (with
    ``baselines``) the BM25-only and dense-only retrievers: bench/quality.py's figures.

    Returns the :class:`RunFigures` per run and counts and timings for :func:`format_figures`.
    """
    built = index_articles(
        squad_file,
        embedder,
        splitter,
        work_dir=work_dir,
        limit=limit,
        keep_index=keep_index,
        progress=progress,
    )
    index, questions = built.index, built.questions
    t0 = time.perf_counter()
    retrievers = {"fused": Retriever(index, embedder, fusion=fusion)}
    queries = queries_of(retrievers["fused"], questions)
    encoded = embedder.encode_with_tokens(queries)
    t_embed = time.perf_counter() - t0
    if baselines:
        retrievers.update(baseline_retrievers(index, embedder))
    t0 = time.perf_counter()
    figures = evaluate_runs(retrievers, questions, encoded, queries=queries)
    timings = {
        "index_s": built.index_s,
        "embed_questions_s": t_embed,
        "rank_s": time.perf_counter() - t0,
        "passages": len(index.passages),
        "questions": len(questions),
    }
    return figures, timings


def evaluate_answers(
    path: Path,
    settings: Settings,
    *,
    limit: int | None = None,
    baselines: bool = False,
    progress: bool = False,
) -> tuple[Evaluation, dict[str, Any]]:
    """Index a SQuAD-format file's articles and evaluate the batch path on its questions
    (``chatbot eval``).

    Every question goes through :func:`chatbot.batch.answer_stream`, as in ``chatbot ask``,
    with the settings' ``k``, threshold and batch size. A passage is right when it covers a
    gold span (span matching is stricter than text matching: a short answer like "1998" may
    occur in unrelated passages); the gold texts are the expected answers the report shows.
    Returns the :class:`~chatbot.evaluate.Evaluation` and ``info``: counts, timings and,
    with ``baselines``, the :class:`RunFigures` of the fused, BM25-only and dense-only
    rankings.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; pass a SQuAD-format JSON file", path=str(path))
    embedder = get_embedder(settings.model)
    built = index_articles(
        path,
        embedder,
        settings.splitter_settings(),
        limit=limit,
        batch_size=settings.batch_size,
        progress=progress,
    )
    index, squad = built.index, built.questions
    retriever = Retriever(
        index,
        embedder,
        threshold=settings.threshold,
        possible_threshold=settings.possible_threshold,
        max_word_chars=settings.max_word_chars,
    )
    evaluation = Evaluation(
        threshold=settings.threshold, k=settings.k, possible_threshold=settings.possible_threshold
    )

    def expected(sq: SquadQuestion) -> list[str]:
        text = index.documents[sq.source].text
        return list(dict.fromkeys(text[s:e] for s, e in sq.spans))

    stream = (Question(q.id, q.question, expected(q), n) for n, q in enumerate(squad, 1))
    t0 = time.perf_counter()
    with answering_bar(progress, total=len(squad)) as bar:
        for q, answer in answer_stream(retriever, stream, settings.k, settings.batch_size):
            sq = squad[q.line - 1]  # ``line`` is the position (SQuAD ids need not be unique)
            evaluation.add(
                answer.to_dict(),
                q.expected,
                match=lambda p, sq=sq: covers(p["source"], p["start"], p["end"], sq),
            )
            bar.update(1)
    answer_s = time.perf_counter() - t0
    info: dict[str, Any] = {
        "questions": len(squad),
        "documents": len(index.documents),
        "passages": len(index.passages),
        "index_s": built.index_s,
        "answer_s": answer_s,
        "figures": [],
    }
    if baselines:
        queries = queries_of(retriever, squad)
        encoded = embedder.encode_with_tokens(queries, batch_size=settings.batch_size)
        runs = {"fused": retriever, **baseline_retrievers(index, embedder)}
        info["figures"] = evaluate_runs(runs, squad, encoded, queries=queries)
    return evaluation, info


def format_figures(figures: Iterable[RunFigures], timings: dict[str, float] | None = None) -> str:
    """A plain table of ranking figures (hit@1, hit@5, MRR@10) per retrieval run, after a line
    of counts and timings when ``timings`` (from :func:`run`) is given."""
    lines = []
    if timings is not None:
        lines.append(
            f"{timings['questions']:.0f} questions, {timings['passages']:.0f} passages; "
            f"indexing {timings['index_s']:.1f} s, "
            f"question embedding {timings['embed_questions_s']:.1f} s"
        )
    lines.append(f"{'run':<12}{'hit@1':>8}{'hit@5':>8}{'MRR@10':>8}{'mean len':>10}")
    for f in figures:
        lines.append(f"{f.name:<12}{f.hit1:>8.3f}{f.hit5:>8.3f}{f.mrr10:>8.3f}{f.mean_len:>10.0f}")
    return "\n".join(lines)


__all__ = [
    "RunFigures",
    "SquadIndex",
    "SquadQuestion",
    "baseline_retrievers",
    "covers",
    "evaluate_answers",
    "evaluate_runs",
    "format_figures",
    "index_articles",
    "queries_of",
    "run",
    "write_articles",
]
