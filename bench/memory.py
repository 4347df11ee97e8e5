"""Peak memory of ``chatbot ask`` on a 2,000-line vs a 200,000-line question file.

    .venv/bin/python bench/memory.py [--real] [--small 2000] [--large 200000]

Generates both question files in a temporary folder, builds a small index (default: the
fake-64 test embedder over tests/data/docs; ``--real``: the bundled model over corpus/), then
runs ``chatbot ask FILE`` for each as a subprocess with its output sent to /dev/null, under
``/usr/bin/time -v``, and prints the peak RSS of both and their ratio (floor: at most 1.2).
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
from chatbot.config import Settings  # noqa: E402

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="bundled model over corpus/")
    ap.add_argument("--small", type=int, default=2_000)
    ap.add_argument("--large", type=int, default=200_000)
    args = ap.parse_args()
    if not Path(TIME).exists():
        print(f"skipped: {TIME} not found; apt-get install time")
        return 0
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
