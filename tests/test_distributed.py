"""Index building and batch answering on a Ray cluster started here on 127.0.0.1: the
results equal a local run's, and a worker node killed in the middle of a run costs nothing
(its batches are re-run elsewhere) or, with no retries, fails with one error and leaves the
index as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from chatbot.config import PROJECT_ROOT

pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")

from chatbot.distributed import LocalCluster  # noqa: E402

pytestmark = pytest.mark.slow

DOCS = PROJECT_ROOT / "tests" / "data" / "docs"
QUESTIONS = PROJECT_ROOT / "tests" / "data" / "batch" / "questions.jsonl"
K2 = PROJECT_ROOT / "corpus" / "vitamin_k2.txt"
K2_QUESTIONS = PROJECT_ROOT / "bench" / "k2_questions.jsonl"
NODE_ENV = {"PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1"}


def chatbot(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    run_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    run_env.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "chatbot", *args],
        env=run_env,
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=600,
    )
    if check:
        assert done.returncode == 0, done.stderr[-3000:]
    return done


def segment_files(index: Path) -> dict[str, bytes]:
    """Every file of every segment, by segment-relative name (documents.jsonl without the
    indexing time, which differs between two builds)."""
    manifest = json.loads((index / "manifest.json").read_text())
    out = {}
    for e in manifest["segments"]:
        for f in sorted((index / e["name"]).iterdir()):
            data = f.read_bytes()
            if f.name == "documents.jsonl":
                rows = [json.loads(line) for line in data.decode().splitlines()]
                for r in rows:
                    r.pop("indexed_at")
                data = json.dumps(rows).encode()
            out[f"{len(out)}:{f.name}"] = data
    return out


def assert_same_index(local: Path, ray: Path, atol: float = 0.0, codes: bool = True) -> None:
    """Same files byte for byte, except (with ``atol``) vectors within ``atol``. With
    ``codes`` False (actor batches of another size than a local build's, which round
    differently in the last float32 bits), a stored float16 vector value may be one
    float16 step off and up to 1% of token PQ codes may differ (a token vector near a
    centroid boundary); the answers are then compared by the caller."""
    a, b = segment_files(local), segment_files(ray)
    assert a.keys() == b.keys()
    loose = ("vectors.npy", "vectors.faiss") + (() if codes else ("tokens.npy",))
    for name in a:
        if a[name] != b[name]:
            assert atol and name.endswith(loose), f"{name} differs"
    for seg in json.loads((local / "manifest.json").read_text())["segments"]:
        x = np.load(local / seg["name"] / "tokens.npy")
        y = np.load(ray / seg["name"] / "tokens.npy")
        assert x.shape == y.shape and (x != y).mean() <= 0.01  # of the 48 codes a row
        for arr in ("vectors", "sentence_vectors"):
            x = np.load(local / seg["name"] / f"{arr}.npy").astype(np.float32)
            y = np.load(ray / seg["name"] / f"{arr}.npy").astype(np.float32)
            assert x.shape == y.shape
            if codes:
                assert np.abs(x - y).max() <= atol, arr
            else:  # other batch sizes: at most one float16 rounding step apart
                step = np.spacing(np.abs(x).astype(np.float16)).astype(np.float32)
                assert (np.abs(x - y) <= np.maximum(step, atol)).all(), arr


@pytest.fixture(scope="module")
def cluster():
    """A head node and a second worker node on 127.0.0.1, one CPU each."""
    with LocalCluster(workers=1, cpus=1, env=NODE_ENV) as c:
        yield c


def test_fake_build_and_ask_equal_local(cluster: LocalCluster, tmp_path: Path) -> None:
    env = {"CHATBOT_RAY_BATCH": "4"}  # many small batches, over both nodes
    common = ["--model", "fake-64"]
    chatbot("index", "build", str(DOCS), "--index", str(tmp_path / "local"), *common)
    done = chatbot(
        "index", "build", str(DOCS), "--index", str(tmp_path / "ray"), *common,
        "--ray", cluster.address, env=env,
    )  # fmt: skip
    assert done.stdout.startswith("added 2 documents")
    assert_same_index(tmp_path / "local", tmp_path / "ray")
    chatbot("ask", str(QUESTIONS), "--index", str(tmp_path / "local"), *common,
            "--out", str(tmp_path / "local.jsonl"))  # fmt: skip
    chatbot("ask", str(QUESTIONS), "--index", str(tmp_path / "local"), *common,
            "--out", str(tmp_path / "ray.jsonl"), "--ray", cluster.address, env=env)  # fmt: skip
    local = (tmp_path / "local.jsonl").read_text()
    assert local.count("\n") >= 3
    assert (tmp_path / "ray.jsonl").read_text() == local
    # --resume: a partial output continues where it stopped, through the cluster.
    lines = local.splitlines(keepends=True)
    (tmp_path / "part.jsonl").write_text("".join(lines[:2]))
    chatbot("ask", str(QUESTIONS), "--index", str(tmp_path / "local"), *common,
            "--out", str(tmp_path / "part.jsonl"), "--resume", "--ray", cluster.address,
            env=env)  # fmt: skip
    assert (tmp_path / "part.jsonl").read_text() == local


def test_bad_address_is_one_error(tmp_path: Path) -> None:
    done = chatbot(
        "index", "build", str(DOCS), "--index", str(tmp_path / "i"), "--model", "fake-64",
        "--ray", "127.0.0.1:9", check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("Error: cannot join the Ray cluster at '127.0.0.1:9'")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "i" / "manifest.json").exists()


@pytest.mark.model
def test_real_model_equal_local(cluster: LocalCluster, tmp_path: Path) -> None:
    chatbot("index", "build", str(K2), "--index", str(tmp_path / "local"))
    chatbot("index", "build", str(K2), "--index", str(tmp_path / "ray"), "--ray", cluster.address)
    assert_same_index(tmp_path / "local", tmp_path / "ray", atol=1e-5)
    for name in ("local", "ray"):
        chatbot("ask", str(K2_QUESTIONS), "--index", str(tmp_path / name),
                "--out", str(tmp_path / f"{name}.jsonl"), "--quiet",
                *(["--ray", cluster.address] if name == "ray" else []))  # fmt: skip
    local = (tmp_path / "ray.jsonl").read_text()
    assert local.count("\n") >= 20
    assert (tmp_path / "local.jsonl").read_text() == local


# ---------------------------------------------------------------------------- faults


def run_and_kill(
    args: list[str], env: dict, kill: Callable[[], None], when: Callable[[str], bool]
) -> tuple[int, str]:
    """Run ``chatbot *args`` (-v); call ``kill()`` once ``when(stderr so far)`` is true."""
    run_env = {**os.environ, **NODE_ENV, **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatbot", *args, "-v"],
        env=run_env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[str] = []
    killed = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append(line)
            if not killed.is_set() and when("".join(seen)):
                kill()
                killed.set()

    reader = threading.Thread(target=read)
    reader.start()
    proc.wait(timeout=600)
    reader.join()
    assert killed.is_set(), "the run ended before the worker could be killed"
    return proc.returncode, "".join(seen)


def kill_node(cluster: LocalCluster, node: int) -> Callable[[], None]:
    def kill() -> None:
        pid = cluster.raylet_pid(node)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)

    return kill


def kill_actor_on(cluster: LocalCluster, node: int) -> Callable[[], None]:
    """Kill the embedding actor's worker process on ``node`` (not the node)."""

    def kill() -> None:
        for pid in cluster.pids(node):
            try:
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if comm.startswith("ray::_Worker"):
                os.kill(pid, signal.SIGKILL)
                return
        raise AssertionError("no actor process on the node")

    return kill


