"""Warm, in-process latency of answering one question on the default corpus vs embedding it alone.

    .venv/bin/python bench/latency.py [--repeat 200]

The index of corpus/ is built into a temporary folder, the model is loaded and warmed up, then
each dev question is (a) embedded alone (``Embedder.encode``, the project's own batching), (b)
answered (embedding + retrieval + ranking) and (c) embedded by sentence-transformers' own
``encode``, in turn, many times. Prints the median per question and the ratio of (b) to (a)
(floor: <= 1.5), and of (b) to (c) for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import get_embedder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="passes over the dev questions")
    args = ap.parse_args()
    lines = (ROOT / "bench" / "k2_questions.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env(index=str(Path(tmp) / "index"))
        service.build(settings, replace_all=True)
        retriever = service.open_retriever(settings)
        embed = retriever.embedder
        # the reference: sentence-transformers itself (the answering embedder may be OpenVINO's
        # light model, which has no ``encode`` of its own)
        st = get_embedder(settings.model, "torch").model
        for q in questions[:10]:  # warm-up
            retriever.ask(q)
        t_embed: list[float] = []
        t_ask: list[float] = []
        t_st: list[float] = []
        for _ in range(args.repeat):
            for q in questions:
                t0 = time.perf_counter()
                embed.encode([q])
                t1 = time.perf_counter()
                retriever.ask(q, k=settings.k)
                t2 = time.perf_counter()
                st.encode([q], normalize_embeddings=True, convert_to_numpy=True)
                t3 = time.perf_counter()
                t_embed.append(t1 - t0)
                t_ask.append(t2 - t1)
                t_st.append(t3 - t2)
    me, ma = statistics.median(t_embed) * 1e3, statistics.median(t_ask) * 1e3
    ms = statistics.median(t_st) * 1e3
    print(f"{len(t_ask)} questions, {len(retriever.index.passages)} passages (median per question)")
    print(f"{'embed question only':<24}{me:>8.2f} ms")
    print(f"{'answer question':<24}{ma:>8.2f} ms")
    print(f"{'ST encode only':<24}{ms:>8.2f} ms")
    print(f"{'ratio':<24}{ma / me:>8.2f}x  (floor <= 1.5)")
    print(f"{'ratio to ST encode':<24}{ma / ms:>8.2f}x")


if __name__ == "__main__":
    main()
