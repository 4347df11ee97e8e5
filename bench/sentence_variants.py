"""Sentence-vector variants on SQuAD v1.1 dev: embedded alone vs late chunking and mixes of them.

    .venv/bin/python bench/sentence_variants.py [FILE.json] [--limit N] [--keep DIR]
        [--variants NAME,...]

Indexes the articles as bench/quality.py does (``--keep DIR`` saves the index and reuses it;
tune with ``--limit 24``, the fit half, and judge on the whole set), then derives the
sentence vectors of the index's passages several ways from two ingredients computed once:
each distinct sentence embedded alone (*alone*, what the builder did before) and late
chunking (*late*: the mean of the passage's own token states over the sentence, from the
passage's forward pass, ``Embedder.encode_late``), and ranks every question with the fused
retriever over each set (hit@1, hit@5, MRR@10). Variants:

- ``alone``, ``late``;
- ``late-pG``: late minus G times the passage vector, normalised (G < 0 mixes the passage in);
- ``short-L``: sentences under L characters embedded alone, the others late-chunked (the
  column "alone chars" is the share of sentence characters that still need their own pass);
- ``avg``: a sentence in several overlapping passages gets the mean of its late vectors.
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

from chatbot.build import EMBED_CHUNK  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.index import match_text  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import evaluate_runs, index_articles, queries_of  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
DEFAULT_VARIANTS = "alone,late,late-p0.2,late-p0.4,late-p-0.2,short-80,short-120,avg"


def _norm(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--limit", type=int, help="only the first N articles")
    ap.add_argument("--keep", help="save/reuse the built index in this folder")
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
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
    bs = settings.batch_size

    # ingredients: each distinct sentence alone; late chunking per occurrence; passage vectors
    keys: dict[tuple[str, int, int], int] = {}
    rows, sent_texts, lengths = [], [], []
    texts, spans = [], []
    for p in index.passages:
        text = match_text(p, index.documents[p.source].title)
        at = len(text) - len(p.text)
        texts.append(text)
        spans.append([(at + s, at + e) for s, e in p.sentences])
        for s, e in p.sentences:
            key = (p.source, p.start + s, p.start + e)
            if key not in keys:
                keys[key] = len(sent_texts)
                sent_texts.append(p.text[s:e])
            rows.append(keys[key])
            lengths.append(e - s)
    rows_a = np.asarray(rows, dtype=np.int64)
    length = np.asarray(lengths)
    t0 = time.perf_counter()
    alone = embedder.encode(sent_texts, batch_size=bs)[rows_a]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    late_parts, pvec_parts = [], []
    for i in range(0, len(texts), EMBED_CHUNK):
        v, _, pooled = embedder.encode_late(
            texts[i : i + EMBED_CHUNK], spans[i : i + EMBED_CHUNK], batch_size=bs
        )
        late_parts.extend(pooled)
        pvec_parts.extend(np.repeat(v[j : j + 1], len(sp), 0) for j, sp in enumerate(pooled))
    t_late = time.perf_counter() - t0
    late = np.concatenate(late_parts)
    pvec = np.concatenate(pvec_parts)
    cos = np.sum(alone * late, axis=1)
    print(
        f"# {path.name}: {len(index.passages)} passages, {len(rows)} sentence rows, "
        f"{len(sent_texts)} distinct; alone {t_alone:.0f} s, late pass {t_late:.0f} s; "
        f"cos(alone, late) mean {cos.mean():.3f}"
    )
    for lo, hi in ((0, 60), (60, 120), (120, 200), (200, 10**6)):
        m = (length >= lo) & (length < hi)
        if m.any():
            print(f"  sentences {lo}-{hi} chars: {m.sum()}, mean cos {cos[m].mean():.3f}")

    distinct_len = np.asarray([len(t) for t in sent_texts])
    variants: dict[str, tuple[np.ndarray, float]] = {}
    for name in args.variants.split(","):
        share = 0.0
        if name == "alone":
            v, share = alone, 1.0
        elif name == "late":
            v = late
        elif name.startswith("late-p"):
            g = float(name[len("late-p") :])
            v = _norm(late - g * pvec)
        elif name.startswith("short-"):
            limit = int(name[len("short-") :])
            v = np.where((length < limit)[:, None], alone, late)
            share = float(distinct_len[distinct_len < limit].sum() / distinct_len.sum())
        elif name == "avg":
            sums = np.zeros((len(sent_texts), late.shape[1]), np.float32)
            np.add.at(sums, rows_a, late)
            v = _norm(sums)[rows_a]
        else:
            raise SystemExit(f"unknown variant {name}")
        variants[name] = (np.ascontiguousarray(v, dtype=np.float32), share)

    first = Retriever(index, embedder, threshold=settings.threshold)
    queries = queries_of(first, questions)
    encoded = embedder.encode_with_tokens(queries, batch_size=bs)
    print(f"{'variant':<14}{'alone chars':>12}{'hit@1':>8}{'hit@5':>8}{'MRR@10':>8}")
    for name, (v, share) in variants.items():
        r = Retriever(
            dataclasses.replace(index, sentence_vectors=v), embedder, threshold=settings.threshold
        )
        (fig,) = evaluate_runs({name: r}, questions, encoded, queries=queries)
        row = f"{name:<14}{share:>12.2f}{fig.hit1:>8.3f}{fig.hit5:>8.3f}{fig.mrr10:>8.3f}"
        print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
