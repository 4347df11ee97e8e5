"""Sentence vectors two ways on SQuAD v1.1 dev: each sentence embedded again vs late chunking.

    .venv/bin/python bench/late_chunk.py [FILE.json] [--limit N] [--keep DIR]

Indexes the articles as bench/quality.py does (``--keep DIR`` saves the index and reuses it),
then, on the index's passages and in the same process:

- *again* (the derivation before late chunking): the passages' forward pass
  (``Embedder.encode_with_tokens``), then every distinct sentence embedded on its own;
- *late*: one forward pass (``Embedder.encode_late``), each sentence's vector the mean of the
  passage's own token states inside the sentence;

timing each (characters of the passages' match text per second; both give the same passage
and token vectors), and ranks every question with the fused retriever over each set of
sentence vectors (hit@1, hit@5, MRR@10). Default FILE: the SQuAD v1.1 dev set in
../shared/datasets.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import build  # noqa: E402
from chatbot.build import EMBED_CHUNK, embed_passages  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import Embedder, get_embedder  # noqa: E402
from chatbot.index import Index, match_text  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import evaluate_runs, format_figures, index_articles, queries_of  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"


def sentences_again(index: Index, embedder: Embedder, batch_size: int) -> np.ndarray:
    """Passages through the model, then each distinct sentence embedded alone: the
    builder's own embedding step (:func:`chatbot.build.embed_passages`) as it was before it
    late-chunked sentences (``ALONE_BELOW`` above every sentence's length)."""
    saved = build.ALONE_BELOW
    build.ALONE_BELOW = 10**9
    try:
        return embed_passages(index.passages, index.documents, embedder, batch_size, False)[1]
    finally:
        build.ALONE_BELOW = saved


def sentences_late(index: Index, embedder: Embedder, batch_size: int) -> np.ndarray:
    """One forward pass per passage; sentences pooled from it."""
    texts, spans = [], []
    for p in index.passages:
        text = match_text(p, index.documents[p.source].title)
        at = len(text) - len(p.text)  # the passage text ends the match text
        texts.append(text)
        spans.append([(at + s, at + e) for s, e in p.sentences])
    parts = []
    for i in range(0, len(texts), EMBED_CHUNK):
        _, _, pooled = embedder.encode_late(
            texts[i : i + EMBED_CHUNK], spans[i : i + EMBED_CHUNK], batch_size=batch_size
        )
        parts.extend(pooled)
    return np.concatenate(parts)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--limit", type=int, help="only the first N articles")
    ap.add_argument("--keep", help="save/reuse the built index in this folder")
    args = ap.parse_args()
    path = Path(args.file)
    if not path.exists():
        print(f"skipped: {path} not found (the shared datasets are not here)")
        return 0
    settings = Settings.from_env()
    embedder = get_embedder(settings.model)
    built = index_articles(
        path,
        embedder,
        settings.splitter_settings(),
        limit=args.limit,
        keep_index=Path(args.keep) if args.keep else None,
        batch_size=settings.batch_size,
    )
    index, questions = built.index, built.questions
    chars = sum(len(match_text(p, index.documents[p.source].title)) for p in index.passages)
    embedder.encode_late(["warm up"], [[(0, 4)]])
    vectors, seconds = {}, {}
    for name, derive in (("again", sentences_again), ("late", sentences_late)):
        t0 = time.perf_counter()
        vectors[name] = derive(index, embedder, settings.batch_size)
        seconds[name] = time.perf_counter() - t0
    print(f"# {path.name}: {len(index.passages)} passages, {chars} characters")
    print(f"{'sentence vectors':<18}{'seconds':>10}{'chars/s':>10}")
    for name, s in seconds.items():
        print(f"{name:<18}{s:>10.1f}{chars / s:>10.0f}")
    cos = np.sum(vectors["again"] * vectors["late"], axis=1)
    print(f"cosine again vs late per sentence: mean {cos.mean():.3f}, min {cos.min():.3f}")
    retrievers = {
        f"fused, {name}": Retriever(
            dataclasses.replace(index, sentence_vectors=v), embedder, threshold=settings.threshold
        )
        for name, v in vectors.items()
    }
    queries = queries_of(next(iter(retrievers.values())), questions)
    encoded = embedder.encode_with_tokens(queries, batch_size=settings.batch_size)
    print(format_figures(evaluate_runs(retrievers, questions, encoded, queries=queries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
