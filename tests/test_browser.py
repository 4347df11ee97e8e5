"""End-to-end: the running chat in headless Chromium (Debian's ``chromium``), and the named API.

The app runs in this process on a free port on 127.0.0.1: one server over the real corpus with
the bundled model, others with the fake embedder (a hostile document; tests/data/docs with
thresholds chosen to force each answer tier). Screenshots go to ``tests/artifacts/``; with
CHATBOT_UPDATE_DOCS=1 the answered chat also goes to ``docs/chat.png`` (desktop) and
``docs/chat-phone.png`` (390×844).
"""

from __future__ import annotations

import contextlib
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
DOCS_PHONE_SCREENSHOT = PROJECT_ROOT / "docs" / "chat-phone.png"
FAKE_DOCS = Path(__file__).parent / "data" / "docs"
DESKTOP = {"width": 1000, "height": 880}
PHONE = {"width": 390, "height": 844}
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

    def __init__(self, browser, url: str, viewport: dict[str, int] = DESKTOP) -> None:
        self.url = url
        self.context = browser.new_context(viewport=viewport)
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
        self.settle()
        return self.cards().nth(before)

    def settle(self) -> None:
        """Wait two animation frames, so layout and scrolling after an update are done."""
        self.page.evaluate(
            "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )

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
def real_page_phone(browser, real_app) -> Iterator[Page]:
    page = Page(browser, real_app[0], PHONE)
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
def test_shipped_examples_are_the_ones_the_corpus_answers(real_page: Page, real_retriever) -> None:
    from chatbot.app import read_examples

    shipped = read_examples(PROJECT_ROOT / "examples.txt", 2000)
    answered = [q for q in shipped if real_retriever.ask(q, k=1).tier == "answer"]
    shown = real_page.page.locator("#chat button.example")
    assert [t.strip() for t in shown.all_inner_texts()] == answered
    assert not any(t.startswith("What do the documents say about") for t in shipped)


@pytest.mark.browser
def test_phone_layout_one_scroll_area_and_reply_start_in_view(real_page_phone: Page) -> None:
    tab = real_page_phone
    page = tab.page
    box = page.locator("#question textarea")
    assert page.evaluate("scrollY") == 0
    _assert_in_view(page, box, "the question box at load")
    for i, question in enumerate([BONES_Q, "Which foods contain vitamin K2?", BONES_Q]):
        card = tab.ask(question)
        start = card.locator(".qa-possible-msg, .qa-meta, .qa-abstain-msg").first
        _assert_in_view(page, start, f"the start of reply {i + 1}")
        if i == 0:
            shot = tab.screenshot("chat_phone.png")
            if os.environ.get("CHATBOT_UPDATE_DOCS"):  # `make screenshot` refreshes the README
                shutil.copyfile(shot, DOCS_PHONE_SCREENSHOT)
    assert page.evaluate("scrollY") > 0  # the page itself scrolled to the reply
    _assert_in_view(page, box, "the question box after answering")
    _assert_question_row_on_top(page)
    _assert_one_scroll_area(page)
    _assert_toggles_readable(page)


@pytest.mark.browser
def test_desktop_layout_one_scroll_area(real_page: Page) -> None:
    page = real_page.page
    for question in [BONES_Q, "What is vitamin K2 also called?", "Which foods contain vitamin K2?"]:
        card = real_page.ask(question)
        _assert_in_view(page, card.locator(".qa-meta, .qa-abstain-msg").first, question)
    _assert_in_view(page, page.locator("#question textarea"), "the question box")
    _assert_one_scroll_area(page)
    _assert_toggles_readable(page)


# ------------------------------------------------------------------ layout checks


def _assert_in_view(page, locator, what: str) -> None:
    """``locator`` lies wholly on screen, and not under the question row pinned at the bottom."""
    box = locator.bounding_box()
    assert box is not None, what
    height = page.viewport_size["height"]
    row = page.locator("#qa-input").bounding_box()
    bottom = height if locator.evaluate("e => !!e.closest('#qa-input')") else row["y"]
    assert box["y"] >= 0 and box["y"] + box["height"] <= bottom + 0.5, (what, box, row)
    # and nothing covers it: what is drawn at its corners and centre is the element itself
    for fx, fy in ((0.5, 0.5), (0.05, 0.1), (0.95, 0.1), (0.05, 0.9), (0.95, 0.9)):
        x, y = box["x"] + fx * box["width"], box["y"] + fy * box["height"]
        on_top = "(e, p) => e.contains(document.elementFromPoint(p[0], p[1]))"
        assert locator.evaluate(on_top, [x, y]), (what, "covered at", fx, fy)


def _assert_question_row_on_top(page) -> None:
    """The pinned question row is drawn over the chat: a reply's buttons scrolled under the
    question box never show through it."""
    covered = page.evaluate(
        """() => {
             const row = document.querySelector('#qa-input');
             const box = document.querySelector('#question textarea').getBoundingClientRect();
             const out = [];
             for (const b of document.querySelectorAll('#chat .message-buttons-left button, '
                                                       + '#chat button[aria-label="Like"]')) {
               const r = b.getBoundingClientRect();
               scrollBy(0, r.top + r.height / 2 - (box.top + box.height / 2));
               const r2 = b.getBoundingClientRect();
               const x = r2.left + r2.width / 2, y = r2.top + r2.height / 2;
               if (x < box.left || x > box.right) continue;
               const row2 = row.getBoundingClientRect();
               if (y < row2.top || y > row2.bottom) continue;
               if (!row.contains(document.elementFromPoint(x, y))) out.push(b.outerHTML);
             }
             return out;
           }"""
    )
    assert covered == []


def _assert_one_scroll_area(page) -> None:
    """Nothing scrolls but the page: no element has content hidden behind its own scrollbar."""
    scrollers = page.evaluate(
        """() => [...document.querySelectorAll('*')].filter(e => {
             const s = getComputedStyle(e);
             return /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 1;
           }).map(e => `${e.tagName}#${e.id}.${e.className}`)"""
    )
    assert scrollers == []
    assert page.evaluate("document.scrollingElement.scrollHeight > innerHeight")


def _rgb(css: str) -> tuple[float, float, float, float]:
    """A computed CSS colour ("rgb(…)", "rgba(…)" or "color(srgb …)") as 0–255 RGB and alpha."""
    nums = [float(n) for n in re.findall(r"[\d.]+", css)]
    rgb = [n * 255 for n in nums[:3]] if css.startswith("color(") else nums[:3]
    alpha = nums[3] if len(nums) > 3 else 1.0
    return rgb[0], rgb[1], rgb[2], alpha


def _luminance(rgb: tuple[float, float, float]) -> float:
    def channel(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(color: str, backgrounds: list[str]) -> float:
    """WCAG contrast of text ``color`` over ``backgrounds`` (innermost first, blended)."""
    base = (255.0, 255.0, 255.0)
    for bg in reversed(backgrounds):
        r, g, b, a = _rgb(bg)
        base = tuple(a * c + (1 - a) * p for c, p in zip((r, g, b), base, strict=True))
    r, g, b, a = _rgb(color)
    fg = tuple(a * c + (1 - a) * p for c, p in zip((r, g, b), base, strict=True))
    hi, lo = sorted((_luminance(fg), _luminance(base)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_contrast_formula() -> None:
    assert contrast("rgb(0, 0, 0)", ["rgb(255, 255, 255)"]) == pytest.approx(21.0)
    assert contrast("rgb(119, 119, 119)", []) == pytest.approx(4.48, abs=0.01)
    assert contrast("rgba(0, 0, 0, 0)", ["rgba(0, 0, 0, 0)"]) == pytest.approx(1.0)


def _assert_toggles_readable(page) -> None:
    """Every "More passages" / "Nearest passages" toggle has text contrast of at least 4.5:1."""
    styles = page.evaluate(
        """() => [...document.querySelectorAll('#chat .qa-card details > summary')].map(s => {
             const bgs = [];
             for (let e = s; e; e = e.parentElement) bgs.push(getComputedStyle(e).backgroundColor);
             return {text: s.innerText, color: getComputedStyle(s).color, bgs};
           })"""
    )
    assert styles
    for style in styles:
        ratio = contrast(style["color"], style["bgs"])
        assert ratio >= 4.5, (style["text"], ratio, style)


# ------------------------------------------------------------------ tiers, follow-ups, examples

CALCIUM_Q = "How much calcium do adults need per day?"
OFF_TOPIC_Q = "Who won the 1998 world cup final?"
# (threshold, possible_threshold) that force each tier for any question.
TIER_THRESHOLDS = {"answer": (0.0, 0.0), "possible": (1.01, 0.0), "none": (1.01, 1.01)}


@pytest.fixture(scope="module")
def fake_chat(tmp_path_factory: pytest.TempPathFactory):
    """Start a chat over tests/data/docs with the fake embedder, once per settings change.

    Its examples file holds an off-topic question and an answered one; the answer threshold
    lies between their confidences (the fake embedder's numbers mean nothing by themselves),
    so the first is a "possible" answer and the second an answer.
    """
    from chatbot import service

    root = tmp_path_factory.mktemp("fake")
    shutil.copytree(FAKE_DOCS, root / "corpus")
    (root / "examples.txt").write_text(f"{OFF_TOPIC_Q}\n\n{CALCIUM_Q}\n", encoding="utf-8")
    base = Settings(
        index=str(root / "index"),
        corpus=str(root / "corpus"),
        examples=str(root / "examples.txt"),
        model="fake-64",
        possible_threshold=0.0,
    )
    service.build(base, replace_all=True)
    retriever = service.open_retriever(base)
    off, on = (retriever.ask(q).confidence for q in (OFF_TOPIC_Q, CALCIUM_Q))
    assert on > off
    base = replace(base, threshold=(on + off) / 2)
    apps: dict[tuple, tuple[str, Settings]] = {}
    with contextlib.ExitStack() as stack:

        def start(**changes: object) -> tuple[str, Settings]:
            key = tuple(sorted(changes.items()))
            if key not in apps:
                server = _start(replace(base, **changes))
                apps[key] = next(server)
                stack.callback(server.close)  # closes the app
            return apps[key]

        yield start


@pytest.fixture
def tab(browser):
    """Open pages with ``tab(url)``; all are closed after the test."""
    tabs: list[Page] = []

    def open_tab(url: str, viewport: dict[str, int] = DESKTOP) -> Page:
        tabs.append(Page(browser, url, viewport))
        return tabs[-1]

    yield open_tab
    for t in tabs:
        t.context.close()


@pytest.mark.browser
@pytest.mark.parametrize("tier", list(TIER_THRESHOLDS))
def test_each_tier_on_one_confidence_scale(fake_chat, tab, tier: str) -> None:
    from chatbot import service
    from chatbot.app import POSSIBLE_MESSAGE, Scale, chat_k

    threshold, possible = TIER_THRESHOLDS[tier]
    url, settings = fake_chat(threshold=threshold, possible_threshold=possible)
    retriever = service.open_retriever(settings)
    expected = retriever.ask(CALCIUM_Q, k=chat_k(settings))
    assert expected.tier == tier and len(expected.hits) == 3
    scale = Scale.of(retriever)
    page = tab(url)
    card = page.ask(CALCIUM_Q)

    # Every number is a passage's own confidence, worded from the tier thresholds, and the
    # tooltip and the note under the box say what it means; the ranking score never shows.
    labels = [f"{scale.words(h.confidence)} {h.confidence:.2f}" for h in expected.hits]
    badges = card.locator(".qa-badge")
    assert badges.all_text_contents() == labels
    assert set(badges.evaluate_all("bs => bs.map(b => b.title)")) == {scale.legend()}
    assert scale.legend() in page.page.locator("#qa-note").inner_text()
    text = card.text_content()
    for hit in expected.hits:
        if f"{hit.score:.2f}" not in " ".join(labels):
            assert f"{hit.score:.2f}" not in text

    quotes = card.locator(".qa-quote")
    top = quotes.first
    css = card.get_attribute("class")
    if tier == "answer":
        assert "qa-answered" in css and top.is_visible()
        assert card.locator("mark").count() == 1 and card.locator(".qa-possible-msg").count() == 0
    elif tier == "possible":
        assert "qa-possible" in css
        msg = card.locator(".qa-possible-msg")
        assert msg.is_visible() and msg.inner_text() == POSSIBLE_MESSAGE
        assert top.is_visible() and top.inner_text() == expected.hits[0].text  # not collapsed
        assert card.locator(".qa-source").first.is_visible()
        assert ABSTAIN_MESSAGE not in text
    else:
        assert "qa-abstained" in css
        assert card.locator(".qa-abstain-msg").inner_text() == ABSTAIN_MESSAGE
        assert not top.is_visible()  # the nearest passages start collapsed
        card.locator("details.qa-nearest summary").click()
        assert top.is_visible() and card.locator("mark").count() == 0
    if tier != "none":
        more = card.locator("details.qa-more")
        assert more.locator("summary").inner_text() == "More passages (2)"
        assert not quotes.nth(1).is_visible()
        more.locator("summary").click()
    assert quotes.all_inner_texts() == [h.text for h in expected.hits]
    _assert_toggles_readable(page.page)
    page.screenshot(f"chat_tier_{tier}.png")


@pytest.mark.browser
def test_follow_ups_combine_with_the_previous_question_only(fake_chat, tab) -> None:
    url, _ = fake_chat()
    page = tab(url)
    first = page.ask("How much calcium do adults need?")
    second = page.ask("and in children?")
    third = page.ask("what about tea?")
    assert first.locator(".qa-query").count() == 0
    searched = [c.locator(".qa-query-text").inner_text() for c in (second, third)]
    assert searched == [
        "How much calcium do adults need? and in children?",
        "and in children? what about tea?",
    ]


@pytest.mark.browser
def test_examples_are_only_questions_answered_in_the_answer_tier(fake_chat, tab) -> None:
    page = tab(fake_chat()[0])
    examples = page.page.locator("#chat button.example")
    assert [t.strip() for t in examples.all_inner_texts()] == [CALCIUM_Q]
    nothing_answered = tab(fake_chat(threshold=1.01)[0])
    assert nothing_answered.page.locator("#chat button.example").count() == 0
    assert nothing_answered.page.locator("#chat .placeholder").is_visible()


@pytest.mark.browser
def test_copy_example_and_clear(fake_chat, tab) -> None:
    tab_ = tab(fake_chat()[0])
    page = tab_.page
    examples = page.locator("#chat button.example")
    examples.first.click()
    page.wait_for_selector("#chat .qa-card")
    card = tab_.cards().first
    quote = card.locator(".qa-quote").first.inner_text()
    card.locator(".qa-copy").click()
    clip = page.evaluate("navigator.clipboard.readText()")
    assert clip.startswith(f"“{quote}”\n— ")
    assert re.search(r"\((strong|moderate) match [01]\.\d\d\)$", clip)
    page.locator("#clear").click()
    page.wait_for_function("document.querySelectorAll('#chat .qa-card').length === 0")
    assert page.locator("#chat button.example").count() == 1


TOO_LONG = "Your question is 5,000 characters; the limit is 2,000. Please shorten it."


def _visible_errors(page) -> list[str]:
    """Gradio's error toasts and the red "Error" overlays it puts on a failed event's outputs."""
    return page.evaluate(
        """() => [...document.querySelectorAll('.error, .toast-body')]
             .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden'
                          && e.textContent.trim())
             .map(e => e.className + ': ' + e.textContent.trim().slice(0, 80))"""
    )


@pytest.mark.browser
def test_over_long_question_gets_one_inline_message_and_no_overlay(fake_chat, tab) -> None:
    page_ = tab(fake_chat()[0])
    page = page_.page
    question = "calcium " * 624 + "calcium?"
    assert len(question) == 5000
    box = page.locator("#question textarea")
    box.fill(question)  # not cut by the box: the whole question reaches the chat
    box.press("Enter")
    notice = page.locator("#chat .qa-notice")
    notice.wait_for()
    page.wait_for_timeout(300)  # time for any error toast or overlay to show
    assert notice.count() == 1 and notice.inner_text() == TOO_LONG
    assert page.locator("#chat .qa-question").count() == 0
    assert box.input_value() == question  # kept in the box, to be shortened
    assert _visible_errors(page) == []

    # Through the API: the same message as an error event, and nothing shows on the page.
    reply = page.evaluate(
        """async (q) => {
             const post = await fetch('gradio_api/call/ask', {
               method: 'POST', headers: {'Content-Type': 'application/json'},
               body: JSON.stringify({data: [q, 3, '']})});
             const {event_id} = await post.json();
             return await (await fetch('gradio_api/call/ask/' + event_id)).text();
           }""",
        question,
    )
    assert reply.startswith("event: error") and TOO_LONG in reply
    assert _visible_errors(page) == []

    # The chat goes on: the next question is answered under the one message.
    card = page_.ask(CALCIUM_Q)
    assert card.locator(".qa-quote").first.is_visible()
    assert notice.count() == 1 and _visible_errors(page) == []
    page_.screenshot("chat_too_long.png")


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
