"""Peak memory of ``chatbot ask`` on a 2,000-line vs a 200,000-line question file, or of
indexing and asking with vs without one over-long word in the corpus.

    .venv/bin/python bench/memory.py [--real] [--small 2000] [--large 200000]
    .venv/bin/python bench/memory.py --long-word [--real] [--word-chars 200000] [--questions 500]

Default mode: generates both question files in a temporary folder, builds a small index
(default: the fake-64 test embedder over tests/data/docs; ``--real``: the bundled model over
corpus/), then runs ``chatbot ask FILE`` for each as a subprocess with its output sent to
/dev/null, under ``/usr/bin/time -v``, and prints the peak RSS of both and their ratio
(floor: at most 1.2).

``--long-word``: the same corpus twice, once with an extra file holding one line of
``--word-chars`` random letters and no space (a valid document: it indexes as passages of
``max_chars`` letters). For each, ``chatbot index build`` into a fresh index and then
``chatbot ask`` on a question file (with misspelt words, so the spelling index is built with
the bundled model; the fake embedder has no tokenizer vocabulary and skips spelling) run as
subprocesses under ``/usr/bin/time -v``; prints the peak RSS of indexing and of answering,
with and without the word, and the ratios (floor: at most 1.2 for both). A control row adds
as many characters of ordinary text instead (sentences of common words): what the same
amount of text costs anyway, for comparison (no floor).

Needs GNU time (``apt-get install time``).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.config import BUNDLED_MODEL, Settings  # noqa: E402

TIME = "/usr/bin/time"
CEILING = 1.2
_WORD_TEXT = (
    "calcium bone tea green brew water leaves vitamin dose adults children exercise walking "
    "skeleton mineral dairy oxidation temperature minutes bitter steamed picked daily need "
    "source food strength density risk study patients heart blood"
)
WORDS = _WORD_TEXT.split()


def write_questions(path: Path, n: int, seed: int = 0) -> None:
    """``n`` varied questions, one per line, written in a stream."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12)))
            fh.write(f"What about {words}, question {i}?\n")


def peak_rss_kb(argv: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run ``argv`` under GNU time; return (maximum resident set size in KiB, seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [TIME, "-v", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True
    )
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    if not m:
        raise SystemExit(f"no peak RSS in the output of {TIME} -v")
    return int(m.group(1)), elapsed


MISSPELT = [
    "What does vitamn K2 do for bones?",
    "How much calcim do adults need?",
    "Is osteoporsis common in japn?",
]


def write_long_word(path: Path, chars: int, seed: int = 0) -> None:
    """One line of ``chars`` random lowercase letters: one "word" with no space."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    path.write_text("".join(rng.choice(letters) for _ in range(chars)) + "\n", encoding="utf-8")


def write_ordinary_text(path: Path, chars: int, seed: int = 0) -> None:
    """About ``chars`` characters of sentences of common words, one per line."""
    rng = random.Random(seed)
    lines: list[str] = []
    total = 0
    while total < chars:
        words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        lines.append(words.capitalize() + ".")
        total += len(lines[-1]) + 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def long_word(args: argparse.Namespace) -> int:
    """``--long-word``: peak RSS of indexing and answering, without and with the long word
    (and, as a control, with as much ordinary text)."""
    source = ROOT / "corpus" if args.real else ROOT / "tests" / "data" / "docs"
    model = BUNDLED_MODEL if args.real else "fake-64"
    rows: list[tuple[str, str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        questions = work / "questions.txt"
        write_questions(questions, args.questions)
        with open(questions, "a", encoding="utf-8") as fh:
            fh.writelines(q + "\n" for q in MISSPELT)
        for label in ("without", "with", "control"):
            docs = work / f"docs-{label}"
            shutil.copytree(source, docs)
            if label == "with":
                write_long_word(docs / "long_word.txt", args.word_chars)
            elif label == "control":
                write_ordinary_text(docs / "ordinary.txt", args.word_chars)
            env = dict(os.environ, CHATBOT_INDEX=str(work / f"index-{label}"), CHATBOT_MODEL=model)
            cli = [sys.executable, "-m", "chatbot"]
            kb, seconds = peak_rss_kb([*cli, "index", "build", "--quiet", str(docs)], env)
            rows.append((label, "index build", kb, seconds))
            kb, seconds = peak_rss_kb([*cli, "ask", "--quiet", str(questions)], env)
            rows.append((label, "ask", kb, seconds))
    print(
        f"model {model}, corpus {source.relative_to(ROOT)}, long word {args.word_chars:,} letters, "
        f"{args.questions + len(MISSPELT)} questions"
    )
    names = {
        "without": "corpus",
        "with": "+ long word",
        "control": f"+ {args.word_chars:,} chars of ordinary text",
    }
    print(f"{'corpus':<36}{'step':<13}{'peak RSS MiB':>14}{'seconds':>10}")
    for label, step, kb, seconds in rows:
        print(f"{names[label]:<36}{step:<13}{kb / 1024:>14.1f}{seconds:>10.1f}")
    ok = True
    for step in ("index build", "ask"):
        without, with_, control = (kb for _, s, kb, _ in rows if s == step)
        ratio = with_ / without
        ok &= ratio <= CEILING
        verdict = "ok" if ratio <= CEILING else "ABOVE CEILING"
        print(
            f"ratio long word/without, {step}: {ratio:.3f}  (ceiling {CEILING}: {verdict}); "
            f"control/without: {control / without:.3f}"
        )
    return 0 if ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="bundled model over corpus/")
    ap.add_argument("--small", type=int, default=2_000)
    ap.add_argument("--large", type=int, default=200_000)
    ap.add_argument(
        "--long-word", action="store_true", help="index and ask with vs without a long word"
    )
    ap.add_argument("--word-chars", type=int, default=200_000, help="length of the long word")
    ap.add_argument("--questions", type=int, default=500, help="questions asked (--long-word)")
    args = ap.parse_args()
    if not Path(TIME).exists():
        print(f"skipped: {TIME} not found; apt-get install time")
        return 0
    if args.long_word:
        return long_word(args)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        work = Path(tmp)
        if args.real:
            settings = Settings(index=str(work / "index"), corpus=str(ROOT / "corpus"))
        else:
            shutil.copytree(ROOT / "tests" / "data" / "docs", work / "docs")
            settings = Settings(
                index=str(work / "index"), corpus=str(work / "docs"), model="fake-64"
            )
        summary = service.build(settings, replace_all=True)
        print(f"index: {summary.total_passages} passages, model {settings.model}")
        env = dict(os.environ, CHATBOT_INDEX=str(settings.index_dir), CHATBOT_MODEL=settings.model)
        rows = []
        for n in (args.small, args.large):
            path = work / f"questions-{n}.txt"
            write_questions(path, n)
            argv = [sys.executable, "-m", "chatbot", "ask", "--quiet", str(path)]
            kb, seconds = peak_rss_kb(argv, env)
            rows.append((n, kb, seconds))
    print(f"{'questions':>10}{'peak RSS MiB':>14}{'seconds':>10}{'q/s':>10}")
    for n, kb, seconds in rows:
        print(f"{n:>10}{kb / 1024:>14.1f}{seconds:>10.1f}{n / seconds:>10.0f}")
    ratio = rows[1][1] / rows[0][1]
    verdict = "ok" if ratio <= CEILING else "ABOVE CEILING"
    print(f"ratio large/small: {ratio:.3f}  (ceiling {CEILING}: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
