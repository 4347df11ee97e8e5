"""Load: N concurrent API clients on loopback, optionally with an `index add` in the middle.

    .venv/bin/python bench/load.py [--clients 40] [--seconds 60] [--add] [--batch 1,16]
                                   [--model M] [--corpus DIR] [--work DIR]

Builds an index of ``--corpus`` (default corpus/) with ``--model`` (default the bundled one),
then for each ``--batch`` size starts ``chatbot chat`` on a free 127.0.0.1 port with
``CHATBOT_API_BATCH_SIZE`` set to it (1 = every question answered on its own, as before
micro-batching) and runs ``--clients`` threads that call the named ``/ask`` endpoint
(Gradio's HTTP API: POST then read the event stream) with the dev questions of
bench/k2_questions.jsonl, round-robin, until ``--seconds`` have passed. With ``--add``, a
small new document is added with ``chatbot index add`` half-way through, and the same add
is first timed on an idle machine (no server) for reference.

Every answer is checked: each passage's text equals its document's text at [start, end]
(the documents as they are on disk, the added one included), its source is a document of
the old or the new index, and ``answer`` is the first passage (or the abstain message).
Prints requests, failures, answers/s, p50/p95 latency, the add's time and its ratio to the
idle add, and the answers/s ratio of each batch size to the first. Exits 1 on any failure or
answer that does not check out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from chatbot import service  # noqa: E402
from chatbot.app import display_source  # noqa: E402
from chatbot.build import default_source  # noqa: E402
from chatbot.config import ABSTAIN_MESSAGE, Settings  # noqa: E402

QUESTIONS = ROOT / "bench" / "k2_questions.jsonl"
EXTRA_DOC = """Green tea and bone health

Green tea contains catechins. Several observational studies in older women found that
regular green tea drinkers had a slightly higher bone mineral density than non-drinkers.

The authors of these studies caution that tea drinkers may differ from non-drinkers in
many other ways, so the link does not prove that tea itself protects bone.
"""


@dataclass
class Run:
    """What one server configuration did under load."""

    batch: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    seconds: float = 0.0
    add_seconds: float | None = None
    add_output: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chatbot(*args: str, env: dict[str, str] | None = None, **kw: object):
    cmd = [sys.executable, "-m", "chatbot", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, **kw)


def timed_add(index: Path, doc: Path, model: str, env: dict[str, str]) -> tuple[float, str]:
    """Seconds a whole ``chatbot index add`` process takes, and what it printed."""
    started = time.perf_counter()
    done = _chatbot("index", "add", str(doc), "--index", str(index), "--model", model, env=env)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"index add failed ({done.returncode}): {done.stderr.strip()}")
    return took, done.stdout.strip()


def ask(client: httpx.Client, url: str, question: str) -> dict:
    """One ``/ask`` call over Gradio's HTTP API; raises on an error event or HTTP error."""
    reply = client.post(f"{url}/gradio_api/call/ask", json={"data": [question, 3, ""]})
    reply.raise_for_status()
    event_id = reply.json()["event_id"]
    event = None
    with client.stream("GET", f"{url}/gradio_api/call/ask/{event_id}") as stream:
        stream.raise_for_status()
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                data = line.split(":", 1)[1].strip()
                if event == "error":
                    raise RuntimeError(f"error event: {data[:200]}")
                return json.loads(data)[0]
    raise RuntimeError(f"stream ended without a result (last event {event})")


def check(payload: dict, texts: dict[str, str]) -> str | None:
    """Why ``payload`` is not a verbatim answer from a known document, or None if it is."""
    passages = payload.get("passages") or []
    for p in passages:
        text = texts.get(p["source"])
        if text is None:
            return f"unknown source {p['source']!r}"
        if text[p["start"] : p["end"]] != p["text"]:
            return f"passage not verbatim at {p['source']}[{p['start']}:{p['end']}]"
    expected = passages[0]["text"] if payload.get("answered") else ABSTAIN_MESSAGE
    if payload.get("answer") != expected:
        return "answer is not the first passage (or the abstain message)"
    return None


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited early: {proc.stderr.read() if proc.stderr else ''}")
        try:
            if httpx.get(f"{url}/gradio_api/info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server at {url} not ready after {timeout:.0f} s")


