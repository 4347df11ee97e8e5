"""Indexing speed on SQuAD v1.1 dev: a whole index build vs plain sentence-transformers encode.

    .venv/bin/python bench/indexing.py [FILE.json] [--limit N] [--repeat R]
        [--backends torch,openvino]

Writes the dev articles as documents (``chatbot.squad.write_articles``, as bench/quality.py
does), loads the model once per backend, then times, in the same process and alternating
(``--repeat`` rounds, default 1; the best run of each counts, as the machine may be shared):

- *reference*: ``SentenceTransformer.encode`` (torch fp32, default settings, batch size 32) of
  the same text cut into <= 500-character sentence packs without overlap (the splitter with
  ``overlap=0``), with the model already loaded;
- *BACKEND[:SENTENCES]* (a build): the whole of ``chatbot index build`` into an empty index folder
  (``chatbot.service.build``: read, split, embed, BM25 terms, save), with that backend's model
  already loaded (its load and conversion time is printed apart).

Characters per second are the documents' characters (reference: the packs' characters, the
same text) divided by the seconds; the ratio is build chars/s over reference chars/s (floor: 2).
The embedding step of the build (``chatbot.build.embed_passages``) is timed too.

``--runs`` lists builds as ``BACKEND[:SENTENCES[:BATCH]]`` (BATCH: the build's batch size,
default the setting ``batch_size``), SENTENCES being how sentence vectors are
made (``chatbot.build.ALONE_BELOW`` / ``LATE_MINUS_PASSAGE``): ``alone`` (every sentence
embedded on its own), ``late`` (all late-chunked), ``short-L`` (under L characters alone, the
rest late-chunked), ``short-L-pG`` (and G times the passage vector taken off the late ones);
default: the builder's own setting.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import build, service  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.documents import load_document  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.squad import write_articles  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
FLOOR = 2.0


def sentence_packs(docs: Path, settings: Settings) -> list[str]:
    """The documents' text as <= max_chars sentence packs, without overlap."""
    from chatbot.splitter import split_document

    packs = []
    for path in sorted(docs.iterdir()):
        doc = load_document(path, path.name)
        packs.extend(
            p.text
            for p in split_document(
                doc, max_chars=settings.max_chars, min_chars=settings.min_chars, overlap=0
            )
        )
    return packs


class _Timer:
    """Wraps ``build.embed_passages`` to add up the seconds spent in it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._inner = build.embed_passages

    def __call__(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return self._inner(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0


@contextmanager
def sentence_setting(sentences: str) -> Iterator[None]:
    """Set ``chatbot.build``'s sentence-vector constants for one build (see the docstring)."""
    saved = build.ALONE_BELOW, build.LATE_MINUS_PASSAGE
    if sentences == "alone":
        build.ALONE_BELOW = 10**9
    elif sentences == "late":
        build.ALONE_BELOW, build.LATE_MINUS_PASSAGE = 0, 0.0
    elif sentences.startswith("short-"):
        limit, _, g = sentences[len("short-") :].partition("-p")
        build.ALONE_BELOW, build.LATE_MINUS_PASSAGE = int(limit), float(g or 0.0)
    elif sentences:
        raise SystemExit(f"unknown sentence setting {sentences!r}")
    try:
        yield
    finally:
        build.ALONE_BELOW, build.LATE_MINUS_PASSAGE = saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?", default=str(DEFAULT))
    ap.add_argument("--limit", type=int, help="only the first N articles")
    ap.add_argument("--repeat", type=int, default=1, help="rounds; the best run of each counts")
    ap.add_argument(
        "--runs",
        default=None,
        help="comma-separated builds, BACKEND[:SENTENCES] (default: the configured backend, "
        "CHATBOT_BACKEND or Settings.backend, with the builder's own sentence setting)",
    )
    args = ap.parse_args()
    path = Path(args.file)
    if not path.exists():
        print(f"skipped: {path} not found (the shared datasets are not here)")
        return 0
    base = Settings.from_env()
    runs_asked = args.runs.split(",") if args.runs else [base.backend]
    backends = list(dict.fromkeys(r.split(":")[0] for r in runs_asked))
    timer = _Timer()
    build.embed_passages = timer  # service.build -> index_files -> _embed calls it by name
    with tempfile.TemporaryDirectory(prefix="bench-indexing-") as tmp:
        docs = Path(tmp) / "docs"
        write_articles(path, docs, args.limit)
        chars = sum(len(load_document(p, p.name).text) for p in docs.iterdir())
        packs = sentence_packs(docs, base)
        load_s = {}
        for b in backends:
            t0 = time.perf_counter()
            emb = get_embedder(base.model, b)
            emb.encode(["warm up"])
            load_s[b] = time.perf_counter() - t0
        model = get_embedder(base.model, backends[0]).model  # the sentence-transformers model
        model.encode(packs[:64])  # warm up
        runs: dict[str, list[float]] = {"reference": []}
        embed_runs: dict[str, list[float]] = {}
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            model.encode(packs)
            runs["reference"].append(time.perf_counter() - t0)
            for n, run in enumerate(runs_asked):
                b, _, rest = run.partition(":")
                sentences, _, batch = rest.partition(":")
                settings = Settings.from_env(
                    index=str(Path(tmp) / f"index-{n}"),
                    corpus=str(docs),
                    backend=b,
                    batch_size=int(batch) if batch else None,
                )
                timer.seconds = 0.0
                with sentence_setting(sentences):
                    t0 = time.perf_counter()
                    service.build(settings, replace_all=True)
                    runs.setdefault(run, []).append(time.perf_counter() - t0)
                embed_runs.setdefault(run, []).append(timer.seconds)
                shutil.rmtree(settings.index_dir)
    pack_chars = sum(len(p) for p in packs)
    ref = pack_chars / min(runs["reference"])
    print(
        f"# {path.name}: {len(list(packs))} packs of {pack_chars} characters; "
        f"documents {chars} characters; load + convert: "
        + ", ".join(f"{b} {s:.1f} s" for b, s in load_s.items())
    )
    print(f"{'path':<26}{'seconds':>9}{'chars/s':>10}{'vs ref':>8}{'embed s':>9}  all runs")
    for name, secs in runs.items():
        best = min(secs)
        rate = (pack_chars if name == "reference" else chars) / best
        emb_s = f"{min(embed_runs[name]):9.1f}" if name in embed_runs else f"{'':9}"
        all_runs = ", ".join(f"{s:.1f}" for s in secs)
        print(f"{name:<26}{best:>9.1f}{rate:>10.0f}{rate / ref:>8.2f}{emb_s}  {all_runs}")
    for name in runs:
        if name != "reference":
            ratio = chars / min(runs[name]) / ref
            verdict = "ok" if ratio >= FLOOR else "BELOW FLOOR"
            print(f"{name}: {ratio:.2f}x the reference (floor {FLOOR}: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
