"""Index building and batch answering on a Ray cluster (README: "Scaling out").

Plain Ray tasks and actors, no Ray Data: reading and splitting files are Ray tasks (the same
:func:`chatbot.build.read_file` and :func:`chatbot.build.split_file` a local build loops
over), passages and questions go through a pool of actors that each load the model once
(:class:`ActorPool`), and the driver (the ``chatbot`` process) does everything else as a
local run does: it trains the sentence splitter, assembles the segment and commits it under
the index lock, or writes the answers in input order. So a distributed result equals a
local one.

Faults: a task whose worker dies is re-run by Ray (``max_retries``); a batch whose actor
dies is sent to another actor and a replacement actor is started, each batch at most
``ray_retries`` times, or the command stops with one :class:`ClusterError`. The driver
writes nothing before every batch is in (a build), or writes answers strictly in order (a
batch run), so nothing is written twice or lost; a failed build leaves the index as it was.

Ray is an optional extra (``pip install '.[ray]'``) and is imported only here, only when a
command is given ``--ray``: the single-machine path never imports it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .config import Settings

log = logging.getLogger(__name__)

INSTALL_HINT = "install the Ray extra: pip install '.[ray]' (or -r requirements-ray.txt)"
START_TIMEOUT = 120.0  # seconds to wait for an actor when no other actor is alive
AHEAD_PER_ACTOR = 4  # batches submitted or finished ahead of the one to yield next, per actor


class ClusterError(RuntimeError):
    """The Ray cluster cannot do the work; the message says what to fix."""


def _ray() -> Any:
    """The ``ray`` module (imported here only), with usage reporting off."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ClusterError(f"Ray is not installed; {INSTALL_HINT}") from None
    return ray


def connect(address: str) -> Any:
    """Join the Ray cluster at ``address`` (``auto``: the one running on this machine, or
    ``RAY_ADDRESS``; else ``HOST:PORT``) once per process; returns the ``ray`` module."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    _reachable(address)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
            namespace="chatbot",
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(
            f"cannot join the Ray cluster at {address!r} ({first}); start one with "
            "`ray start --head` or fix --ray / CHATBOT_RAY_ADDRESS"
        ) from None
    return ray


def _reachable(address: str, timeout: float = 5.0) -> None:
    """Raise :class:`ClusterError` at once if ``HOST:PORT`` takes no connection (Ray
    itself would retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"cannot join the Ray cluster at {address!r} ({exc.strerror or exc}); start one "
            "with `ray start --head` or fix --ray / CHATBOT_RAY_ADDRESS"
        ) from None


def cluster_cpus(ray: Any) -> int:
    """The CPUs the cluster has (all nodes)."""
    return int(ray.cluster_resources().get("CPU", 0))


def _portable(settings: Settings) -> Settings:
    """``settings`` with the index (and a model folder) as absolute paths: actors run in
    other working directories, on other nodes (which see the same shared storage)."""
    model = settings.model
    if Path(model).expanduser().exists():
        model = str(Path(model).expanduser().resolve())
    return replace(settings, index=str(settings.index_dir.resolve()), model=model)


# ---------------------------------------------------------------------------- actors


class _Worker:
    """A Ray actor's state: the model, loaded once, and (for answering) the index."""

    def __init__(self, settings: Settings, backend: str | None, answer: bool) -> None:
        os.environ["CHATBOT_THREADS"] = str(max(settings.ray_actor_cpus, 1))
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        self.retriever: Any = None
        if answer:
            from .service import open_retriever

            self.retriever = open_retriever(settings)
            self.embedder = self.retriever.embedder
        else:
            from .embedder import get_embedder

            self.embedder = get_embedder(settings.model, backend)

    def ready(self) -> dict[str, Any]:
        """What the driver checks before sending work: versions, model, index generation."""
        return {
            "version": __version__,
            "name": self.embedder.name,
            "dim": int(self.embedder.dim),
            "backend": self.embedder.backend,
            "generation": (
                self.retriever.index.manifest.get("generation") if self.retriever else None
            ),
            "pid": os.getpid(),
        }

    def embed(self, job: tuple[str, tuple]) -> Any:
        """``embedder.<method>(*args)`` for ``job = (method, args)``."""
        method, args = job
        if method not in ("encode", "encode_with_tokens", "encode_late"):
            raise ValueError(f"unknown embedder method {method!r}")
        return getattr(self.embedder, method)(*args)

    def answer(self, job: tuple[list[str], int, int]) -> list[Any]:
        """``Retriever.ask_many`` on one batch of questions."""
        questions, k, batch_size = job
        return self.retriever.ask_many(questions, k=k, batch_size=batch_size)


