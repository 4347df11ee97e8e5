"""Throughput locally vs through a local Ray cluster (bench/README.md, "Scaling out").

    python bench/ray.py [--passages 512] [--questions 512] [--batch 128]

Measures, with the bundled model (OpenVINO):
- passages/s: ``encode_late`` of passage texts (what a build spends its time on), in this
  process with one model thread and with the default threads, then through a
  :class:`~chatbot.distributed.LocalCluster` on 127.0.0.1 with one and with two worker
  processes (one single-threaded actor per one-CPU node);
- questions/s: ``ask_many`` on an index of the vitamin K2 article, the same way;
- the per-batch overhead: the round trip of an empty actor call.
Prints one JSON line per figure and a table. The machine is shared: figures vary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# This file is named ray.py: keep its folder off the path so `import ray` finds Ray.
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chatbot.config import BUNDLED_MODEL, PROJECT_ROOT, Settings  # noqa: E402

K2 = PROJECT_ROOT / "corpus" / "vitamin_k2.txt"
QUESTIONS = PROJECT_ROOT / "bench" / "k2_questions.jsonl"


def passage_texts(n: int) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """``n`` passage texts (the K2 article's passages, numbered so none repeats) and their
    sentence spans."""
    from chatbot.documents import load_document
    from chatbot.splitter import split_document

    parts = split_document(load_document(K2, "k2"))
    texts, spans = [], []
    for i in range(n):
        p = parts[i % len(parts)]
        prefix = f"{i}. "
        texts.append(prefix + p.text)
        spans.append([(s + len(prefix), e + len(prefix)) for s, e in p.sentences])
    return texts, spans


def questions(n: int) -> list[str]:
    rows = [json.loads(x)["question"] for x in QUESTIONS.read_text().splitlines() if x.strip()]
    return [rows[i % len(rows)] + ("" if i < len(rows) else f" ({i})") for i in range(n)]


def rate(fn, count: int) -> float:  # noqa: ANN001
    t = time.perf_counter()
    fn()
    return count / (time.perf_counter() - t)


def local_figures(texts, spans, qs, index: str, batch: int) -> dict[str, float]:  # noqa: ANN001
    from chatbot.embedder import SentenceTransformerEmbedder
    from chatbot.retrieval import Retriever
    from chatbot.store import load

    out = {}
    for threads in ("1", "0"):
        os.environ["CHATBOT_THREADS"] = threads
        e = SentenceTransformerEmbedder(BUNDLED_MODEL, "openvino")
        e.encode_late(texts[:32], spans[:32])  # warm up
        out[f"local_t{threads}_passages"] = rate(
            lambda e=e: e.encode_late(texts, spans), len(texts)
        )
        r = Retriever(load(Path(index)), e)
        r.ask_many(qs[:32])
        out[f"local_t{threads}_questions"] = rate(
            lambda r=r: [r.ask_many(qs[i : i + batch]) for i in range(0, len(qs), batch)],
            len(qs),
        )
    os.environ.pop("CHATBOT_THREADS", None)
    return out


def cluster_figures(texts, spans, qs, settings: Settings, workers: int) -> dict[str, float]:  # noqa: ANN001
    from chatbot import distributed as d

    env = {"PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1"}
    out = {}
    with d.LocalCluster(workers=workers - 1, cpus=1, head_cpus=1, env=env) as cluster:
        s = replace(settings, ray_address=cluster.address)
        ray = d.connect(cluster.address)
        try:
            pool = d.ActorPool(ray, s)
            e = d.RayEmbedder(pool, s.ray_batch)
            while len(pool.live) < pool.size:  # every actor up before timing
                pool._poll(list(pool._starting), time.monotonic() + 120)
            e.encode_late(texts[: 2 * s.ray_batch], spans[: 2 * s.ray_batch])
            out[f"ray_w{workers}_passages"] = rate(lambda: e.encode_late(texts, spans), len(texts))
            n = 200
            t = time.perf_counter()
            list(pool.map("embed", [("encode", ([], 64))] * n))
            out[f"ray_w{workers}_batch_overhead_ms"] = (time.perf_counter() - t) / n * 1000
            pool.close()
            a = d.RayAnswerer(s)
            while len(a.pool.live) < a.pool.size:
                a.pool._poll(list(a.pool._starting), time.monotonic() + 120)
            a.ask_many(qs[: 2 * s.ray_batch])
            out[f"ray_w{workers}_questions"] = rate(lambda: a.ask_many(qs), len(qs))
            a.close()
        finally:
            ray.shutdown()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=512)
    ap.add_argument("--questions", type=int, default=512)
    ap.add_argument("--batch", type=int, default=128, help="texts per actor call (ray_batch)")
    args = ap.parse_args()
    from chatbot import service

    texts, spans = passage_texts(args.passages)
    qs = questions(args.questions)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        settings = Settings(index=str(tmp / "index"), ray_batch=args.batch)
        service.build(settings, [K2], replace_all=True)
        figures = local_figures(texts, spans, qs, settings.index, args.batch)
        for workers in (1, 2):
            figures.update(cluster_figures(texts, spans, qs, settings, workers))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for k, v in figures.items():
        print(json.dumps({"figure": k, "value": round(v, 2)}))
    f = figures
    print(f"\n{'':28}{'passages/s':>12}{'questions/s':>13}")
    for name, key in [
        ("local, 1 thread", "local_t1"),
        ("local, default threads", "local_t0"),
        ("Ray, 1 worker", "ray_w1"),
        ("Ray, 2 workers", "ray_w2"),
    ]:
        print(f"{name:28}{f[key + '_passages']:12.1f}{f[key + '_questions']:13.1f}")
    one = (
        f["ray_w1_passages"] / f["local_t1_passages"],
        f["ray_w1_questions"] / f["local_t1_questions"],
    )
    two = f["ray_w2_passages"] / f["ray_w1_passages"], f["ray_w2_questions"] / f["ray_w1_questions"]
    print(f"\nRay 1 worker / local 1 thread: passages {one[0]:.2f}x, questions {one[1]:.2f}x")
    print(f"Ray 2 workers / Ray 1 worker: passages {two[0]:.2f}x, questions {two[1]:.2f}x")
    print(f"per-batch overhead: {f['ray_w1_batch_overhead_ms']:.1f} ms (1 worker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
