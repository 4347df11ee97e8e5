"""Token-vector codes (product quantisation) and float16 vectors on SQuAD v1.1 dev (issue 10).

    .venv/bin/python bench/codec.py [FILE.json] [--keep DIR] [--m 16,24,32,48,96]
                                    [--sources corpus,calib,fit] [--write-calibration]

Indexes the articles as bench/quality.py does (``--keep DIR`` saves the index and reuses
it), prints sizing figures of the index, then ranks every question with the fused retriever
(hit@1, hit@5, MRR@10 on the whole dev set and on its evaluation half, articles 25-48) over
variants of the loaded index, swapped in memory (the library is not changed):

- ``exact``: the stored float16 token vectors (the reference);
- ``pq-SOURCE-mM``: token vectors encoded with a :class:`chatbot.codec.TokenCodec` of ``m``
  bytes per token, then decoded (rows re-normalised; ``-raw``: not), with the codebook trained on
  ``corpus``: the index's own token vectors (option a: depends on what is indexed, so only a
  reference), ``calib``: the shipped calibration text (chatbot/data/calibration.txt, fit-half
  paragraphs) embedded with the model (option b, :func:`chatbot.codec.default_codec`), or
  ``fit``: the token vectors of all fit-half passages (articles 1-24; option c, a codebook that
  would be shipped precomputed for the bundled model);
- ``f16-vectors``: passage and sentence vectors rounded to float16 (FAISS index rebuilt);
- ``f16+pq-calib-mM``: both.

``--write-calibration`` (re)writes chatbot/data/calibration.txt from FILE's fit half and exits.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot.codec import (  # noqa: E402
    CALIBRATION_TEXT,
    TokenCodec,
    calibration_texts,
    default_codec,
    token_sample,
)
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.evaluate import metrics  # noqa: E402
from chatbot.index import Index, flat_index  # noqa: E402
from chatbot.retrieval import Retriever  # noqa: E402
from chatbot.squad import evaluate_runs, index_articles, queries_of  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
FIT_ARTICLES = 24  # articles 1-24 may be trained on; 25-48 are the evaluation half
CALIBRATION_CHARS = 60_000
TEXT_FILES = ("bm25", "documents.jsonl", "passages.jsonl", "tokens.txt")


def calibration_paragraphs(squad_file: Path, budget: int = CALIBRATION_CHARS) -> list[str]:
    """Paragraphs of the fit-half articles, taken round-robin (paragraph 1 of each article,
    then paragraph 2, ...) while the total stays within ``budget`` characters."""
    data = json.loads(squad_file.read_text(encoding="utf-8"))["data"][:FIT_ARTICLES]
    out: list[str] = []
    used = 0
    for k in range(max(len(a["paragraphs"]) for a in data)):
        for a in data:
            if k < len(a["paragraphs"]):
                p = " ".join(a["paragraphs"][k]["context"].split())
                if used + len(p) + 2 > budget:
                    return out
                out.append(p)
                used += len(p) + 2
    return out


def article_number(source: str) -> int:
    """The 0-based article number of a document written by squad.write_articles."""
    return int(source.split("-", 1)[0])


def sizing(index: Index, gen_dir: Path | None) -> list[str]:
    """Figures for sizing the per-passage budget."""
    n = len(index.passages)
    sent_keys = set()
    for p in index.passages:
        sent_keys.update((p.source, p.start + s, p.start + e) for s, e in p.sentences)
    doc_bytes = sum(len(d.text.encode("utf-8")) for d in index.documents.values())
    lines = [
        f"passages {n}, documents {len(index.documents)}",
        f"tokens per passage: mean {np.mean(index.token_counts):.1f}, "
        f"max {int(np.max(index.token_counts))}",
        f"sentences per passage: mean {np.mean([len(p.sentences) for p in index.passages]):.2f}"
        f", distinct (sentences repeat across overlapping windows) {len(sent_keys) / n:.2f}",
        f"passage chars: mean {np.mean([len(p.text) for p in index.passages]):.0f}",
        f"document text bytes / passages: {doc_bytes / n:.0f}",
    ]
    if gen_dir is not None and gen_dir.is_dir():
        files = sorted(f for f in gen_dir.rglob("*") if f.is_file())
        sizes: dict[str, int] = {}
        for f in files:
            key = f.relative_to(gen_dir).parts[0]
            sizes[key] = sizes.get(key, 0) + f.stat().st_size
        total = sum(sizes.values())
        lines.append(f"stored generation {gen_dir.name}: {total / n:.0f} bytes per passage")
        lines.extend(f"  {k:<22}{v / n:>8.0f}" for k, v in sorted(sizes.items()))
        text = sum(sizes.get(k, 0) for k in TEXT_FILES) / n
        tokens = float(np.mean(index.token_counts))
        distinct = len(sent_keys) / n
        nsent = float(np.mean([len(p.sentences) for p in index.passages]))
        lines.append(
            "projected bytes per passage, text files as now "
            f"({' + '.join(TEXT_FILES)} = {text:.0f}), token counts as uint16 (2), "
            "passage vectors float16, distinct sentence vectors float16 with a uint32 row "
            f"per passage sentence ({4 * nsent:.0f}):"
        )
        for m in (16, 24, 32, 48, 64, 96):
            for faiss_bytes, how in ((0, "no FAISS file"), (4 * index.dim, "f32 FAISS file")):
                total = (
                    text
                    + 2
                    + m * tokens
                    + 2 * index.dim
                    + faiss_bytes
                    + 2 * index.dim * distinct
                    + 4 * nsent
                )
                lines.append(f"  m={m:<3} {how:<15}{total:>7.0f}")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--keep", help="save/reuse the built index in this folder")
    ap.add_argument("--m", default="16,24,32,48,96", help="bytes per token to try")
    ap.add_argument("--sources", default="corpus,calib,fit", help="codebook sources to try")
    ap.add_argument("--raw-m", default="32", help="m values also tried without re-normalising")
    ap.add_argument("--write-calibration", action="store_true")
    ap.add_argument("--sizing-only", action="store_true", help="print the sizing figures only")
    args = ap.parse_args()
    path = Path(args.file)
    if not path.exists():
        print(f"skipped: {path} not found (the shared datasets are not here)")
        return 0
    if args.write_calibration:
        paras = calibration_paragraphs(path)
        CALIBRATION_TEXT.parent.mkdir(parents=True, exist_ok=True)
        CALIBRATION_TEXT.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
        print(f"wrote {CALIBRATION_TEXT}: {len(paras)} paragraphs")
        return 0
    ms = [int(x) for x in args.m.split(",") if x]
    raw_ms = {int(x) for x in args.raw_m.split(",") if x}
    sources = [s for s in args.sources.split(",") if s]

    settings = Settings.from_env()
    embedder = get_embedder(settings.model)
    keep = Path(args.keep) if args.keep else None
    t0 = time.perf_counter()
    built = index_articles(
        path, embedder, settings.splitter_settings(), keep_index=keep, progress=False
    )
    index, questions = built.index, built.questions
    print(f"# {path.name}: index ready in {time.perf_counter() - t0:.0f} s")
    gen = keep / json.loads((keep / "manifest.json").read_text())["generation"] if keep else None
    for line in sizing(index, gen):
        print(line)
    sys.stdout.flush()
    if args.sizing_only:
        return 0

    evalhalf = np.array([article_number(q.source) >= FIT_ARTICLES for q in questions])
    base = Retriever(index, embedder)
    queries = queries_of(base, questions)
    encoded = embedder.encode_with_tokens(queries)
    tokens = np.asarray(index.token_vectors, dtype=np.float32)
    vectors0, sentences0, faiss0 = index.vectors, index.sentence_vectors, index.faiss_index
    mean_tokens = float(np.mean(index.token_counts))

    rows: list[tuple[str, float, float, list[float]]] = []
    header = (
        f"{'option':<22}{'B/token':>8}{'B/psg tok':>10}"
        f"{'hit@1':>8}{'hit@5':>8}{'MRR@10':>8}{'eval h@1':>9}{'eval h@5':>9}{'eval MRR':>9}"
        f"{'secs':>6}"
    )

    def evaluate(name: str, per_token: float, setup: Callable[[], None]) -> None:
        t = time.perf_counter()
        setup()
        fig = evaluate_runs({name: Retriever(index, embedder)}, questions, encoded, queries=queries)
        ranks = fig[0].ranks
        m_all = metrics(ranks, 5, mrr_k=10)
        m_eval = metrics([r for r, e in zip(ranks, evalhalf, strict=True) if e], 5, mrr_k=10)
        figs = [m_all.hit1, m_all.hitk, m_all.mrr, m_eval.hit1, m_eval.hitk, m_eval.mrr]
        rows.append((name, per_token, per_token * mean_tokens, figs))
        print(_row(rows[-1], time.perf_counter() - t), flush=True)
        # restore the reference state
        index.vectors, index.sentence_vectors, index.faiss_index = vectors0, sentences0, faiss0
        index._token_matrix = None

    def use_tokens(matrix: np.ndarray) -> Callable[[], None]:
        def setup() -> None:
            index._token_matrix = matrix

        return setup

    def f16_vectors() -> None:
        v = np.asarray(vectors0, dtype=np.float16).astype(np.float32)
        index.vectors = v
        index.sentence_vectors = np.asarray(sentences0, dtype=np.float16).astype(np.float32)
        index.faiss_index = flat_index(v, index.dim)

    print(header, flush=True)
    evaluate("exact (f16 tokens)", 2 * index.dim, lambda: None)
    evaluate("f16-vectors", 2 * index.dim, f16_vectors)

    fit_rows = np.concatenate(
        [
            np.arange(s, s + c)
            for p, s, c in zip(index.passages, index.token_start, index.token_counts, strict=True)
            if article_number(p.source) < FIT_ARTICLES
        ]
    )
    timing: dict[str, float] = {}
    t = time.perf_counter()
    calib = token_sample(embedder, calibration_texts())
    timing["embed calibration text"] = time.perf_counter() - t
    print(
        f"codebook rows: corpus {len(tokens)}, fit half {len(fit_rows)}, "
        f"calibration text {len(calib)} ({CALIBRATION_TEXT.stat().st_size} bytes)",
        flush=True,
    )
    for m in ms:
        for source in sources:
            t = time.perf_counter()
            if source == "corpus":
                codec = TokenCodec.train(tokens, m)
            elif source == "calib":
                codec = TokenCodec.train(calib, m)  # what default_codec(embedder, m) trains
                if m == ms[0]:
                    assert default_codec(embedder, m) == codec
            elif source == "fit":
                codec = TokenCodec.train(tokens[fit_rows], m)
            else:
                raise SystemExit(f"unknown codebook source {source!r}")
            timing[f"train {source} m={m}"] = time.perf_counter() - t
            codes = codec.encode(tokens)
            evaluate(f"pq-{source}-m{m}", m, use_tokens(codec.decode(codes)))
            if m in raw_ms:
                evaluate(f"pq-{source}-m{m}-raw", m, use_tokens(codec.decode(codes, False)))
            if source == "calib" and m in raw_ms:
                decoded = codec.decode(codes)

                def both(decoded: np.ndarray = decoded) -> None:
                    f16_vectors()
                    index._token_matrix = decoded

                evaluate(f"f16+pq-calib-m{m}", m, both)

    print()
    print(
        f"{len(questions)} questions ({int(evalhalf.sum())} in the evaluation half), "
        f"{len(index.passages)} passages, {mean_tokens:.1f} tokens per passage"
    )
    print(header)
    for r in rows:
        print(_row(r, None))
    print("training seconds (one thread): " + ", ".join(f"{k} {v:.1f}" for k, v in timing.items()))
    return 0


def _row(r: tuple[str, float, float, list[float]], secs: float | None) -> str:
    name, per_token, per_passage, figs = r
    cells = "".join(f"{x:>8.3f}" for x in figs[:3]) + "".join(f"{x:>9.3f}" for x in figs[3:])
    tail = f"{secs:>6.0f}" if secs is not None else ""
    return f"{name:<22}{per_token:>8.0f}{per_passage:>10.0f}{cells}{tail}"


if __name__ == "__main__":
    sys.exit(main())
