"""Scale: build time, disk, start-up, memory, latency, ANN recall and add time vs corpus size.

    .venv/bin/python bench/scale.py [--sizes 1000 10000 100000 1000000] [--work DIR] [--keep]
                                    [--questions 300] [--tokens-per-passage 75] [--runs 3]
                                    [--adds 3] [--results FILE] [--plot bench/scale.png]
                                    [--profile]

A synthetic corpus per size (nothing is embedded by the model): documents of ~20 KB whose
passages (~500 characters, 3 sentences, one sentence shared with the next passage, as the
default splitter does) are made of words drawn Zipf-like from a vocabulary of the real
stopwords (the most frequent ranks) plus 50,000 made-up words. Passage vectors come from a
mixture of topic clusters (topic centre -> document -> passage, each step plus Gaussian
noise, normalised), sentence vectors are near their passage's, and each passage gets ~75
content-token vectors near its own vector, encoded with the index's token codec
(``tokens.codec_of``). Segments of at most 10^5 passages are committed one after another
with ``store.commit`` (10^6 is ten commits; the tenth triggers the merge policy, so the
index ends as one segment). "build s" is the library's part (BM25 terms, ``from_build``,
codec, ``store.load`` of the base, ``store.commit`` with FAISS and merges), not the
generation of the synthetic data.

Per size, measured in this run:

- disk: the live segments and manifest (``st_blocks``), and bytes per passage;
- start-up: a fresh ``python`` that does what ``chatbot ask`` does: imports chatbot.service,
  opens the retriever (index + bundled model: with a converted model cached, OpenVINO and
  ``tokenizers`` only, see README) and answers one question with ``ask``, from spawn to
  answer (median of ``--runs``), next to a process that only imports chatbot.service and
  sentence-transformers (the stack a model loaded the full way needs: the reference, same
  run); peak RSS of that process (``VmHWM``) after answering;
- question latency: ``spell`` + ``Retriever.answer_with_vector`` for ``--questions``
  synthetic questions (a random passage's vector plus noise, 3-5 of its words as the
  query, synthetic query token vectors), after 20 warm-up questions: the question's
  embedding is excluded. p50 and p95;
- recall@10 of ``Index.search`` (FAISS per segment: IVF from ``segment.ANN_MIN_PASSAGES``)
  against exact search by numpy over the stored float16 vectors, same questions;
- add: ``service.build(settings, [doc])`` of a ~20 KB text file into the big index vs the
  same file into an empty index, with the bundled model loaded (median of ``--adds``,
  interleaved); the ratio's floor is <= 1.5.

With ``--results FILE`` the rows are also appended to FILE (JSON lines) and the table and
plot are made from every size found there (the latest row of each), so sizes measured in
separate runs (e.g. 10^6 with fewer token vectors per passage, see bench/README.md) share
one table. Floors at 10^6: start-up <= 10 s, peak RSS <= 3 GB, p50 <= 30 ms, p95 <= 80 ms,
disk <= 8 GB, add ratio <= 1.5.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatbot import service, store  # noqa: E402
from chatbot.build import new_settings, passage_terms  # noqa: E402
from chatbot.config import Settings  # noqa: E402
from chatbot.embedder import LazyEmbedder, TokenVectors, get_embedder  # noqa: E402
from chatbot.lexical import STOPWORDS  # noqa: E402
from chatbot.segment import from_build  # noqa: E402
from chatbot.tokens import TokenCodec, new_codec  # noqa: E402
from chatbot.types import Document, Passage  # noqa: E402

DIM = 384
SEGMENT = 100_000  # passages per commit
DOC_CHARS = 20_000
WORDS = 50_000
TOPICS = 4096
TOKEN_CHUNK = 2_000  # passages whose token vectors are made and encoded at once

# ---------------------------------------------------------------------------- synthetic data


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    return x


class Synth:
    """The synthetic corpus: vocabulary, topic centres, and generators of documents."""

    def __init__(self, seed: int = 0, tokens_per_passage: int = 75) -> None:
        self.rng = np.random.default_rng(seed)
        self.tpp = tokens_per_passage
        rng = np.random.default_rng(12345)  # the vocabulary and topics are the same for all
        syll = [c + v for c in "bcdfghjklmnprstvz" for v in "aeiou"] + ["th", "qu", "st", "ng"]
        stop = sorted(w for w in STOPWORDS if len(w) > 1)
        made: set[str] = set()
        while len(made) < WORDS:
            n = rng.integers(2, 5, 2 * WORDS)
            picks = rng.integers(0, len(syll), (2 * WORDS, 4))
            for k, row in zip(n, picks, strict=True):
                w = "".join(syll[j] for j in row[:k])
                if w not in STOPWORDS:
                    made.add(w)
        self.vocab = np.array(stop + sorted(made)[:WORDS], dtype=object)
        self.nstop = len(stop)
        ranks = np.arange(1, len(self.vocab) + 1)
        p = 1.0 / (ranks + 2.7)
        self.cdf = np.cumsum(p / p.sum())
        self.centres = unit(rng.standard_normal((TOPICS, DIM)).astype(np.float32))
        self.bank = unit(rng.standard_normal((1 << 16, DIM)).astype(np.float32))

    def noise(self, n: int, scale: float) -> np.ndarray:
        return self.rng.standard_normal((n, DIM), np.float32) * np.float32(scale / np.sqrt(DIM))

    def words(self, n: int) -> np.ndarray:
        return np.searchsorted(self.cdf, self.rng.random(n))

    def sentences(self, n: int) -> list[str]:
        lengths = self.rng.integers(20, 30, n)
        words = self.vocab[np.minimum(self.words(int(lengths.sum())), len(self.vocab) - 1)]
        words = words.tolist()
        out, at = [], 0
        for k in lengths.tolist():
            s = " ".join(words[at : at + k])
            out.append(s[0].upper() + s[1:] + ".")
            at += k
        return out

    def segment(self, first_doc: int, n_passages: int) -> dict:
        """Documents holding ``n_passages`` passages, with their vectors and token vectors."""
        per_doc = DOC_CHARS // 330  # a passage advances two sentences of ~165 characters
        counts = [per_doc] * (n_passages // per_doc)
        if n_passages % per_doc:
            counts.append(n_passages % per_doc)
        docs, passages, records = [], [], []
        sentence_rows: list[np.ndarray] = []
        doc_of = np.repeat(np.arange(len(counts)), counts)
        u_at = 0
        for j, npass in enumerate(counts):
            sents = self.sentences(2 * npass + 1)
            lens = np.array([len(s) for s in sents])
            starts = np.concatenate([[0], np.cumsum(lens + 1)[:-1]])
            ends = starts + lens
            text = " ".join(sents)
            source = f"synthetic/doc-{first_doc + j:07d}.txt"
            title = f"Document {first_doc + j}"
            doc = Document(source=source, text=text, title=title)
            docs.append(doc)
            for i in range(npass):
                a, b = 2 * i, 2 * i + 3
                s0, s1 = int(starts[a]), int(ends[b - 1])
                passages.append(
                    Passage(
                        text=text[s0:s1],
                        source=source,
                        start=s0,
                        end=s1,
                        sentences=[
                            (int(x) - s0, int(y) - s0)
                            for x, y in zip(starts[a:b], ends[a:b], strict=True)
                        ],
                    )
                )
                sentence_rows.append(np.arange(u_at + a, u_at + b))
            u_at += len(sents)
            data = text.encode("utf-8")
            records.append(
                {
                    "source": source,
                    "path": f"/nonexistent/{source}",
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "passages": npass,
                    "chars": len(text),
                    "bytes": len(data),
                    "indexed_at": store.now(),
                }
            )
        topic = self.rng.integers(0, TOPICS, len(counts))
        doc_vecs = unit(self.centres[topic] + self.noise(len(counts), 0.8))
        vectors = unit(doc_vecs[doc_of] + self.noise(n_passages, 0.6))
        # each distinct sentence near the first passage holding it
        sent_doc = np.repeat(np.arange(len(counts)), [2 * c + 1 for c in counts])
        local = np.concatenate([np.arange(2 * c + 1) for c in counts])
        base = np.concatenate([[0], np.cumsum(counts)[:-1]])
        owner = base[sent_doc] + np.minimum(local // 2, np.asarray(counts)[sent_doc] - 1)
        sent_vecs = unit(vectors[owner] + self.noise(len(owner), 0.7))
        token_counts = np.clip(self.rng.poisson(self.tpp, n_passages), 1, None)
        if self.tpp == 0:
            token_counts[:] = 0
        return {
            "documents": docs,
            "records": records,
            "passages": passages,
            "vectors": vectors,
            "sentence_vectors": sent_vecs,
            "sentence_rows": np.concatenate(sentence_rows),
            "token_counts": token_counts.astype(np.int64),
        }

    def token_vectors(self, vectors: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Unit vectors near each passage's vector, ``counts[i]`` of them for passage ``i``."""
        owner = np.repeat(np.arange(len(vectors)), counts)
        out = self.bank[self.rng.integers(0, len(self.bank), len(owner))]
        out *= np.float32(1.5)
        out += vectors[owner]
        return unit(out)

    def question(self, index, i: int) -> tuple[str, np.ndarray, TokenVectors]:  # noqa: ANN001
        """A question about passage ``i``: noisy copy of its vector, a few of its words."""
        p = index.passage(i)
        words = [w.strip(".").lower() for w in p.text.split()]
        content = [w for w in words if w not in STOPWORDS]
        k = int(self.rng.integers(3, 6))
        picked = [
            content[j] for j in self.rng.choice(len(content), min(k, len(content)), replace=False)
        ]
        qvec = unit(np.asarray(index.vectors[i], np.float32)[None] + self.noise(1, 0.6))[0]
        pieces = self.rng.integers(1, 4, len(picked))
        tv = unit(
            qvec[None] + 1.5 * self.bank[self.rng.integers(0, len(self.bank), int(pieces.sum()))]
        )
        tokens = TokenVectors(
            tv.astype(np.float32),
            np.repeat(np.arange(len(picked)), pieces).astype(np.int32),
            tuple(picked),
        )
        return " ".join(picked), qvec, tokens