class ActorPool:
    """Actors that each hold the model, fed batches in order, surviving lost workers.

    ``map`` sends each item to an idle actor (at most two calls queued per actor, and at
    most ``AHEAD_PER_ACTOR`` items per actor between the next result to give and the last
    one sent, so memory stays bounded on an endless stream) and yields the results in item
    order. When an actor dies (its worker or node killed) its unfinished items go back to
    the front of the queue, a replacement actor is started, and the pool goes on with the
    others; an item is tried at most ``1 + retries`` times. With no actor alive and none
    starting within ``START_TIMEOUT`` seconds, :class:`ClusterError`.
    """

    def __init__(
        self,
        ray: Any,
        settings: Settings,
        *,
        backend: str | None = None,
        answer: bool = False,
        size: int = 0,
        expect: dict[str, Any] | None = None,
    ) -> None:
        self.ray = ray
        self.settings = _portable(settings)
        self.retries = max(settings.ray_retries, 0)
        self.expect = expect or {}
        cpus = max(settings.ray_actor_cpus, 1)
        self.size = size or settings.ray_actors or max(cluster_cpus(ray) // cpus, 1)
        self._cls = ray.remote(num_cpus=cpus, max_restarts=0, max_task_retries=0)(_Worker)
        self._args = (self.settings, backend, answer)
        self._starting: dict[Any, Any] = {}  # ready() ref -> actor
        self.live: list[Any] = []
        self.info: dict[str, Any] = {}
        self.replaced = 0
        for _ in range(self.size):
            self._start()

    def _start(self) -> None:
        actor = self._cls.remote(*self._args)
        self._starting[actor.ready.remote()] = actor

    def wait_ready(self) -> dict[str, Any]:
        """Block until one actor is up; its :meth:`_Worker.ready` answer."""
        deadline = time.monotonic() + START_TIMEOUT
        while not self.live:
            self._poll(list(self._starting), deadline)
        return self.info

    def _poll(self, refs: list[Any], deadline: float) -> list[Any]:
        """Wait for one of ``refs``, handle actors that came up; the finished work refs."""
        if not refs:
            raise ClusterError(
                "every Ray worker died and none could be restarted; check the cluster's "
                "nodes (`ray status`) and run the command again"
            )
        ready, _ = self.ray.wait(refs, num_returns=1, timeout=1.0)
        if not ready:
            if not self.live and time.monotonic() > deadline:
                raise ClusterError(
                    f"no Ray worker started within {START_TIMEOUT:.0f} s; the cluster needs "
                    f"{self.settings.ray_actor_cpus} free CPU(s) per worker "
                    "(setting ray_actor_cpus) and the chatbot package on every node"
                )
            return []
        done = []
        for ref in ready:
            actor = self._starting.pop(ref, None)
            if actor is None:
                done.append(ref)
                continue
            try:
                info = self.ray.get(ref)
            except self.ray.exceptions.RayActorError as exc:
                self._starting.pop(ref, None)
                if _is_app_error(self.ray, exc):
                    raise ClusterError(f"a Ray worker could not start: {_one_line(exc)}") from None
                log.warning("a Ray worker died while starting; starting another")
                self._replace()
                continue
            self._check(info)
            self.live.append(actor)
        return done

    def _check(self, info: dict[str, Any]) -> None:
        if info["version"] != __version__:
            raise ClusterError(
                f"the cluster's workers run chatbot {info['version']}, this is {__version__}; "
                "install the same version on every node"
            )
        for key, want in self.expect.items():
            if want is not None and info.get(key) != want:
                raise ClusterError(
                    f"a Ray worker has {key} {info.get(key)!r}, not {want!r}: the index "
                    "changed during the run; run the command again (with --resume)"
                )
        if not self.info:
            self.info = info

    def _replace(self) -> None:
        if self.replaced >= self.retries * self.size:
            return
        self.replaced += 1
        self._start()

    def _lost(self, actor: Any) -> None:
        if actor in self.live:
            self.live.remove(actor)
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
            self._replace()

    def map(self, method: str, items: Iterable[Any]) -> Iterator[Any]:
        """``actor.<method>(item)`` for every item, results in item order (see the class)."""
        source = iter(items)
        buffer: dict[int, Any] = {}  # item number -> item, until its result is in
        attempts: dict[int, int] = {}
        retry: deque[int] = deque()
        results: dict[int, Any] = {}
        inflight: dict[Any, tuple[Any, int]] = {}
        load: dict[Any, int] = {}
        read = 0  # items taken from ``source``
        nxt = 0  # next item number to yield
        exhausted = False
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            while nxt in results:
                buffer.pop(nxt, None)
                log.info("Ray batch %d done", nxt + 1)
                yield results.pop(nxt)
                nxt += 1
            if exhausted and nxt == read:
                return
            for actor in list(self.live):
                while load.get(actor, 0) < 2:
                    if retry:
                        i = retry.popleft()
                    elif not exhausted and read - nxt < AHEAD_PER_ACTOR * max(len(self.live), 1):
                        try:
                            buffer[read] = next(source)
                        except StopIteration:
                            exhausted = True
                            break
                        i, read = read, read + 1
                    else:
                        break
                    ref = getattr(actor, method).remote(buffer[i])
                    inflight[ref] = (actor, i)
                    load[actor] = load.get(actor, 0) + 1
            if exhausted and nxt == read:
                continue
            if self.live:
                deadline = time.monotonic() + START_TIMEOUT
            for ref in self._poll([*inflight, *self._starting], deadline):
                actor, i = inflight.pop(ref)
                load[actor] -= 1
                try:
                    results[i] = self.ray.get(ref)
                except self.ray.exceptions.RayActorError as exc:
                    if _is_app_error(self.ray, exc):
                        raise ClusterError(f"a Ray worker failed: {_one_line(exc)}") from None
                    attempts[i] = attempts.get(i, 0) + 1
                    if attempts[i] > self.retries:
                        raise ClusterError(
                            f"batch {i + 1} was lost {attempts[i]} times with its Ray "
                            f"worker; giving up (setting ray_retries is {self.retries})"
                        ) from None
                    log.warning("a Ray worker died; batch %d goes to another worker", i + 1)
                    retry.appendleft(i)
                    self._lost(actor)
                except self.ray.exceptions.RayTaskError as exc:
                    raise ClusterError(f"a Ray worker failed: {_one_line(exc)}") from None

    def close(self) -> None:
        """End the pool's actors."""
        for actor in [*self.live, *self._starting.values()]:
            with contextlib.suppress(Exception):
                self.ray.kill(actor)
        self.live, self._starting = [], {}


def _is_app_error(ray: Any, exc: BaseException) -> bool:
    """True if an actor died of an exception in its own ``__init__`` (e.g. the model would
    not load), which a retry would only repeat."""
    return "raised in its creation task" in str(exc)


def _one_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[-1] if lines else type(exc).__name__


# ---------------------------------------------------------------------------- building


class RayEmbedder:
    """An :class:`~chatbot.embedder.Embedder` whose calls run on an :class:`ActorPool`:
    each call is cut into ``ray_batch`` texts per actor call, all sent at once, results
    put back in order (``spreads_calls``: the build hands it whole lists)."""

    spreads_calls = True

    def __init__(self, pool: ActorPool, batch: int) -> None:
        self.pool = pool
        self.batch = max(batch, 1)
        info = pool.wait_ready()
        self.name: str = info["name"]
        self.dim: int = info["dim"]
        self.backend: str = info["backend"]

    def _chunks(self, n: int) -> list[slice]:
        return [slice(i, i + self.batch) for i in range(0, n, self.batch)]

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        jobs = (("encode", (texts[s], batch_size)) for s in self._chunks(len(texts)))
        return np.concatenate(list(self.pool.map("embed", jobs)))

    def encode_with_tokens(self, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, list]:
        if not texts:
            return np.zeros((0, self.dim), np.float32), []
        jobs = (("encode_with_tokens", (texts[s], batch_size)) for s in self._chunks(len(texts)))
        parts = list(self.pool.map("embed", jobs))
        return np.concatenate([v for v, _ in parts]), [t for _, ts in parts for t in ts]

    def encode_late(
        self, texts: list[str], spans: list[list[tuple[int, int]]], batch_size: int = 64
    ) -> tuple[np.ndarray, list, list[np.ndarray]]:
        if not texts:
            return np.zeros((0, self.dim), np.float32), [], []
        jobs = (("encode_late", (texts[s], spans[s], batch_size)) for s in self._chunks(len(texts)))
        parts = list(self.pool.map("embed", jobs))
        return (
            np.concatenate([v for v, _, _ in parts]),
            [t for _, ts, _ in parts for t in ts],
            [p for _, _, ps in parts for p in ps],
        )


def _run_many(fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """A Ray task: ``fn`` over a few items."""
    return [fn(x) for x in items]


def task_map(ray: Any, retries: int) -> Callable[[Callable[[Any], Any], Sequence[Any]], Iterator]:
    """A ``map_fn`` for :func:`chatbot.build.index_files` that runs the per-file work as Ray
    tasks, a few files per task, at most two tasks per cluster CPU in flight, results in
    order. The tasks reserve no CPU: they run before the embedding actors, which hold the
    CPUs, have anything to do. A task whose worker dies is re-run ``retries`` times."""
    remote = ray.remote(num_cpus=0, max_retries=retries)(_run_many)
    cap = max(2 * cluster_cpus(ray), 2)

    def run(fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[Any]:
        items = list(items)
        per = max(1, min(16, len(items) // (2 * cap) or 1))
        chunks = [items[i : i + per] for i in range(0, len(items), per)]
        refs: deque[Any] = deque()
        for chunk in chunks:
            refs.append(remote.remote(fn, chunk))
            if len(refs) >= cap:
                yield from _get(ray, refs.popleft())
        while refs:
            yield from _get(ray, refs.popleft())

    return run


def _get(ray: Any, ref: Any) -> list[Any]:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        raise ClusterError(f"a Ray task failed after its retries: {_one_line(exc)}") from None


@contextlib.contextmanager
def build_tools(
    settings: Settings, backend: str | None, dim: int | None = None
) -> Iterator[tuple[Any, Any]]:
    """``(embedder, map_fn)`` for :func:`chatbot.build.index_files` on the cluster at
    ``settings.ray_address``: files read and split in Ray tasks, texts embedded by an
    :class:`ActorPool` started on first use (a run with nothing to embed starts none)."""
    ray = connect(settings.ray_address)
    lazy = _LazyRayEmbedder(ray, settings, backend, dim)
    try:
        yield lazy, task_map(ray, max(settings.ray_retries, 0))
    finally:
        lazy.close()


class _LazyRayEmbedder:
    """A :class:`RayEmbedder` whose actors start when the first text is to be embedded."""

    spreads_calls = True

    def __init__(self, ray: Any, settings: Settings, backend: str | None, dim: int | None):
        self._ray, self._settings, self._backend, self._dim = ray, settings, backend, dim
        self.name = settings.model
        self._inner: RayEmbedder | None = None

    def _get(self) -> RayEmbedder:
        if self._inner is None:
            pool = ActorPool(self._ray, self._settings, backend=self._backend)
            self._inner = RayEmbedder(pool, self._settings.ray_batch)
            log.info("embedding on %d Ray actors", pool.size)
        return self._inner

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else self._get().dim

    @property
    def backend(self) -> str:
        return self._get().backend

    def encode(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return self._get().encode(texts, batch_size, progress)

    def encode_with_tokens(self, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, list]:
        return self._get().encode_with_tokens(texts, batch_size)

    def encode_late(
        self, texts: list[str], spans: list[list[tuple[int, int]]], batch_size: int = 64
    ) -> tuple[np.ndarray, list, list[np.ndarray]]:
        return self._get().encode_late(texts, spans, batch_size)

    def close(self) -> None:
        if self._inner is not None:
            self._inner.pool.close()


# ---------------------------------------------------------------------------- answering


class RayAnswerer:
    """Batch answering on the cluster: actors that each hold the model and the index
    (memory-mapped from the same folder, on shared storage), ``ray_batch`` questions per
    call, answers in input order (:meth:`answer_stream`)."""

    def __init__(self, settings: Settings) -> None:
        from . import store

        ray = connect(settings.ray_address)
        manifest = store.read_manifest(settings.index_dir)
        # Fail here, before any worker starts, on an index the local path would refuse.
        store.check_compatible(
            manifest, settings.model, settings.splitter_settings(), settings.index_dir
        )
        self.pool = ActorPool(
            ray, settings, answer=True, expect={"generation": manifest.get("generation")}
        )
        self.pool.wait_ready()
        self.batch = max(settings.ray_batch, 1)

    def answer_stream(
        self, questions: Iterable[Any], k: int, batch_size: int = 64
    ) -> Iterator[tuple[Any, Any]]:
        """Yield ``(question, Answer)`` in input order, as :func:`chatbot.batch.answer_stream`
        does; a read error is raised after the questions before it are answered."""
        from .batch import _windows

        held: deque[list[Any]] = deque()
        error: list[BaseException] = []

        def jobs() -> Iterator[tuple[list[str], int, int]]:
            for chunk, exc in _windows(iter(questions), self.batch):
                if chunk:
                    held.append(chunk)
                    yield [q.question for q in chunk], k, batch_size
                if exc is not None:
                    error.append(exc)

        for answers in self.pool.map("answer", jobs()):
            chunk = held.popleft()
            for q, a in zip(chunk, answers, strict=True):
                a.id = q.id
                yield q, a
        if error:
            raise error[0]

    def ask_many(self, questions: list[str], k: int = 3, batch_size: int = 64) -> list[Any]:
        """Answers to ``questions`` in order (``Retriever.ask_many`` on the cluster)."""
        jobs = (
            (questions[i : i + self.batch], k, batch_size)
            for i in range(0, len(questions), self.batch)
        )
        return [a for answers in self.pool.map("answer", jobs) for a in answers]

    def close(self) -> None:
        self.pool.close()


# ---------------------------------------------------------------------------- a local cluster


_TAKEN: set[int] = set()  # ports this process handed out (a closed port may come back)


def _free_port() -> int:
    """A port free on 127.0.0.1 now, never one this process handed out before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _TAKEN:
            _TAKEN.add(port)
            return port


def _ray_command() -> str:
    exe = Path(sys.executable).with_name("ray")
    return str(exe) if exe.exists() else (shutil.which("ray") or "ray")


@dataclass
class _Node:
    process: subprocess.Popen
    args: list[str]


class LocalCluster:
    """A Ray cluster on 127.0.0.1 for tests and benchmarks: a head node and ``workers``
    more nodes with ``cpus`` CPUs each, in a private temp folder, every port chosen free,
    no dashboard, no usage reporting. :meth:`stop` (or leaving the ``with``) ends only the
    processes it started: each node is a ``ray start --block`` in its own session.
    ``env`` is added to the nodes' environment (their workers inherit it)."""

    def __init__(
        self, workers: int = 1, cpus: int = 1, head_cpus: int = 1, env: dict | None = None
    ) -> None:
        self.workers, self.cpus, self.head_cpus = workers, cpus, head_cpus
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_raylet_start_wait_time_s": "120",  # shared CPUs: give a node time to start
            **(env or {}),
        }
        self.temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # socket paths must be short
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.nodes: list[_Node] = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ports(self) -> list[str]:
        out = []
        for flag in (
            "--node-manager-port",
            "--object-manager-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
        ):
            out += [flag, str(_free_port())]
        return out

    def _start_node(self, head: bool, cpus: int) -> None:
        args = [_ray_command(), "start", "--block", "--node-ip-address", "127.0.0.1"]
        args += ["--num-cpus", str(cpus), "--disable-usage-stats", *self._ports()]
        if head:
            args += ["--head", "--port", str(self.port), "--include-dashboard", "false"]
            args += ["--temp-dir", self.temp]
        else:
            args += ["--address", self.address]
        log_file = open(Path(self.temp) / f"node-{len(self.nodes)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            args, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        log_file.close()
        self.nodes.append(_Node(proc, args))

    def start(self, timeout: float = 120.0) -> None:
        """Start the head, then the worker nodes; return when all are in the cluster."""
        self._start_node(True, self.head_cpus)
        self._wait_nodes(1, timeout)
        for i in range(self.workers):  # one at a time: a loaded machine is slow to start them
            self._start_node(False, self.cpus)
            self._wait_nodes(2 + i, timeout)

    def _wait_nodes(self, n: int, timeout: float) -> None:
        code = (
            "import ray,sys,time\n"
            f"ray.init(address={self.address!r}, include_dashboard=False, log_to_driver=False,"
            " logging_level='ERROR')\n"
            "end = time.time() + 50\n"
            f"while sum(x['Alive'] for x in ray.nodes()) < {n} and time.time() < end:\n"
            "    time.sleep(0.2)\n"
            f"sys.exit(0 if sum(x['Alive'] for x in ray.nodes()) >= {n} else 1)\n"
        )
        deadline = time.monotonic() + timeout
        while True:
            for i, node in enumerate(self.nodes):
                if node.process.poll() is not None:
                    log_file = Path(self.temp) / f"node-{i}.log"
                    lines = log_file.read_text(errors="replace").strip().splitlines()
                    self.stop()
                    last = lines[-1] if lines else "no output"
                    raise ClusterError(f"`ray start` of node {i} exited: {last}")
            with contextlib.suppress(subprocess.TimeoutExpired):
                done = subprocess.run(
                    [sys.executable, "-c", code], env=self.env, capture_output=True, timeout=60
                )
                if done.returncode == 0:
                    return
            if time.monotonic() > deadline:
                self.stop()
                raise ClusterError(f"the local Ray cluster did not come up; see {self.temp}")
            time.sleep(0.5)

    def pids(self, node: int) -> list[int]:
        """The processes of node ``node`` (0: the head): those in its ``ray start``'s session."""
        sid = self.nodes[node].process.pid
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[3]) == sid:  # fields after the name: state ppid pgrp session ...
                out.append(int(entry.name))
        return out

    def raylet_pid(self, node: int) -> int | None:
        """The raylet of node ``node`` (killing it takes the node and its workers down)."""
        for pid in self.pids(node):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
        return None

    def stop(self) -> None:
        """End every process this cluster started (and only those), remove its folder."""
        for node in reversed(self.nodes):
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in reversed(self.nodes):
            with contextlib.suppress(subprocess.TimeoutExpired):
                node.process.wait(timeout=30)
        for i in range(len(self.nodes)):
            for pid in self.pids(i):
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(OSError):
                os.killpg(self.nodes[i].process.pid, signal.SIGKILL)
            if self.nodes[i].process.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.nodes[i].process.wait(timeout=10)
        shutil.rmtree(self.temp, ignore_errors=True)


__all__ = [
    "ActorPool",
    "ClusterError",
    "LocalCluster",
    "RayAnswerer",
    "RayEmbedder",
    "build_tools",
    "connect",
    "task_map",
]
