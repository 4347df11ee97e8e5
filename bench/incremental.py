"""Incremental indexing floors: adding one ~20 KB document to the SQuAD dev index, and add+remove.

    .venv/bin/python bench/incremental.py [--work DIR] [--repeats 3] [--questions 50]

Builds an index of the SQuAD v1.1 dev articles with the configured model (about 4 minutes
with the bundled model on 2 cores; ``--work DIR`` keeps it for the next run), then times

  (a) indexing one ~20 KB document (COVID-QA context text) into an empty index, and
  (b) ``service.build(settings, [doc])``: adding that document to the SQuAD index,

each ``--repeats`` times (the document is removed again after each (b)), with the model
loaded once beforehand so neither timing includes it. Floor: median (b) <= 1.5 x median (a).
Each timing is also split into "embed" (inside the model) and "other" (reading, splitting,
tokenising, rebuilding BM25 over every passage, loading and saving the index), the part
that grows with the size of the index.
Then checks that ``chatbot ask`` output over ~50 SQuAD questions is identical before the
add and after add+remove. Exits 1 if a floor is missed, 0 otherwise (also when the data
sets are absent, after saying so).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.cli import main as cli_main  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402
from chatbot.squad import write_articles  # noqa: E402

SQUAD = ROOT.parent / "shared/datasets/squad-v1.1/dev-v1.1.json"
COVID = ROOT.parent / "shared/datasets/covid-qa/200423_covidQA.json"
FLOOR = 1.5


def covid_document(path: Path, chars: int = 20_000) -> Path:
    """A ~``chars`` document: COVID-QA context paragraphs, in order, joined by blank lines."""
    data = json.loads(COVID.read_text(encoding="utf-8"))["data"]
    paras: list[str] = []
    total = 0
    for article in data:
        for para in article["paragraphs"]:
            for line in para["context"].split("\n"):
                if line.strip() and total < chars:
                    paras.append(line.strip())
                    total += len(line.strip()) + 2
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return path


def ask_output(settings: Settings, questions: Path) -> str:
    """``chatbot ask QUESTIONS`` stdout, run in this process (the model stays loaded)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["ask", str(questions), "-q", "--index", str(settings.index_dir)])
    if code != 0:
        raise SystemExit(f"chatbot ask exited {code}")
    return out.getvalue()


EMBED_SECONDS = [0.0]  # time spent inside the model's encode (reset per timing)


def count_embedding_time(model: str) -> None:
    """Wrap the loaded model's encoders so each timing can be split into embedding/other."""
    embedder = get_embedder(model)
    for name in ("encode", "encode_with_tokens"):
        setattr(embedder, name, _timed_method(getattr(embedder, name)))


def _timed_method(method):  # noqa: ANN001, ANN202
    def timed_call(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        t0 = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            EMBED_SECONDS[0] += time.perf_counter() - t0

    return timed_call


def timed(fn, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201 - a tiny helper
    """(seconds, embedding seconds, result) of one call."""
    EMBED_SECONDS[0] = 0.0
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, EMBED_SECONDS[0], result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", help="work folder to keep (default: a temporary one)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--questions", type=int, default=50)
    args = ap.parse_args()
    missing = [p for p in (SQUAD, COVID) if not p.exists()]
    if missing:
        print(f"skipped: data set not found: {', '.join(map(str, missing))}")
        return 0

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-incr-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        squad = Settings.from_env(index=str(work / "squad-index"), corpus=str(work / "squad"))
        questions = write_articles(SQUAD, squad.corpus_dir)
        step = max(1, len(questions) // args.questions)
        qfile = work / "questions.txt"
        picked = [q.question.replace("\n", " ").strip() for q in questions[::step]]
        qfile.write_text("\n".join(picked[: args.questions]) + "\n", encoding="utf-8")
        doc = covid_document(work / "covid-20k.txt")

        t_load, _, _ = timed(lambda: get_embedder(squad.model).encode(["warm up"]))
        print(f"model: {squad.model} (loaded in {t_load:.1f} s, excluded from the timings)")
        count_embedding_time(squad.model)
        t_build, _, summary = timed(service.build, squad, replace_all=True)
        print(f"SQuAD dev index: {summary.line()} in {t_build:.0f} s")
        before = ask_output(squad, qfile)

        alone: list[tuple[float, float]] = []  # (total, embedding) seconds per run
        added: list[tuple[float, float]] = []
        removed: list[tuple[float, float]] = []
        for n in range(args.repeats):
            empty = Settings.from_env(index=str(work / f"empty-{n}"), corpus=str(work))
            shutil.rmtree(empty.index_dir, ignore_errors=True)
            t_a, e_a, s_a = timed(service.build, empty, [doc])
            t_b, e_b, s_b = timed(service.build, squad, [doc])
            t_r, e_r, _ = timed(service.remove, squad, [str(doc)])
            shutil.rmtree(empty.index_dir, ignore_errors=True)
            alone.append((t_a, e_a))
            added.append((t_b, e_b))
            removed.append((t_r, e_r))
            if n == 0:
                print(f"document: {doc.name}, {len(doc.read_text()):,} chars")
                print(f"  (a) {s_a.line()}")
                print(f"  (b) {s_b.line()}")
        after = ask_output(squad, qfile)

        med_a = statistics.median(t for t, _ in alone)
        med_b = statistics.median(t for t, _ in added)
        ratio = med_b / med_a
        print()
        print(f"{'timing (s)':<44}{'median':>8}{'embed':>8}{'other':>8}  runs (total)")
        rows = [
            ("(a) one document into an empty index", alone),
            ("(b) the same document added to SQuAD dev", added),
            ("    removing it again", removed),
        ]
        for name, values in rows:
            total = statistics.median(t for t, _ in values)
            embed = statistics.median(e for _, e in values)
            other = statistics.median(t - e for t, e in values)
            runs = " ".join(f"{t:.2f}" for t, _ in values)
            print(f"{name:<44}{total:>8.2f}{embed:>8.2f}{other:>8.2f}  {runs}")
        ok_ratio = ratio <= FLOOR
        verdict = "ok" if ok_ratio else "MISSED"
        print(f"{'ratio (b)/(a)':<44}{ratio:>8.2f}  floor <= {FLOOR}: {verdict}")
        same = before == after
        print(
            f"ask output over {len(picked[: args.questions])} SQuAD questions before add and "
            f"after add+remove: {'identical' if same else 'DIFFERENT'} "
            f"({len(before.splitlines())} lines)"
        )
        return 0 if ok_ratio and same else 1
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