# ---------------------------------------------------------------------------- building


def build_index(
    synth: Synth, index_dir: Path, size: int, settings: dict, codec: TokenCodec, profile: bool
) -> dict:
    """Write ``size`` synthetic passages as segments of at most SEGMENT; phase timings."""
    phases = dict.fromkeys(("generate", "terms", "encode", "from_build", "load", "commit"), 0.0)
    docs_done = 0
    done = 0
    first = True
    prof = cProfile.Profile() if profile else None
    while done < size:
        n = min(SEGMENT, size - done)
        t = time.perf_counter()
        part = synth.segment(docs_done, n)
        phases["generate"] += time.perf_counter() - t
        # token vectors are made and encoded in chunks: 10^5 passages' float32 vectors
        # would take 11 GB; only the encoding is timed
        tokens, encode_s = None, 0.0
        counts = part["token_counts"]
        at = 0
        starts = np.concatenate([[0], np.cumsum(counts)])
        for lo in range(0, n, TOKEN_CHUNK):
            hi = min(lo + TOKEN_CHUNK, n)
            t = time.perf_counter()
            raw = synth.token_vectors(part["vectors"][lo:hi], counts[lo:hi])
            t1 = time.perf_counter()
            codes = codec.encode(raw)
            encode_s += time.perf_counter() - t1
            phases["generate"] += t1 - t
            if tokens is None:
                tokens = np.empty((int(starts[-1]), *codes.shape[1:]), codes.dtype)
            tokens[at : at + len(codes)] = codes
            at += len(codes)
            del raw, codes
        if prof and first:
            prof.enable()
        t = time.perf_counter()
        terms = passage_terms(part["passages"], {d.source: d for d in part["documents"]})
        t1 = time.perf_counter()
        t2 = t1 + encode_s
        arrays = from_build(
            part["documents"],
            part["records"],
            part["passages"],
            terms,
            part["vectors"],
            part["sentence_vectors"],
            part["sentence_rows"],
            tokens,
            part["token_counts"],
        )
        t3 = time.perf_counter()
        del terms, tokens, part
        gc.collect()
        with store.write_lock(index_dir, 600):
            t4 = time.perf_counter()
            base = None if first else store.load(index_dir)
            t5 = time.perf_counter()
            change = store.Change(manifest=settings, new=arrays, fresh=first, codec=codec)
            store.commit(index_dir, change, base)
            t6 = time.perf_counter()
        if prof and first:
            prof.disable()
        phases["terms"] += t1 - t
        phases["encode"] += encode_s
        phases["from_build"] += t3 - t1
        phases["load"] += t5 - t4
        phases["commit"] += t6 - t5
        docs_done += len(arrays.docs)
        done += n
        first = False
        del arrays, base
        gc.collect()
        log(
            f"  committed {done:,}/{size:,} passages: terms {t1 - t:.1f}s encode {t2 - t1:.1f}s "
            f"from_build {t3 - t1:.1f}s load {t5 - t4:.1f}s commit {t6 - t5:.1f}s "
            f"(peak RSS {peak_rss_mb():,.0f} MiB)"
        )
    if prof:
        stats = pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(25)
    return phases


