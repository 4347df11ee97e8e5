"""Span-level retrieval evaluation on SQuAD-format files (documents + questions + answer spans)."""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .build import index_files
from .embedder import Embedder, TokenVectors
from .index import Index
from .retrieval import Fusion, Retriever
from .store import IndexUnusable, load, save

log = logging.getLogger(__name__)


@dataclass
class SquadQuestion:
    id: str
    question: str
    source: str
    spans: list[tuple[int, int]]  # gold answer spans in the written document


@dataclass
class RunFigures:
    name: str
    n: int = 0
    hit1: float = 0.0
    hit5: float = 0.0
    mrr10: float = 0.0
    mean_len: float = 0.0
    ranks: list[int | None] = field(default_factory=list)


def write_articles(
    squad_file: Path, out_dir: Path, limit: int | None = None
) -> list[SquadQuestion]:
    """Write each article as one .txt document (title line, paragraphs joined by a blank line)."""
    data = json.loads(Path(squad_file).read_text(encoding="utf-8"))["data"]
    out_dir.mkdir(parents=True, exist_ok=True)
    questions: list[SquadQuestion] = []
    for n, article in enumerate(data[:limit] if limit else data):
        title = article.get("title", f"Article {n + 1}").replace("_", " ")
        name = f"{n:03d}-{re.sub(r'[^A-Za-z0-9]+', '_', title)[:60]}.txt"
        text = title + "\n\n"
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


def evaluate_runs(
    retrievers: dict[str, Retriever],
    questions: list[SquadQuestion],
    encoded: tuple[np.ndarray, list[TokenVectors]],
    k: int = 10,
    queries: list[str] | None = None,
) -> list[RunFigures]:
    """hit@1, hit@5, MRR@10 and mean passage length for each named retriever.

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
            ans = r.answer_with_vector(q.question, text, v, k, tokens=t)
            rank = next((h.rank for h in ans.hits if covers(h.source, h.start, h.end, q)), None)
            fig.ranks.append(rank)
            lengths.extend(len(h.text) for h in ans.hits[:5])
        ranks = fig.ranks
        fig.n = len(ranks)
        fig.hit1 = sum(1 for x in ranks if x == 1) / max(fig.n, 1)
        fig.hit5 = sum(1 for x in ranks if x is not None and x <= 5) / max(fig.n, 1)
        fig.mrr10 = sum(1 / x for x in ranks if x is not None and x <= 10) / max(fig.n, 1)
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
    """Index the articles of ``squad_file`` and evaluate fused, BM25-only and dense-only runs.

    With ``keep_index`` the built index is saved there and reused by later runs with the same
    model, splitter and articles (content hashes decide, as for any index).
    """
    docs_dir = work_dir / "docs"
    questions = write_articles(squad_file, docs_dir, limit)
    base = None
    if keep_index is not None and (keep_index / "manifest.json").exists():
        try:
            base = load(keep_index, embedder.name, splitter)
        except IndexUnusable:
            base = None
    t0 = time.perf_counter()
    index, summary = index_files(
        [docs_dir],
        embedder,
        splitter,
        base=base,
        replace_all=True,
        progress=progress,
        source_of=lambda p: p.name,
    )
    t_index = time.perf_counter() - t0
    if keep_index is not None and (summary.added or summary.updated or summary.removed):
        save(index, keep_index)
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
        "index_s": t_index,
        "embed_questions_s": t_embed,
        "rank_s": time.perf_counter() - t0,
        "passages": len(index.passages),
        "questions": len(questions),
    }
    return figures, timings
