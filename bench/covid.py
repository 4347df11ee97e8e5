"""COVID-QA retrieval by half: hit@1, hit@5, MRR@10, and what kind of passage comes first.

    .venv/bin/python bench/covid.py [--keep DIR] [--file FILE.json]

All 98 articles are indexed with the project's own pipeline and default settings (each
article one document: a title line, then the paper as released: title, URL, authors, DOI,
licence, abstract, text); every question is asked through the full answering path
(retrieval, trust model). Figures are printed per half: the development half (articles
1-49, 359 questions: what may be tuned on) and the evaluation half (articles 50-98, 1,021
questions, from "The Intranasal Application of Zanamivir and Carrageenan ..." on: only
reported). A hit is a returned passage covering at least half of a gold answer span. The
last columns count questions whose top passage is front matter, a reference list or a
caption (:mod:`chatbot.structure`). ``--keep DIR`` saves the built index and reuses it.
``--file`` another SQuAD-format file, e.g. SQuAD dev with ``--dev-articles 24`` (its fit and
evaluation halves).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.evaluate import metrics  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import covers, index_articles, queries_of  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "datasets" / "covid-qa" / "200423_covidQA.json"
DEV_ARTICLES = 49  # articles 0..48 are the development half


def article_of(source: str) -> int:
    """The article number of a document written by :func:`chatbot.squad.write_articles`."""
    return int(source.split("-", 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", default=str(DEFAULT))
    ap.add_argument("--keep", help="save/reuse the built index in this folder")
    ap.add_argument(
        "--dev-articles",
        type=int,
        default=DEV_ARTICLES,
        help="articles in the first half (49 for COVID-QA; 24 for SQuAD dev: its fit half)",
    )
    args = ap.parse_args()
    path = Path(args.file)
    if not path.exists():
        print(f"skipped: {path} not found (the shared datasets are not here)")
        return 0
    settings = Settings.from_env()
    embedder = get_embedder(settings.model)
    t0 = time.perf_counter()
    built = index_articles(
        path,
        embedder,
        settings.splitter_settings(),
        keep_index=Path(args.keep) if args.keep else None,
        batch_size=settings.batch_size,
        progress=sys.stderr.isatty(),
    )
    index_s = time.perf_counter() - t0
    index, questions = built.index, built.questions
    retriever = Retriever(
        index,
        embedder,
        threshold=settings.threshold,
        possible_threshold=settings.possible_threshold,
    )
    queries = queries_of(retriever, questions)
    qvecs, qtokens = embedder.encode_with_tokens(queries)
    n, total = args.dev_articles, len(index.documents)
    halves: dict[str, list[int | None]] = {
        f"development (1-{n})": [],
        f"evaluation ({n + 1}-{total})": [],
    }
    kinds: dict[str, Counter[str]] = {name: Counter() for name in halves}
    for q, text, v, t in zip(questions, queries, qvecs, qtokens, strict=True):
        ans = retriever.answer_with_vector(q.question, text, v, 5, token_vectors=t)
        rank = next((h.rank for h in ans.hits if covers(h.source, h.start, h.end, q)), None)
        half = list(halves)[article_of(q.source) >= n]
        halves[half].append(rank)
        if ans.hits:
            kinds[half][getattr(ans.hits[0], "kind", "body")] += 1
    print(
        f"# {path.name}: {total} articles, {index.size} passages, "
        f"indexed/loaded in {index_s:.0f} s; splitter {settings.splitter_settings()}"
    )
    print()
    print(
        "| half | questions | hit@1 | hit@5 | MRR@10 | top: front matter | references | captions |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, ranks in halves.items():
        m = metrics(ranks, 5, mrr_k=10)
        k = kinds[name]
        print(
            f"| {name} | {m.n} | {m.hit1:.3f} | {m.hitk:.3f} | {m.mrr:.3f} "
            f"| {k['front']} | {k['references']} | {k['caption']} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