def disk_bytes(index_dir: Path) -> int:
    """The live segments and the manifest, in blocks on disk (retired segments, kept for
    one commit for readers of the previous manifest, are not counted)."""
    manifest = store.read_manifest(index_dir)
    files = [index_dir / store.MANIFEST]
    for e in manifest["segments"]:
        files.extend(f for f in (index_dir / e["name"]).rglob("*") if f.is_file())
    return sum(f.stat().st_blocks * 512 for f in files)


def token_bytes(index_dir: Path) -> int:
    manifest = store.read_manifest(index_dir)
    return sum(
        (index_dir / e["name"] / "tokens.npy").stat().st_blocks * 512 for e in manifest["segments"]
    )


# ---------------------------------------------------------------------------- measuring

PROBE = r"""
import json, sys, time
from chatbot import service
from chatbot.config import Settings
if sys.argv[1] == "--import-only":
    import sentence_transformers
    print(json.dumps({"imported": time.time()}))
    sys.exit(0)
imported = time.time()
settings = Settings.from_env(index=sys.argv[1])
retriever = service.open_retriever(settings)
opened = time.time()
answer = retriever.ask(sys.argv[2], k=settings.k)
answered = time.time()
hwm = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM'))
print(json.dumps({"imported": imported, "opened": opened, "answered": answered,
                  "hwm_mib": hwm / 1024, "hits": len(answer.hits)}))
"""