@pytest.fixture(scope="module")
def k2_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six copies of the vitamin K2 article (six documents), enough work to kill a worker
    in the middle of."""
    folder = tmp_path_factory.mktemp("k2copies")
    for i in range(6):
        shutil.copy(K2, folder / f"k2-{i}.txt")
    return folder


@pytest.mark.model
def test_worker_killed_mid_build_and_mid_ask(k2_copies: Path, tmp_path: Path) -> None:
    env = {"CHATBOT_RAY_BATCH": "8"}
    with LocalCluster(workers=2, cpus=1, env=NODE_ENV) as c:
        # A worker node dies while passages are being embedded: its batches are re-run.
        code, err = run_and_kill(
            [
                "index",
                "build",
                str(k2_copies),
                "--index",
                str(tmp_path / "ray"),
                "--ray",
                c.address,
            ],
            env,
            kill_node(c, 1),
            lambda s: s.count("Ray batch") >= 25,
        )
        assert code == 0, err[-3000:]
        assert "a Ray worker died" in err
        chatbot("index", "build", str(k2_copies), "--index", str(tmp_path / "local"))
        assert_same_index(tmp_path / "local", tmp_path / "ray", atol=1e-5, codes=False)

        # Another worker node dies while questions are answered: same output as locally.
        questions = tmp_path / "q.jsonl"
        rows = [json.loads(x) for x in K2_QUESTIONS.read_text().splitlines() if x.strip()]
        with open(questions, "w") as fh:
            for i in range(8):
                for j, r in enumerate(rows):
                    fh.write(json.dumps({"id": f"{i}-{j}", "question": r["question"]}) + "\n")
        out = tmp_path / "ray.jsonl"
        # Actor batches of 16 questions embedded one by one, as the local run's windows
        # (16 batches of 1): the same arithmetic, so equal answers even among the copies'
        # tied passages.
        same = {"CHATBOT_BATCH_SIZE": "1", "CHATBOT_RAY_BATCH": "16"}
        code, err = run_and_kill(
            ["ask", str(questions), "--index", str(tmp_path / "local"), "--out", str(out),
             "--ray", c.address],
            same,
            kill_node(c, 2),
            lambda s: s.count("Ray batch") >= 2,
        )  # fmt: skip
        assert code == 0, err[-3000:]
        assert "a Ray worker died" in err
        chatbot("ask", str(questions), "--index", str(tmp_path / "local"),
                "--out", str(tmp_path / "local.jsonl"), env=same)  # fmt: skip
        assert out.read_text() == (tmp_path / "local.jsonl").read_text()

        # With no retries, a lost batch fails the build with one error; the index is as it was.
        before = (tmp_path / "local" / "manifest.json").read_bytes()
        extra = tmp_path / "more"
        shutil.copytree(k2_copies, extra)
        for f in extra.iterdir():
            f.write_text(f.read_text() + "\nOne more sentence makes this a new version.\n")
        code, err = run_and_kill(
            ["index", "add", str(extra), "--index", str(tmp_path / "local"), "--ray", c.address],
            {**env, "CHATBOT_RAY_RETRIES": "0"},
            kill_actor_on(c, 0),
            lambda s: s.count("Ray batch") >= 3,
        )
        assert code == 1
        errors = [x for x in err.splitlines() if x.startswith("Error:")]
        assert len(errors) == 1 and "lost 1 times with its Ray worker" in errors[0], err[-2000:]
        assert (tmp_path / "local" / "manifest.json").read_bytes() == before
