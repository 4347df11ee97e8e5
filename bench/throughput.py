"""Batch throughput on SQuAD v1.1 dev: answering every question vs only encoding them.

    .venv/bin/python bench/throughput.py [--index /tmp/squad-index] [--limit N] [--profile]

Indexes the dev articles (``chatbot.squad.write_articles`` + ``chatbot.build.index_files``,
about 4 minutes with the bundled model; ``--index DIR`` saves the index there and reuses it on
later runs, ``--limit N`` takes only the first N articles), then times

(a) sentence-transformers ``encode`` of all questions in batches, alone, and
(b) answering them all through the ``chatbot ask`` path (``chatbot.batch.answer_stream`` plus
    the JSON record per question; only file I/O is left out), with the same batch size, and
(c) only the encoding step of (b) (``Embedder.encode_with_tokens`` per window: one forward
    pass gives the question and token vectors, batched by token count, not by characters),

each ``--repeat`` times (default 2, alternating; the best run of each counts, as the machine
may be shared), and prints questions/second for both and the ratio (floor: 0.8).
``--profile`` adds a cProfile of (b) on 2,000 questions. Reads
``../shared/datasets/squad-v1.1/dev-v1.1.json`` relative to the project root and skips with a
message if it is absent.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import build, store  # noqa: E402
from chatbot import index as ix  # noqa: E402
from chatbot.batch import WINDOW_BATCHES, answer_stream  # noqa: E402
from chatbot.batchio import Question  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import write_articles  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
FLOOR = 0.8


def load_or_build(index_dir: Path | None, docs: Path, settings: Settings) -> ix.Index:
    """Reuse a saved index of exactly these documents, or build (and save) one."""
    names = sorted(p.name for p in docs.iterdir())
    if index_dir is not None and (index_dir / "manifest.json").exists():
        index = store.load(index_dir, settings.model, settings.splitter_settings())
        if sorted(index.documents) == names:
            print(f"reusing index {index_dir} ({len(index.passages)} passages)")
            return index
        print(f"{index_dir} holds other documents; rebuilding it")
    t0 = time.perf_counter()
    index, _ = build.index_files(
        [docs],
        get_embedder(settings.model),
        settings.splitter_settings(),
        batch_size=settings.batch_size,
        progress=sys.stderr.isatty(),
        source_of=lambda p: p.name,
    )
    print(
        f"indexed {len(names)} articles, {len(index.passages)} passages in "
        f"{time.perf_counter() - t0:.0f} s"
    )
    if index_dir is not None:
        store.save(index, index_dir)
        print(f"saved the index to {index_dir}")
    return index


def answer_all(
    retriever: Retriever, questions: list[Question], settings: Settings, window: int | None = None
) -> int:
    """The ``chatbot ask`` path without file I/O; returns the number of answered questions."""
    answered = 0
    stream = answer_stream(retriever, questions, settings.k, settings.batch_size, window=window)
    for _, answer in stream:
        json.dumps(answer.to_dict(), ensure_ascii=False)
        answered += answer.answered
    return answered


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, help="save the SQuAD index here / reuse it")
    ap.add_argument("--limit", type=int, help="only the first N articles")
    ap.add_argument("--batch-size", type=int, default=Settings().batch_size)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each path; best is shown")
    ap.add_argument(
        "--window",
        type=int,
        help="questions embedded per call in (b) (default: 16 batches; the batch size "
        "gives the unwindowed path)",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile the answering path")
    args = ap.parse_args()
    if not DATASET.exists():
        print(f"skipped: {DATASET} not found (the SQuAD v1.1 dev set in ../shared/datasets)")
        return 0
    settings = Settings(batch_size=args.batch_size)
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp:
        docs = Path(tmp) / "docs"
        squad = write_articles(DATASET, docs, args.limit)
        index = load_or_build(args.index, docs, settings)
    embedder = get_embedder(settings.model)
    model = get_embedder(settings.model, "torch").model  # sentence-transformers itself
    texts = [q.question for q in squad]
    questions = [Question(q.id, q.question, None, n) for n, q in enumerate(squad, 1)]
    retriever = Retriever(index, embedder, threshold=settings.threshold)
    bs = settings.batch_size

    # warm up both paths (first-call allocations, lazy caches of the tokenizer)
    model.encode(texts[:256], batch_size=bs, normalize_embeddings=True, convert_to_numpy=True)
    answer_all(retriever, questions[:256], settings)

    # Best of --repeat alternating runs: the machine may be shared, and the fastest run of
    # each path is the one least disturbed by other work.
    encode_runs: list[float] = []
    answer_runs: list[float] = []
    own_runs: list[float] = []
    step = args.window or bs * WINDOW_BATCHES
    answered = 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        model.encode(texts, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True)
        encode_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        answered = answer_all(retriever, questions, settings, window=args.window)
        answer_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for lo in range(0, len(texts), step):
            embedder.encode_with_tokens(texts[lo : lo + step], batch_size=bs)
        own_runs.append(time.perf_counter() - t0)
    encode_s, answer_s, own_s = min(encode_runs), min(answer_runs), min(own_runs)

    n = len(texts)
    enc_qps, ans_qps = n / encode_s, n / answer_s
    ratio = ans_qps / enc_qps
    print(
        f"{n} questions, {len(index.passages)} passages, batch size {bs}, "
        f"{answered} answered (threshold {settings.threshold})"
    )
    print(f"{'path':<40}{'seconds':>10}{'q/s':>10}")
    print(f"{'(a) sentence-transformers encode only':<40}{encode_s:>10.1f}{enc_qps:>10.1f}")
    print(f"{'(b) chatbot ask batch path':<40}{answer_s:>10.1f}{ans_qps:>10.1f}")
    print(f"{'(c) encoding step of (b) alone':<40}{own_s:>10.1f}{n / own_s:>10.1f}")
    runs = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(encode_runs, answer_runs, strict=True))
    print(f"all runs (a)/(b) seconds: {runs}")
    verdict = "ok" if ratio >= FLOOR else "BELOW FLOOR"
    print(f"ratio (b)/(a): {ratio:.2f}  (floor {FLOOR}: {verdict})")
    print(
        f"per question: (a) {1000 * encode_s / n:.2f} ms, (c) {1000 * own_s / n:.2f} ms, "
        f"the rest of (b) after (c) {1000 * (answer_s - own_s) / n:.2f} ms"
    )

    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        answer_all(retriever, questions[:2000], settings)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