def probe(args: list[str]) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    spawn = time.time()
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {k: (v - spawn if k in ("imported", "opened", "answered") else v) for k, v in r.items()}


def startup(index_dir: Path, question: str, runs: int) -> dict:
    """Median over ``runs`` of spawn-to-answer and of spawn-to-imports-done (interleaved)."""
    full, ref = [], []
    for _ in range(runs):
        ref.append(probe(["--import-only"]))
        full.append(probe([str(index_dir), question]))
    med = {k: statistics.median(r[k] for r in full) for k in full[0]}
    med["import_only"] = statistics.median(r["imported"] for r in ref)
    return med


def exact_top(index, queries: np.ndarray, k: int, chunk: int = 200_000) -> np.ndarray:  # noqa: ANN001
    """Top ``k`` passage numbers per query by brute force over the stored float16 vectors."""
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for lo in range(0, index.size, chunk):
        ids = np.arange(lo, min(lo + chunk, index.size))
        scores = queries @ index.vectors[ids].T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(ids, scores.shape)], axis=1)
        top = np.argpartition(-s, min(k, s.shape[1] - 1), axis=1)[:, :k]
        best_s = np.take_along_axis(s, top, axis=1)
        best_i = np.take_along_axis(i, top, axis=1)
    return best_i


def measure_queries(index_dir: Path, synth: Synth, n: int) -> dict:
    settings = Settings.from_env(index=str(index_dir))
    retriever = service.open_retriever(settings)
    index = retriever.index
    picks = synth.rng.integers(0, index.size, n + 20)
    questions = [synth.question(index, int(i)) for i in picks]
    for query, qvec, tv in questions[:20]:  # warm-up (builds the speller too)
        retriever.answer_with_vector(
            query, retriever.spell(query), qvec, settings.k, token_vectors=tv
        )
    times = []
    answered = 0
    for query, qvec, tv in questions[20:]:
        t = time.perf_counter()
        q = retriever.spell(query)
        a = retriever.answer_with_vector(query, q, qvec, settings.k, token_vectors=tv)
        times.append(time.perf_counter() - t)
        answered += a.answered
    qvecs = np.stack([q for _, q, _ in questions[20:]]).astype(np.float32)
    _, ann = index.search(qvecs, 10)
    exact = exact_top(index, qvecs, 10)
    recall = float(
        np.mean(
            [len(set(a) & set(e)) / 10 for a, e in zip(ann.tolist(), exact.tolist(), strict=True)]
        )
    )
    return {
        "p50_ms": float(np.percentile(times, 50) * 1e3),
        "p95_ms": float(np.percentile(times, 95) * 1e3),
        "recall10": recall,
        "answered": answered / len(times),
        "question": questions[20][0],
    }


