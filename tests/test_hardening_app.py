"""Hardening of the chat server: bounded requests, batched answering, the closed upload route."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import gradio as gr
import httpx
import pytest

from chatbot import app as chat_app
from chatbot import service
from chatbot.config import Settings
from chatbot.guard import COOKIE, AdminGate, read_admin_token
from chatbot.microbatch import AskRequest, MicroBatcher, answer_requests
from chatbot.types import Answer

TOKEN = "s3cret-token"
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def _api(app: gr.Blocks):
    return next(f for f in app.fns.values() if f.api_name == chat_app.API_NAME).fn


# ------------------------------------------------------------------ request bounds


@pytest.mark.parametrize("k", [1.5, "3", True, 0, 21, None])
def test_api_refuses_a_k_that_is_not_a_whole_number_in_range(k: object) -> None:
    with pytest.raises(ValueError, match="k must be a whole number from 1 to 20"):
        chat_app.check_api_input("q", k, "", 2000)


def test_api_accepts_whole_k_given_as_float() -> None:
    assert chat_app.check_api_input("q", 3.0, "", 2000) == 3


def test_api_bounds_previous_like_the_question(fake_index: Settings) -> None:
    ask = _api(chat_app.build_app(fake_index))
    started = time.perf_counter()
    with pytest.raises(gr.Error, match="previous is 200,000 characters; the limit is 2,000"):
        ask("and in men?", 3, "x" * 200_000)
    assert time.perf_counter() - started < 1.0  # refused before any work is done
    with pytest.raises(gr.Error, match="k must be a whole number"):
        ask("How much calcium?", 1.5)
    limit = fake_index.max_question_chars
    assert ask("and in men?", 3, "calcium " * (limit // 8))["answer"]  # at the limit: fine


def test_chat_follow_up_chain_stays_bounded(fake_index: Settings) -> None:
    live = service.LiveRetriever(replace(fake_index, max_question_chars=60))
    state = chat_app.new_state()
    history: list = []
    for i in range(10):
        history, state, answer = chat_app.chat_turn(live, "and in adults?", history, state)
        assert answer is not None
        assert answer.query == ("and in adults? and in adults?" if i else "and in adults?")


# ------------------------------------------------------------------ micro-batching


def test_micro_batcher_batches_concurrent_requests_and_keeps_their_order() -> None:
    sizes: list[int] = []
    gate = threading.Event()

    def run(reqs: Sequence[int]) -> list[int]:
        sizes.append(len(reqs))
        gate.wait(5)  # the first batch waits until every other caller is queued
        return [r * 10 for r in reqs]

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=8)
    results: dict[int, int] = {}

    def call(i: int) -> None:
        results[i] = batcher.submit(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    while len(batcher._pending) < 19:  # one leads, nineteen wait
        time.sleep(0.01)
    gate.set()
    for t in threads:
        t.join(10)
    assert results == {i: i * 10 for i in range(20)}
    assert sizes[0] == 1 and max(sizes) == 8 and sum(sizes) == 20


def test_micro_batcher_isolates_a_failing_request() -> None:
    def run(reqs: Sequence[int]) -> list[int]:
        if 13 in reqs:
            raise ValueError("unlucky")
        return list(reqs)

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=4)
    batcher._busy = True  # hold the batch back until all four are queued
    out: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            out[i] = batcher.submit(i)
        except ValueError as exc:
            out[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in (11, 12, 13, 14)]
    for t in threads:
        t.start()
    while len(batcher._pending) < 4:
        time.sleep(0.01)
    with batcher._cond:
        batcher._busy = False
        batcher._cond.notify_all()
    for t in threads:
        t.join(10)
    assert out[11] == 11 and out[12] == 12 and out[14] == 14
    assert isinstance(out[13], ValueError)


def test_micro_batcher_never_leaves_a_caller_waiting_after_a_base_exception() -> None:
    def run(reqs: Sequence[int]) -> list[int]:
        raise KeyboardInterrupt

    batcher: MicroBatcher[int, int] = MicroBatcher(run, max_batch=4)
    with pytest.raises(KeyboardInterrupt):
        batcher.submit(1)
    assert not batcher._busy and not batcher._pending


def test_batched_answers_equal_single_answers(fake_index: Settings) -> None:
    retriever = service.open_retriever(fake_index)
    requests = [
        AskRequest("How much calcium do adults need?", "How much calcium do adults need?", 3),
        AskRequest("and in men?", "How much calcium do adults need? and in men?", 2),
        AskRequest("Who painted the Mona Lisa?", "Who painted the Mona Lisa?", 1),
        AskRequest("What is exercise good for?", "What is exercise good for?", 3),
    ]
    batched = answer_requests(retriever, requests)
    for req, got in zip(requests, batched, strict=True):
        alone = retriever.ask(req.question, k=req.k, query=req.query)
        _assert_same(got, alone)


def _assert_same(a: Answer, b: Answer) -> None:
    """Equal answers; confidence and scores may differ in the last bits (batched floats)."""
    da, db = a.to_dict(), b.to_dict()
    assert abs(da.pop("confidence") - db.pop("confidence")) < 1e-5
    for pa, pb in zip(da.pop("passages"), db.pop("passages"), strict=True):
        assert abs(pa.pop("score") - pb.pop("score")) < 1e-5
        assert abs(pa.pop("confidence") - pb.pop("confidence")) < 1e-5
        assert pa == pb
    assert da == db


# ------------------------------------------------------------------ admin token


def test_admin_gate_slows_down_after_wrong_tokens() -> None:
    now = [100.0]
    gate = AdminGate(TOKEN, clock=lambda: now[0])
    assert not gate.check("a")
    assert gate.wait_seconds() == 1.0
    assert not gate.check(TOKEN)  # refused unchecked while slowed down
    now[0] += 1.0
    assert not gate.check("b")
    assert gate.wait_seconds() == 2.0
    now[0] += 2.0
    assert not gate.check("c")
    assert gate.wait_seconds() == 4.0
    now[0] += 4.0
    assert gate.check(TOKEN) and gate.wait_seconds() == 0.0
    assert not gate.check("d") and gate.wait_seconds() == 1.0  # the count starts again


def test_upload_panel_reports_the_slow_down(fake_index: Settings, tmp_path: Path) -> None:
    settings = replace(fake_index, admin_token=TOKEN)
    gate = AdminGate(TOKEN)
    assert chat_app.upload_documents(settings, "nope", [], gate) == chat_app.WRONG_TOKEN
    assert chat_app.upload_documents(settings, TOKEN, [], gate).startswith("Too many wrong")


def test_admin_token_file(fake_index: Settings, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"{TOKEN}\n")
    settings = replace(fake_index, admin_token="", admin_token_file=str(token_file))
    assert read_admin_token(settings) == TOKEN
    assert "upload-token" in {
        b.elem_id for b in chat_app.build_app(settings).blocks.values() if b.elem_id
    }
    token_file.write_text("\n")
    with pytest.raises(ValueError, match="is empty; write the token on its first line"):
        read_admin_token(settings)
    with pytest.raises(ValueError, match="cannot be read"):
        read_admin_token(replace(settings, admin_token_file=str(tmp_path / "missing")))


def test_temp_uploads_are_deleted(fake_index: Settings, tmp_path: Path) -> None:
    settings = replace(fake_index, admin_token=TOKEN)
    up = tmp_path / "gradio-tmp"
    up.mkdir()
    (up / "a.txt").write_text("Tea\n\nTea has caffeine too, less than coffee.\n")
    (up / "b.exe").write_bytes(b"MZ")
    files = [str(up / "a.txt"), str(up / "b.exe")]
    assert chat_app.upload_documents(settings, "wrong", files) == chat_app.WRONG_TOKEN
    assert list(up.iterdir()) == []  # refused: the temp copies are gone too
    (up / "a.txt").write_text("Tea\n\nTea has caffeine too, less than coffee.\n")
    assert chat_app.upload_documents(settings, TOKEN, [str(up / "a.txt")]).startswith("added")
    assert list(up.iterdir()) == []


def test_page_and_api_never_show_server_paths(fake_index: Settings) -> None:
    assert chat_app.display_source("/home/someone/papers/a.pdf") == "a.pdf"
    assert chat_app.display_source("corpus/vitamin_k2.txt") == "corpus/vitamin_k2.txt"
    app = chat_app.build_app(fake_index)  # its documents live outside the project
    assert fake_index.corpus_dir.as_posix() not in chat_app.header_html(app.live_retriever)
    payload = _api(app)("How much calcium do adults need per day?")
    assert payload["passages"] and all("/" not in p["source"] for p in payload["passages"])
    history, _, answer = chat_app.chat_turn(app.live_retriever, "calcium per day", [], None)
    assert answer is not None and answer.hits[0].source.startswith("/")  # the library keeps it
    assert fake_index.corpus_dir.as_posix() not in history[1]["content"]


# ------------------------------------------------------------------ the running server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(fake_index: Settings) -> Iterator[callable]:
    apps = []

    def start(**changes: object) -> str:
        settings = replace(fake_index, host="127.0.0.1", port=_free_port(), **changes)
        apps.append(chat_app.serve(settings, block=False))
        return f"http://127.0.0.1:{settings.port}"

    yield start
    for app in apps:
        app.close()


def _upload(url: str, cookie: str | None = None) -> httpx.Response:
    cookies = {COOKIE: cookie} if cookie is not None else None
    files = {"files": ("../../evil.txt", b"Evil\n\nHello.\n", "text/plain")}
    return httpx.post(f"{url}/gradio_api/upload", files=files, cookies=cookies, timeout=30)


@pytest.mark.slow
def test_upload_route_is_closed_without_an_admin_token(server) -> None:
    url = server()
    reply = _upload(url)
    assert reply.status_code == 403 and "uploads are disabled" in reply.text
    assert not any(Path(os.environ["GRADIO_TEMP_DIR"]).rglob("*evil*"))
    assert httpx.get(f"{url}/", timeout=30).status_code == 200  # the chat itself is open


@pytest.mark.slow
def test_upload_route_needs_the_token_cookie(server) -> None:
    url = server(admin_token=TOKEN)
    missing = _upload(url)
    assert missing.status_code == 403 and "missing admin token" in missing.text
    wrong = _upload(url, "guess")
    assert wrong.status_code == 403 and "wrong admin token" in wrong.text
    slowed = _upload(url, TOKEN)  # right token, but within the wait after a wrong one
    assert slowed.status_code == 403 and "too many wrong admin tokens" in slowed.text
    time.sleep(1.1)
    ok = _upload(url, TOKEN)
    assert ok.status_code == 200, ok.text


@pytest.mark.slow
def test_private_temp_folder_is_removed_at_exit(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "from chatbot.app import private_temp_dir; import os; "
        "d = private_temp_dir(); open(os.path.join(d, 'x.txt'), 'w').write('x'); print(d)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    folder = Path(out.stdout.strip().splitlines()[-1])
    assert folder.name.startswith("chatbot-gradio-") and not folder.exists()
