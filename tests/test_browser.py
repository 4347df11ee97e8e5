"""End-to-end: the running chat in headless Chromium (Debian's ``chromium``), and the named API.

The app runs in this process on a free port on 127.0.0.1: one server over the real corpus with
the bundled model, one over a hostile document with the fake embedder. Screenshots go to
``tests/artifacts/``; with CHATBOT_UPDATE_DOCS=1 the answered chat also goes to ``docs/chat.png``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chatbot.config import ABSTAIN_MESSAGE, PROJECT_ROOT, Settings

CHROMIUM = Path(os.environ.get("CHATBOT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS_SCREENSHOT = PROJECT_ROOT / "docs" / "chat.png"
CORPUS_TEXT = (PROJECT_ROOT / "corpus" / "vitamin_k2.txt").read_text(encoding="utf-8")
TIMEOUT_MS = 20_000

HOSTILE_DOC = """# Tricky <b>formatting</b> notes

## Script tags

Zorbling dosage notes say <script>alert(1)</script> is printed here as plain text.

## Images and links

The zorbling image tag <img src=x onerror=alert(1)> and [a link](http://example.com) stay literal.

## Maths

Zorbling growth follows $x^2$ and $$y^3$$ with *stars* and `backticks` kept as typed.
"""

BONES_Q = "What does vitamin K2 do for bones?"
BADGE = re.compile(r"(strong|moderate|weak|poor) match [01]\.\d\d")

# Gradio's queue trips a pandas deprecation warning on every event; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::Warning:gradio.queueing")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(settings: Settings) -> Iterator[tuple[str, Settings]]:
    from chatbot.app import serve

    settings = replace(settings, host="127.0.0.1", port=_free_port())
    app = serve(settings, block=False)
    try:
        yield f"http://127.0.0.1:{settings.port}/", settings
    finally:
        app.close()


@pytest.fixture(scope="module")
def real_app(real_settings: Settings) -> Iterator[tuple[str, Settings]]:
    """The chat over the real corpus with the bundled model."""
    yield from _start(real_settings)


@pytest.fixture(scope="module")
def hostile_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The chat over a document full of markup, with the fake embedder."""
    from chatbot import service

    root = tmp_path_factory.mktemp("hostile")
    (root / "corpus").mkdir()
    (root / "corpus" / "hostile.md").write_text(HOSTILE_DOC, encoding="utf-8")
    settings = Settings(index=str(root / "index"), corpus=str(root / "corpus"), model="fake-64")
    service.build(settings, replace_all=True)
    yield from _start(settings)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` package "
            "(`apt-get install chromium`, as .ci/run does) or set CHATBOT_CHROMIUM"
        )
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A browser tab on one app, recording requests and dialogs."""

    def __init__(self, browser, url: str) -> None:
        self.url = url
        self.context = browser.new_context(viewport={"width": 1000, "height": 880})
        origin = url.rstrip("/")
        self.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=origin)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.goto(url)
        self.page.wait_for_selector("#question textarea")

    def cards(self):
        return self.page.locator("#chat .qa-card")

    def ask(self, question: str):
        """Type a question, press Enter and return the new answer card."""
        before = self.cards().count()
        box = self.page.locator("#question textarea")
        box.fill(question)
        box.press("Enter")
        self.page.wait_for_function(
            "n => document.querySelectorAll('#chat .qa-card').length > n", arg=before
        )
        return self.cards().nth(before)

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


@pytest.fixture
def real_page(browser, real_app) -> Iterator[Page]:
    page = Page(browser, real_app[0])
    yield page
    page.context.close()


@pytest.fixture
def hostile_page(browser, hostile_app) -> Iterator[Page]:
    page = Page(browser, hostile_app[0])
    yield page
    page.context.close()


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# ------------------------------------------------------------------ the real corpus


@pytest.mark.browser
def test_answer_card_quotes_the_source_verbatim(real_page: Page, real_retriever) -> None:
    page = real_page.page
    expected = real_retriever.ask(BONES_Q, k=3)
    assert expected.answered
    top = expected.hits[0]
    card = real_page.ask(BONES_Q)

    quote = card.locator(".qa-quote").first
    text = quote.inner_text()
    assert text == top.text and text in CORPUS_TEXT
    mark = quote.locator("mark")
    assert mark.count() == 1 and mark.is_visible()
    assert mark.inner_text() == top.text[top.highlight.start : top.highlight.end]
    background = mark.evaluate("m => getComputedStyle(m).backgroundColor")
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")

    source = card.locator(".qa-source").first.inner_text()
    assert "vitamin_k2.txt" in source and top.heading in source
    badge = card.locator(".qa-conf").inner_text()
    assert re.fullmatch(r"(strong|moderate) match [01]\.\d\d", badge)
    assert badge.endswith(f"{expected.confidence:.2f}")
    note = page.locator(".qa-note")
    assert note.is_visible() and "not medical advice" in note.inner_text()
    n_passages = len(real_retriever.index.passages)
    assert f"1 document, {n_passages} passages" in page.title()
    assert f"1 document ({n_passages} passages)" in page.locator("#qa-header").inner_text()

    # Runner-ups sit collapsed under "More passages".
    more = card.locator("details.qa-more")
    assert more.locator("summary").inner_text() == f"More passages ({len(expected.hits) - 1})"
    runner_quotes = more.locator(".qa-quote")
    assert not runner_quotes.first.is_visible()
    shot = real_page.screenshot("chat_answer.png")
    if os.environ.get("CHATBOT_UPDATE_DOCS"):  # `make screenshot` refreshes the README image
        DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    more.locator("summary").click()
    assert runner_quotes.first.is_visible()
    assert more.locator("mark").count() == 0  # only the answer itself is highlighted
    assert [q.inner_text() for q in runner_quotes.all()] == [h.text for h in expected.hits[1:]]
    real_page.screenshot("chat_answer_more.png")

    hosts = {urlsplit(u).hostname for u in real_page.requests if not u.startswith("data:")}
    assert hosts == {"127.0.0.1"}, "the page must not call anything but this server"


@pytest.mark.browser
def test_off_topic_question_abstains(real_page: Page) -> None:
    card = real_page.ask("How do I change a car tyre?")
    assert card.locator(".qa-abstain-msg").inner_text() == ABSTAIN_MESSAGE
    assert card.locator("mark").count() == 0 and card.locator(".qa-conf").count() == 0
    nearest = card.locator("details.qa-nearest")
    assert nearest.locator("summary").inner_text().startswith("Nearest passages (")
    nearest.locator("summary").click()
    badges = nearest.locator(".qa-badge").all_inner_texts()
    assert badges and all(BADGE.fullmatch(b) for b in badges)
    for q in nearest.locator(".qa-quote").all_inner_texts():
        assert q in CORPUS_TEXT
    real_page.screenshot("chat_abstain.png")


@pytest.mark.browser
def test_follow_up_uses_the_previous_question(real_page: Page) -> None:
    first = "How common are osteoporotic fractures in women?"
    real_page.ask(first)
    card = real_page.ask("and in men?")
    assert card.locator(".qa-query-text").inner_text() == f"{first} and in men?"
    quote = card.locator(".qa-quote").first.inner_text()
    assert quote in CORPUS_TEXT and "men" in quote
    users = real_page.page.locator("#chat .qa-question").all_inner_texts()
    assert users == [first, "and in men?"]
    real_page.screenshot("chat_follow_up.png")


@pytest.mark.browser
def test_thumbs_append_to_the_feedback_log(real_page: Page, real_app) -> None:
    log = real_app[1].index_dir / "feedback.jsonl"
    before = len(_lines(log))
    real_page.ask(BONES_Q)
    real_page.page.locator("#chat button[aria-label='Like']").last.click()
    deadline = time.monotonic() + 10
    while len(_lines(log)) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    records = _lines(log)[before:]
    assert len(records) == 1
    rec = records[0]
    assert rec["vote"] == "up" and rec["question"] == BONES_Q
    assert rec["passage_ids"] and all(isinstance(i, int) for i in rec["passage_ids"])
    assert re.match(r"\d{4}-\d\d-\d\dT", rec["time"])


@pytest.mark.browser
def test_copy_example_and_clear(real_page: Page) -> None:
    page = real_page.page
    examples = page.locator("#chat button.example")
    assert examples.count() >= 1
    examples.first.click()
    page.wait_for_selector("#chat .qa-card")
    card = real_page.cards().first
    quote = card.locator(".qa-quote").first.inner_text()
    card.locator(".qa-copy").click()
    clip = page.evaluate("navigator.clipboard.readText()")
    assert clip.startswith(f"“{quote}”\n— ")
    page.locator("#clear").click()
    page.wait_for_function("document.querySelectorAll('#chat .qa-card').length === 0")
    assert page.locator("#chat button.example").count() >= 1


# ------------------------------------------------------------------ hostile document


@pytest.mark.browser
def test_hostile_document_and_question_render_as_text(hostile_page: Page) -> None:
    page = hostile_page.page
    question = "zorbling image tag and link <img src=x onerror=window.__pwned=1> $x^2$"
    card = hostile_page.ask(question)
    card.locator("details.qa-more summary").click()
    quotes = card.locator(".qa-quote").all_inner_texts()
    assert len(quotes) == 3
    for needle in ("<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "$x^2$"):
        assert any(needle in q for q in quotes)
    assert any("[a link](http://example.com)" in q for q in quotes)
    for q in quotes:
        assert q in HOSTILE_DOC
    chat = page.locator("#chat")
    for selector in ("img", "script", "a", ".katex", "math", "em", "code", "b"):
        assert chat.locator(selector).count() == 0, selector
    assert page.locator("#chat .qa-question").inner_text() == question
    assert "Tricky <b>formatting</b> notes" in page.locator("#qa-header").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert hostile_page.dialogs == []
    hostile_page.screenshot("chat_hostile.png")


# ------------------------------------------------------------------ the named API


@pytest.mark.slow
def test_gradio_client_ask_returns_the_cli_record(real_app, real_retriever) -> None:
    from gradio_client import Client

    from chatbot.app import API_NAME

    client = Client(real_app[0], verbose=False, analytics_enabled=False, download_files=False)
    api = client.view_api(print_info=False, return_format="dict")
    assert f"/{API_NAME}" in api["named_endpoints"]
    result = client.predict(BONES_Q, api_name=f"/{API_NAME}")
    assert result == {**real_retriever.ask(BONES_Q, k=3).to_dict(), "query": BONES_Q}
    first = "How common are osteoporotic fractures in women?"
    follow = client.predict(question="and in men?", k=2, previous=first, api_name="/ask")
    assert follow["query"] == f"{first} and in men?"
    assert follow["question"] == "and in men?" and len(follow["passages"]) == 2
    off = client.predict("How do I change a car tyre?", api_name="/ask")
    assert off["answered"] is False and off["answer"] == ABSTAIN_MESSAGE
    client.close()


@pytest.mark.slow
def test_several_users_at_once(real_app, real_retriever) -> None:
    from gradio_client import Client

    questions = [BONES_Q, "Which foods contain vitamin K2?", "How do I change a car tyre?"] * 4
    client = Client(real_app[0], verbose=False, analytics_enabled=False, download_files=False)
    jobs = [client.submit(q, api_name="/ask") for q in questions]
    results = [job.result(timeout=60) for job in jobs]
    client.close()
    for q, result in zip(questions, results, strict=True):
        assert result["question"] == q
        assert result["answer"] == real_retriever.ask(q, k=3).answer


# ------------------------------------------------------------------ admin uploads


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The chat with the upload panel enabled (fake embedder)."""
    from chatbot import service

    root = tmp_path_factory.mktemp("admin")
    (root / "corpus").mkdir()
    (root / "corpus" / "tea.md").write_text("# Tea\n\nGreen tea is brewed at 80 degrees.\n")
    settings = Settings(
        index=str(root / "index"),
        corpus=str(root / "corpus"),
        model="fake-64",
        admin_token="panel-token",
    )
    service.build(settings, replace_all=True)
    yield from _start(settings)


@pytest.mark.browser
def test_admin_panel_uploads_through_the_guarded_route(browser, admin_app, tmp_path) -> None:
    """Gradio's upload request carries the typed token (a cookie); without it, it is refused."""
    url, settings = admin_app
    doc = tmp_path / "coffee.txt"
    doc.write_text("Coffee\n\nCoffee contains caffeine, a mild stimulant.\n")
    tab = Page(browser, url)
    try:
        page = tab.page
        page.locator("#qa-upload").get_by_text("Add documents").click()
        statuses: list[int] = []
        page.on("response", lambda r: statuses.append(r.status) if "/upload" in r.url else None)
        page.locator("#upload-token input").fill("panel-token")
        page.locator("#upload-files input[type=file]").set_input_files(str(doc))
        page.wait_for_function(
            "() => document.querySelector('#upload-files').innerText.includes('coffee')"
        )
        page.locator("#upload-add").click()
        status = page.locator("#upload-status textarea")
        page.wait_for_function(
            "() => document.querySelector('#upload-status textarea').value.length > 0"
        )
        assert status.input_value().startswith("added 1 document"), status.input_value()
        assert statuses and all(s == 200 for s in statuses)
        assert (settings.corpus_dir / "uploads" / "coffee.txt").exists()
    finally:
        tab.context.close()