def load_run(
    batch: int,
    index: Path,
    model: str,
    questions: list[str],
    texts: dict[str, str],
    args: argparse.Namespace,
    doc: Path,
    env: dict[str, str],
) -> Run:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = dict(env, CHATBOT_API_BATCH_SIZE=str(batch))
    cmd = [sys.executable, "-m", "chatbot", "chat", "--index", str(index), "--model", model]
    cmd += ["--port", str(port), "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        cmd, env=server_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    run = Run(batch)
    lock = threading.Lock()
    try:
        wait_ready(url, proc)
        started = time.monotonic()
        deadline = started + args.seconds

        def client(n: int) -> None:
            with httpx.Client(timeout=120) as c:
                i = n
                while time.monotonic() < deadline:
                    q = questions[i % len(questions)]
                    i += args.clients
                    t0 = time.perf_counter()
                    try:
                        payload = ask(c, url, q)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        with lock:
                            run.failures.append(f"{type(exc).__name__}: {exc}")
                        continue
                    took = time.perf_counter() - t0
                    problem = check(payload, texts)
                    with lock:
                        run.latencies.append(took)
                        if problem:
                            run.bad.append(f"{q!r}: {problem}")

        def adder() -> None:
            time.sleep(args.seconds / 2)
            run.add_seconds, run.add_output = timed_add(index, doc, model, env)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        if args.add:
            threads.append(threading.Thread(target=adder))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        run.seconds = time.monotonic() - started
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return run


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--add", action="store_true", help="run `chatbot index add` half-way")
    ap.add_argument("--batch", default="1,32", help="API batch sizes to compare (first = base)")
    ap.add_argument("--model", default=Settings().model)
    ap.add_argument("--corpus", default=str(ROOT / "corpus"))
    ap.add_argument("--work", help="keep the work folder here (default: a temporary one)")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="chatbot-load-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, HF_HUB_OFFLINE="1", CHATBOT_LOCK_TIMEOUT="600")
    try:
        corpus = work / "corpus"
        if not corpus.exists():
            shutil.copytree(args.corpus, corpus)
        doc = work / "extra" / "green_tea.txt"
        doc.parent.mkdir(exist_ok=True)
        doc.write_text(EXTRA_DOC, encoding="utf-8")
        base = work / "index-base"
        settings = Settings(index=str(base), corpus=str(corpus), model=args.model)
        service.build(settings, replace_all=True)
        index = service.open_retriever(settings).index
        # /ask names a document outside the project by its file name only
        texts = {display_source(d.source): d.text for d in index.documents.values()}
        texts[display_source(default_source(doc))] = EXTRA_DOC
        questions = [json.loads(line)["question"] for line in QUESTIONS.open(encoding="utf-8")]

        idle = None
        if args.add:
            idle_index = work / "index-idle"
            shutil.rmtree(idle_index, ignore_errors=True)
            shutil.copytree(base, idle_index)
            idle, _ = timed_add(idle_index, doc, args.model, env)

        runs = []
        for b in batches:
            index_dir = work / f"index-batch-{b}"
            shutil.rmtree(index_dir, ignore_errors=True)
            shutil.copytree(base, index_dir)
            runs.append(load_run(b, index_dir, args.model, questions, texts, args, doc, env))
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"{args.clients} clients, {args.seconds:.0f} s each, model {args.model}, "
        f"{len(texts) - 1} document(s) + 1 added{' half-way' if args.add else ' (no add)'}"
    )
    if idle is not None:
        print(f"index add on an idle machine: {idle:.1f} s")
    head = f"{'batch':>5} {'requests':>9} {'failures':>8} {'bad':>4} {'answers/s':>9} "
    head += f"{'p50 s':>6} {'p95 s':>6} {'add s':>6} {'add/idle':>8} {'vs first':>8}"
    print(head)
    first = runs[0].rate or float("nan")
    for r in runs:
        add = f"{r.add_seconds:6.1f}" if r.add_seconds is not None else f"{'-':>6}"
        ratio = f"{r.add_seconds / idle:8.2f}" if r.add_seconds and idle else f"{'-':>8}"
        print(
            f"{r.batch:>5} {len(r.latencies) + len(r.failures):>9} {len(r.failures):>8} "
            f"{len(r.bad):>4} {r.rate:>9.1f} {percentile(r.latencies, 50):>6.2f} "
            f"{percentile(r.latencies, 95):>6.2f} {add} {ratio} {r.rate / first:>8.2f}"
        )
    problems = [p for r in runs for p in r.failures + r.bad]
    for p in problems[:10]:
        print(f"  problem: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