def add_doc_text(synth: Synth) -> str:
    sents = synth.sentences(DOC_CHARS // 165)
    paras = [" ".join(sents[i : i + 6]) for i in range(0, len(sents), 6)]
    return "\n\n".join(paras) + "\n"


def measure_add(index_dir: Path, work: Path, synth: Synth, repeats: int) -> dict:
    """``service.build`` of one ~20 KB document into the big index vs into an empty one."""
    folder = work / "add-docs"
    folder.mkdir(parents=True, exist_ok=True)
    docs = []
    for r in range(repeats + 1):
        path = folder / f"added-{r}.txt"
        path.write_text(add_doc_text(synth), encoding="utf-8")
        docs.append(path)
    get_embedder(Settings().model)  # loaded once, as a running server has it
    warm = Settings.from_env(index=str(work / "add-warm"))
    service.build(warm, [docs[-1]])  # warm-up: first forward passes, splitter imports
    big = Settings.from_env(index=str(index_dir))
    t_big, t_alone = [], []
    for r in range(repeats):
        alone = Settings.from_env(index=str(work / f"add-empty-{r}"))
        for which in (0, 1) if r % 2 == 0 else (1, 0):
            t = time.perf_counter()
            summary = service.build(big if which == 0 else alone, [docs[r]])
            (t_big if which == 0 else t_alone).append(time.perf_counter() - t)
            assert summary.added, summary.line()
        shutil.rmtree(work / f"add-empty-{r}", ignore_errors=True)
    shutil.rmtree(work / "add-warm", ignore_errors=True)
    big_s, alone_s = statistics.median(t_big), statistics.median(t_alone)
    return {"add_s": big_s, "add_alone_s": alone_s, "add_ratio": big_s / alone_s}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- output

COLUMNS = [
    ("passages", "passages", "{:,}"),
    ("tok/p", "tokens_per_passage", "{}"),
    ("build s", "build_s", "{:.1f}"),
    ("disk MB", "disk_mb", "{:,.0f}"),
    ("B/passage", "bytes_per_passage", "{:,.0f}"),
    ("start→answer s", "startup_s", "{:.2f}"),
    ("import-only s", "import_s", "{:.2f}"),
    ("ratio", "startup_ratio", "{:.2f}"),
    ("peak RSS MB", "rss_mb", "{:,.0f}"),
    ("p50 ms", "p50_ms", "{:.1f}"),
    ("p95 ms", "p95_ms", "{:.1f}"),
    ("recall@10", "recall10", "{:.3f}"),
    ("add s", "add_s", "{:.2f}"),
    ("add alone s", "add_alone_s", "{:.2f}"),
    ("add ratio", "add_ratio", "{:.2f}"),
]


def table(rows: list[dict]) -> str:
    head = "| " + " | ".join(c for c, _, _ in COLUMNS) + " |"
    sep = "| " + " | ".join("---" for _ in COLUMNS) + " |"
    body = [
        "| " + " | ".join(fmt.format(r[k]) if k in r else "-" for _, k, fmt in COLUMNS) + " |"
        for r in rows
    ]
    return "\n".join([head, sep, *body])


FLOORS = [  # at 10^6
    ("start-up to first answer <= 10 s", "startup_s", 10.0),
    ("peak RSS <= 3 GB", "rss_mb", 3 * 1024),
    ("p50 <= 30 ms", "p50_ms", 30.0),
    ("p95 <= 80 ms", "p95_ms", 80.0),
    ("disk <= 8 GB", "disk_mb", 8 * 1000),
    ("add ratio <= 1.5", "add_ratio", 1.5),
]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["passages"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    series = [
        (axes[0], "question latency (ms)", [("p50", "p50_ms"), ("p95", "p95_ms")]),
        (axes[1], "memory (MiB)", [("peak RSS answering", "rss_mb")]),
        (
            axes[2],
            "seconds",
            [
                ("add 20 KB doc", "add_s"),
                ("add alone (empty index)", "add_alone_s"),
                ("start-up to answer", "startup_s"),
                ("import only", "import_s"),
            ],
        ),
    ]
    for ax, ylabel, lines in series:
        for label, key in lines:
            pts = [(xx, r[key]) for xx, r in zip(x, rows, strict=True) if key in r]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("passages")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle("bench/scale.py: synthetic corpus, 2-core machine")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ---------------------------------------------------------------------------- main


def run_size(size: int, args: argparse.Namespace, synth: Synth) -> dict:
    index_dir = args.work / f"index-{size}"
    if args.reuse and (index_dir / store.MANIFEST).exists():
        log(f"reusing {index_dir} (built by an earlier run)")
        return measure(index_dir, {"passages": size}, args, synth)
    shutil.rmtree(index_dir, ignore_errors=True)
    # the index's token codec is the one a real build makes: trained on the calibration text
    # with the bundled model (once per process)
    embedder = LazyEmbedder(Settings().model, DIM)
    settings = new_settings(embedder, Settings().splitter_settings())
    codec = new_codec(embedder)
    log(f"building {size:,} passages into {index_dir}")
    t = time.perf_counter()
    phases = build_index(synth, index_dir, size, settings, codec, args.profile)
    wall = time.perf_counter() - t
    build_s = wall - phases["generate"]
    log(
        f"  built in {build_s:.1f}s (+{phases['generate']:.1f}s generating): "
        + ", ".join(f"{k} {v:.1f}s" for k, v in phases.items() if k != "generate")
    )
    disk = disk_bytes(index_dir)
    row = {
        "passages": size,
        "tokens_per_passage": args.tokens_per_passage,
        "build_s": build_s,
        "phases": phases,
        "disk_mb": disk / 1e6,
        "tokens_mb": token_bytes(index_dir) / 1e6,
        "bytes_per_passage": disk / size,
    }
    return measure(index_dir, row, args, synth)


def measure(index_dir: Path, row: dict, args: argparse.Namespace, synth: Synth) -> dict:
    """Latency and recall, start-up and add time (those named by ``--measure``)."""
    timed = "queries" in args.measure
    q = measure_queries(index_dir, synth, args.questions if timed else 1)  # 1: a question
    if timed:
        row.update({k: v for k, v in q.items() if k != "question"})
        log(f"  p50 {q['p50_ms']:.1f} ms, p95 {q['p95_ms']:.1f} ms, recall@10 {q['recall10']:.3f}")
    gc.collect()
    if "startup" in args.measure:
        measure_startup(index_dir, row, q["question"], args.runs)
    if "add" in args.measure:
        row.update(measure_add(index_dir, args.work, synth, args.adds))
        log(f"  add {row['add_s']:.2f}s vs alone {row['add_alone_s']:.2f}s")
    if not args.keep:
        shutil.rmtree(index_dir, ignore_errors=True)
    return row


def measure_startup(index_dir: Path, row: dict, question: str, runs: int) -> None:
    s = startup(index_dir, question, runs)
    row.update(
        startup_s=s["answered"],
        import_s=s["import_only"],
        startup_ratio=s["answered"] / s["import_only"],
        open_s=s["opened"] - s["imported"],
        first_answer_s=s["answered"] - s["opened"],
        rss_mb=s["hwm_mib"],
    )
    log(
        f"  start-up {s['answered']:.2f}s (imports {s['imported']:.2f}s, open "
        f"{row['open_s']:.2f}s, first answer {row['first_answer_s']:.2f}s; import-only "
        f"{s['import_only']:.2f}s), peak RSS {s['hwm_mib']:.0f} MiB"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10**3, 10**4, 10**5, 10**6])
    ap.add_argument("--work", type=Path, default=None, help="folder for the indexes")
    ap.add_argument("--keep", action="store_true", help="keep the indexes")
    ap.add_argument("--questions", type=int, default=300)
    ap.add_argument("--tokens-per-passage", type=int, default=75)
    ap.add_argument("--runs", type=int, default=3, help="start-up subprocesses per size")
    ap.add_argument("--adds", type=int, default=3, help="timed adds per size")
    ap.add_argument("--results", type=Path, default=None, help="append rows here (JSON lines)")
    ap.add_argument("--plot", type=Path, default=ROOT / "bench" / "scale.png")
    ap.add_argument("--profile", action="store_true", help="cProfile the first segment's build")
    ap.add_argument(
        "--measure",
        nargs="+",
        choices=("queries", "startup", "add"),
        default=["queries", "startup", "add"],
        help="what to measure on each index (default: all)",
    )
    ap.add_argument(
        "--reuse", action="store_true", help="measure an index-N already in --work, no build"
    )
    args = ap.parse_args()
    made_work = args.work is None
    args.work = Path(tempfile.mkdtemp(prefix="scale-")) if made_work else args.work
    args.work.mkdir(parents=True, exist_ok=True)
    synth = Synth(tokens_per_passage=args.tokens_per_passage)
    rows = []
    try:
        for size in args.sizes:
            row = run_size(size, args, synth)
            rows.append(row)
            if args.results:
                with open(args.results, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(dict(row, measured_at=store.now())) + "\n")
            print(table(rows), flush=True)
    finally:
        if made_work and not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
        elif not args.keep:
            for p in args.work.glob("add-*"):
                shutil.rmtree(p, ignore_errors=True)
    if args.results:
        latest: dict[int, dict] = {}
        for line in args.results.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)  # a later row of a size adds to / overrides earlier ones
                latest[r["passages"]] = {**latest.get(r["passages"], {}), **r}
        rows = [latest[k] for k in sorted(latest)]
        print(f"\nall sizes in {args.results}:")
        print(table(rows))
    big = next((r for r in rows if r["passages"] >= 10**6), None)
    if big:
        print("\nfloors at 10^6:")
        for label, key, limit in FLOORS:
            print(f"  {label:<36} {'met' if big[key] <= limit else 'MISSED'} ({big[key]:.2f})")
    plot(sorted(rows, key=lambda r: r["passages"]), args.plot)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
