"""The chat app without a browser: card HTML, escaping, chat turns, feedback log, launch options."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import gradio as gr
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot import app as chat_app
from chatbot import service
from chatbot.config import ABSTAIN_MESSAGE, PROJECT_ROOT, Settings
from chatbot.types import Answer, Hit, Span

HOSTILE = (
    "Before <script>alert(1)</script> and <img src=x onerror=alert(1)> then "
    "[a link](http://example.com), $x^2$, $$y$$, *stars*, `code` & \"quotes\" 'single'."
)


class CardParser(HTMLParser):
    """Collects element tags and the text inside blockquotes and marks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.quotes: list[str] = []
        self.marks: list[str] = []
        self._in_quote = 0
        self._in_mark = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self.tags.append(tag)
        if tag == "blockquote":
            self._in_quote += 1
            self.quotes.append("")
        elif tag == "mark":
            self._in_mark += 1
            self.marks.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "blockquote":
            self._in_quote -= 1
        elif tag == "mark":
            self._in_mark -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_quote:
            self.quotes[-1] += data
        if self._in_mark:
            self.marks[-1] += data


def parse(markup: str) -> CardParser:
    p = CardParser()
    p.feed(markup)
    p.close()
    return p


def make_hit(
    text: str, rank: int = 1, score: float = 0.8, span: Span | None = None, confidence: float = 0.9
) -> Hit:
    return Hit(
        rank=rank,
        passage_id=rank * 10,
        text=text,
        source="docs/hostile <b>.md",
        start=0,
        end=len(text),
        heading="Section <i>one</i>",
        score=score,
        highlight=span or Span(0, len(text)),
        confidence=confidence,
    )


def make_answer(hits: list[Hit], tier: str = "answer", confidence: float = 0.9, **kw) -> Answer:
    answered = tier == "answer"
    return Answer(
        question=kw.pop("question", "what?"),
        answered=answered,
        answer=hits[0].text if answered and hits else ABSTAIN_MESSAGE,
        confidence=confidence,
        hits=hits,
        query=kw.pop("query", ""),
        tier=tier,
    )


SCALE = chat_app.Scale(threshold=0.5, possible=0.25)
BADGE = re.compile(r'<span class="qa-badge[^"]*" title="([^"]*)">([^<]*)</span>')


def badges(card: str) -> list[str]:
    """The badge texts of a card, in order."""
    return [text for _, text in BADGE.findall(card)]


# ------------------------------------------------------------------ card HTML


def test_card_quotes_top_passage_verbatim_with_highlight_source_and_confidence() -> None:
    text = "First sentence here. The best sentence is this one. Last sentence."
    s = text.index("The best")
    e = text.index(" Last")
    hits = [make_hit(text, span=Span(s, e), confidence=0.92)] + [
        make_hit(f"Runner {i} text.", rank=i, score=1.5, confidence=c)
        for i, c in ((2, 0.61), (3, 0.3), (4, 0.07))
    ]
    card = chat_app.render_answer(make_answer(hits, confidence=0.92), SCALE)
    p = parse(card)
    assert p.quotes[0] == text
    assert p.marks[0] == text[s:e]
    assert 'class="qa-card qa-answered"' in card
    assert "docs/hostile &lt;b&gt;.md › Section &lt;i&gt;one&lt;/i&gt;" in card
    assert '<details class="qa-more"><summary>More passages (3)</summary>' in card
    assert p.quotes[1:] == ["Runner 2 text.", "Runner 3 text.", "Runner 4 text."]
    assert len(p.marks) == 1  # only the answer is highlighted
    assert "Copy quote" in card
    assert "<details open" not in card  # runner-ups start collapsed
    # One scale: the answer and each runner-up with its own confidence; never the score.
    assert badges(card) == [
        "strong match 0.92",
        "moderate match 0.61",
        "weak match 0.30",
        "poor match 0.07",
    ]
    assert "1.50" not in card and "relevance" not in card


def test_every_badge_explains_the_number_in_its_tooltip() -> None:
    hits = [make_hit("A.", confidence=0.7), make_hit("B.", rank=2, confidence=0.2)]
    card = chat_app.render_answer(make_answer(hits, confidence=0.7), SCALE)
    titles = [title for title, _ in BADGE.findall(card)]
    assert len(titles) == 2 and len(set(titles)) == 1
    legend = titles[0]
    assert "chance (0 to 1) that the passage beside it answers your question" in legend
    assert "strong from 0.90, moderate from 0.50, weak from 0.25, poor below" in legend
    assert chat_app.esc(SCALE.legend()) == legend
    assert chat_app.esc(SCALE.legend()) in chat_app.note_html(SCALE)


def test_possible_answer_is_shown_expanded_and_marked_to_check() -> None:
    hits = [make_hit("Maybe this <one>.", confidence=0.35, span=Span(0, 5))] + [
        make_hit(f"Other {i}.", rank=i, confidence=0.2) for i in (2, 3)
    ]
    card = chat_app.render_answer(make_answer(hits, tier="possible", confidence=0.35), SCALE)
    p = parse(card)
    assert 'class="qa-card qa-possible"' in card
    assert "May not answer your question — check the passage." in card
    assert card.index("qa-possible-msg") < card.index("qa-quote")
    assert p.quotes[0] == "Maybe this <one>." and "Source: " not in card  # CSS adds "Source:"
    assert "docs/hostile &lt;b&gt;.md › Section" in card
    assert card.index("qa-quote") < card.index("<details")  # the passage itself is not collapsed
    assert '<details class="qa-more"><summary>More passages (2)</summary>' in card
    assert badges(card) == ["weak match 0.35", "poor match 0.20", "poor match 0.20"]
    assert ABSTAIN_MESSAGE not in chat_app.html.unescape(card)


def test_runner_ups_are_capped() -> None:
    hits = [make_hit(f"Passage {i}.", rank=i) for i in range(1, 7)]
    card = chat_app.render_answer(make_answer(hits), SCALE, more=2)
    assert "More passages (2)" in card
    assert len(parse(card).quotes) == 3


def test_hostile_text_is_escaped_everywhere() -> None:
    hit = make_hit(HOSTILE, span=Span(7, 40))
    answer = make_answer([hit], question=HOSTILE, query=f"<b>prev</b> {HOSTILE}")
    card = chat_app.render_answer(answer, SCALE)
    p = parse(card)
    assert p.quotes == [HOSTILE]
    assert set(p.tags) <= {"div", "span", "blockquote", "mark", "button", "p", "q"}
    assert "<script" not in card and "<img" not in card and "<b>" not in card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert "onerror=alert(1)&gt;" in card
    question = chat_app.render_question(HOSTILE)
    assert parse(question).tags == ["div"]
    assert "".join(parse(question).text) == HOSTILE


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("ab <>&\"'/=$*[]()`\\\n\t.é€")), min_size=1, max_size=60
    ),
    tier=st.sampled_from(["answer", "possible"]),
    data=st.data(),
)
def test_quote_round_trips_any_text_exactly(text: str, tier: str, data: st.DataObject) -> None:
    s = data.draw(st.integers(0, len(text) - 1))
    e = data.draw(st.integers(s + 1, len(text)))
    answer = make_answer([make_hit(text, span=Span(s, e))], tier=tier)
    p = parse(chat_app.render_answer(answer, SCALE))
    assert p.quotes == [text]
    assert p.marks == [text[s:e]]


def test_bad_highlight_span_shows_the_passage_without_mark() -> None:
    card = chat_app.render_answer(make_answer([make_hit("Short.", span=Span(3, 99))]), SCALE)
    assert parse(card).quotes == ["Short."]
    assert "<mark" not in card


def test_not_found_shows_message_and_nearest_passages_with_their_confidences() -> None:
    hits = [
        make_hit(f"Weak {i} <x>.", rank=i, score=2.0, confidence=c)
        for i, c in ((1, 0.2), (2, 0.55), (3, 0.05), (4, 0.01))
    ]
    card = chat_app.render_answer(make_answer(hits, tier="none", confidence=0.2), SCALE)
    assert f'<p class="qa-abstain-msg">{chat_app.esc(ABSTAIN_MESSAGE)}</p>' in card
    assert '<details class="qa-nearest"><summary>Nearest passages (3)</summary>' in card
    assert badges(card) == ["poor match 0.20", "moderate match 0.55", "poor match 0.05"]
    assert "<mark" not in card and "Copy quote" not in card and "qa-conf" not in card
    assert "2.00" not in card
    assert parse(card).quotes == ["Weak 1 <x>.", "Weak 2 <x>.", "Weak 3 <x>."]


def test_not_found_without_hits_is_just_the_message() -> None:
    for tier in ("none", "possible", "answer"):  # no passage: nothing to show but the message
        card = chat_app.render_answer(make_answer([], tier=tier, confidence=0.0), SCALE)
        assert parse(card).quotes == []
        assert "".join(parse(card).text) == ABSTAIN_MESSAGE


def test_followup_query_is_shown_only_when_it_differs() -> None:
    hit = make_hit("Text.")
    same = chat_app.render_answer(make_answer([hit], question="q?", query="q?"), SCALE)
    assert "Searched for" not in same
    other = chat_app.render_answer(
        make_answer([hit], question="and <b>?", query="p and <b>?"), SCALE
    )
    assert "Searched for" in other and "p and &lt;b&gt;?" in other


@pytest.mark.parametrize(
    ("confidence", "threshold", "possible", "words"),
    [
        (0.95, 0.5, 0.25, "strong match"),
        (0.9, 0.5, 0.25, "strong match"),
        (0.89, 0.5, 0.25, "moderate match"),
        (0.6, 0.5, 0.25, "moderate match"),
        (0.5, 0.5, 0.25, "moderate match"),
        (0.49, 0.5, 0.25, "weak match"),
        (0.25, 0.5, 0.25, "weak match"),
        (0.24, 0.5, 0.25, "poor match"),
        (0.85, 0.9, 0.6, "weak match"),
        (0.92, 0.9, 0.6, "strong match"),
        (0.3, 0.5, 0.5, "poor match"),  # no possible tier: no "weak" band
    ],
)
def test_confidence_words_follow_the_tiers(
    confidence: float, threshold: float, possible: float, words: str
) -> None:
    assert chat_app.Scale(threshold, possible).words(confidence) == words


def test_legend_names_only_the_bands_that_exist() -> None:
    assert "moderate" not in chat_app.Scale(0.9, 0.6).legend()
    assert "strong from 0.90, weak from 0.60, poor below" in chat_app.Scale(0.9, 0.6).legend()
    assert "weak" not in chat_app.Scale(0.5, 0.5).legend()


def test_scale_of_a_retriever_uses_its_thresholds() -> None:
    class R:
        threshold, possible_threshold = 0.6, 0.3

    assert chat_app.Scale.of(R()) == chat_app.Scale(0.6, 0.3)


def test_answer_payload_is_the_cli_record_plus_query() -> None:
    answer = make_answer([make_hit("Text.")], question="q", query="p q")
    payload = chat_app.answer_payload(answer)
    assert payload == {**answer.to_dict(), "query": "p q"}
    assert json.loads(json.dumps(payload)) == payload


# ------------------------------------------------------------------ feedback log


def test_feedback_appends_one_json_line_per_vote_under_concurrency(tmp_path: Path) -> None:
    path = tmp_path / "index" / chat_app.FEEDBACK_FILE
    turn = {"question": "q <b>", "query": "q <b>", "passage_ids": [3, 1], "answered": True}

    def vote(i: int) -> None:
        record = chat_app.feedback_record(turn, chat_app.vote_name(i % 2 == 0))
        chat_app.append_feedback(path, record)

    threads = [threading.Thread(target=vote, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 40
    records = [json.loads(line) for line in lines]
    assert {r["vote"] for r in records} == {"up", "down"}
    assert all(r["question"] == "q <b>" and r["passage_ids"] == [3, 1] for r in records)
    assert all(r["time"].endswith("+00:00") for r in records)


def test_vote_names() -> None:
    assert chat_app.vote_name(True) == "up"
    assert chat_app.vote_name(False) == "down"
    assert chat_app.vote_name("") == "cleared"
    assert chat_app.vote_name(None) == "cleared"
    assert chat_app.vote_name("Wrong source") == "Wrong source"


# ------------------------------------------------------------------ the app over a fake index


def _api_fn(app: gr.Blocks, name: str):
    fns = [f for f in app.fns.values() if f.api_name == name]
    assert len(fns) == 1, [f.api_name for f in app.fns.values()]
    return fns[0]


def test_build_app_loads_retrieval_once_and_names_the_api(
    fake_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real_open = service.open_retriever
    monkeypatch.setattr(service, "open_retriever", lambda s: calls.append(s) or real_open(s))
    app = chat_app.build_app(fake_index)
    assert isinstance(app, gr.Blocks)
    assert app.title.startswith("Ask the documents · 2 documents, ")
    assert not app.analytics_enabled
    ask = _api_fn(app, chat_app.API_NAME)
    assert ask.api_visibility == "public"
    public = {f.api_name for f in app.fns.values() if f.api_visibility == "public"}
    assert public == {chat_app.API_NAME}  # chat internals are not part of the API
    live = app.live_retriever
    history, state = [], chat_app.new_state()
    for q in ["How hot should the water be for green tea?", "and for black tea?", "calcium?"]:
        history, state, _ = chat_app.chat_turn(live, q, history, state)
    ask.fn("How much calcium do adults need?")
    assert len(calls) == 1


def test_api_returns_cli_record_plus_query_and_supports_followups(fake_index: Settings) -> None:
    app = chat_app.build_app(fake_index)
    ask = _api_fn(app, chat_app.API_NAME).fn
    retriever = app.live_retriever.get()
    q = "How much calcium do adults need per day?"
    out = ask(q)
    expected = retriever.ask(q, k=3).to_dict()
    for passage in expected["passages"]:  # the API names outside documents by file name only
        passage["source"] = chat_app.display_source(passage["source"])
    assert {k: v for k, v in out.items() if k != "query"} == expected
    assert out["query"] == q
    assert out["answered"] and "1000 mg" in out["answer"]
    follow = ask("and what about exercise?", 2, q)
    assert follow["query"] == f"{q} and what about exercise?"
    assert follow["question"] == "and what about exercise?"
    assert len(follow["passages"]) == 2
    with pytest.raises(gr.Error):
        ask(q, 0)
    limit = fake_index.max_question_chars
    with pytest.raises(gr.Error) as refused:
        ask("x" * (limit + 1))
    assert refused.value.message == chat_app.too_long_message(limit + 1, limit)


def test_chat_turn_renders_escaped_history_and_records_turns(fake_index: Settings) -> None:
    live = service.LiveRetriever(fake_index)
    q1 = "  How much calcium do adults need per day?  "
    history, state, answer = chat_app.chat_turn(live, q1, [], chat_app.new_state())
    assert answer is not None and answer.answered
    assert [m["role"] for m in history] == ["user", "assistant"]
    assert parse(history[1]["content"]).quotes[0] == answer.hits[0].text
    turn = state["turns"]["1"]
    assert turn["question"] == q1.strip()
    assert turn["passage_ids"] == [h.passage_id for h in answer.hits]
    assert turn["passages"][0]["source"] == answer.hits[0].source
    history, state, follow = chat_app.chat_turn(live, "and in children?", history, state)
    assert follow is not None and follow.query == f"{q1.strip()} and in children?"
    assert "Searched for" in history[3]["content"]
    assert set(state["turns"]) == {"1", "3"}
    hostile = "<img src=x onerror=alert(1)> [x](http://e.com) $x^2$ calcium"
    history, state, _ = chat_app.chat_turn(live, hostile, history, state)
    assert history[4]["content"] == f'<div class="qa-question">{chat_app.esc(hostile)}</div>'
    assert "<img" not in history[5]["content"]
    # Blank input changes nothing.
    same, same_state, none = chat_app.chat_turn(live, "   ", history, state)
    assert none is None and same == history and same_state["turns"] == state["turns"]


@pytest.mark.parametrize(
    ("threshold", "possible", "tier", "css"),
    [
        (0.0, 0.0, "answer", "qa-answered"),
        (1.01, 0.0, "possible", "qa-possible"),
        (1.01, 1.01, "none", "qa-abstained"),
    ],
)
def test_chat_turn_renders_the_tier_the_thresholds_give(
    fake_index: Settings, threshold: float, possible: float, tier: str, css: str
) -> None:
    settings = replace(fake_index, threshold=threshold, possible_threshold=possible)
    live = service.LiveRetriever(settings)
    history, state, answer = chat_app.chat_turn(live, "Who won the 1998 world cup?", [], None)
    assert answer is not None and answer.tier == tier and answer.answered == (tier == "answer")
    card = history[1]["content"]
    assert f'class="qa-card {css}"' in card
    assert state["turns"]["1"]["tier"] == tier
    assert (chat_app.esc(ABSTAIN_MESSAGE) in card) == (tier == "none")
    assert (chat_app.POSSIBLE_MESSAGE in card) == (tier == "possible")
    expected = [
        f"{chat_app.Scale.of(live.get()).words(h.confidence)} {h.confidence:.2f}"
        for h in answer.hits[:3]
    ]
    assert badges(card) == expected  # every passage shown, with its own confidence


def test_chat_follow_ups_combine_with_the_previous_question_only(fake_index: Settings) -> None:
    live = service.LiveRetriever(fake_index)
    history, state = [], chat_app.new_state()
    queries = []
    for question in ["How much calcium do adults need?", "and in children?", "what about tea?"]:
        history, state, answer = chat_app.chat_turn(live, question, history, state)
        assert answer is not None
        queries.append(answer.query)
    assert queries == [
        "How much calcium do adults need?",
        "How much calcium do adults need? and in children?",
        "and in children? what about tea?",  # not the whole chain
    ]
    assert state["last_question"] == "what about tea?"


def test_over_long_question_gets_one_inline_message_and_no_answer(fake_index: Settings) -> None:
    live = service.LiveRetriever(replace(fake_index, max_question_chars=100))
    history, state, _ = chat_app.chat_turn(live, "How much calcium?", [], None)
    question = "calcium " * 625  # 5,000 characters less the final space
    longer, after, answer = chat_app.chat_turn(live, question, history, state)
    assert answer is None
    assert longer[:2] == history and len(longer) == 3
    assert longer[2] == {
        "role": "assistant",
        "content": '<div class="qa-notice">Your question is 4,999 characters; the limit is 100. '
        "Please shorten it.</div>",
    }
    assert after["last_question"] == "How much calcium?" and after["turns"] == state["turns"]
    # The next follow-up still leans on the last question actually asked.
    _, _, follow = chat_app.chat_turn(live, "and in children?", longer, after)
    assert follow is not None and follow.query == "How much calcium? and in children?"


def test_over_long_question_stays_in_the_box(fake_index: Settings) -> None:
    app = chat_app.build_app(replace(fake_index, max_question_chars=100))
    respond = next(f for f in app.fns.values() if f.name == "respond").fn
    box, history, _ = respond("x" * 101, [], chat_app.new_state())
    assert box == "x" * 101 and len(history) == 1
    box, history, _ = respond("How much calcium?", [], chat_app.new_state())
    assert box == "" and len(history) == 2


def test_header_and_title_describe_the_corpus(fake_index: Settings) -> None:
    live = service.LiveRetriever(fake_index)
    docs, passages = chat_app.corpus_counts(live)
    assert docs == 2 and passages == len(live.get().index.passages)
    header = chat_app.header_html(live)
    assert f"{docs} documents" in header and f"{passages} passage" in header
    assert "Bone health" in header and "Green Tea" in header
    assert f"{docs} documents, {passages} passage" in chat_app.page_title(live)


def test_examples_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "examples.txt"
    path.write_text("  How much  calcium?\n\n# a comment\n" + "x" * 30 + "\nWhy?\n")
    assert chat_app.read_examples(path, 20) == ["How much calcium?", "Why?"]
    assert chat_app.read_examples(tmp_path / "missing.txt", 20) == []
    path.write_bytes(b"\xff\xfe\x00bad")
    assert chat_app.read_examples(path, 20) == []


ANSWERED = "How much calcium do adults need per day?"
OFF_TOPIC = "Who won the 1998 world cup final?"


def test_examples_are_the_questions_the_index_answers(fake_index: Settings, tmp_path: Path) -> None:
    path = tmp_path / "examples.txt"
    path.write_text(f"{OFF_TOPIC}\n{ANSWERED}\n")
    conf = {q: service.open_retriever(fake_index).ask(q).confidence for q in (OFF_TOPIC, ANSWERED)}
    assert conf[ANSWERED] > conf[OFF_TOPIC]  # thresholds between them: one tier each
    between = (conf[ANSWERED] + conf[OFF_TOPIC]) / 2
    settings = replace(fake_index, examples=str(path), threshold=between, possible_threshold=0.0)
    live = service.LiveRetriever(settings)
    tiers = {q: live.get().ask(q).tier for q in (OFF_TOPIC, ANSWERED)}
    assert tiers == {OFF_TOPIC: "possible", ANSWERED: "answer"}
    assert chat_app.example_questions(live) == [ANSWERED]  # "possible" is not enough
    never = service.LiveRetriever(replace(settings, threshold=1.01))
    assert chat_app.example_questions(never) == []
    always = service.LiveRetriever(replace(settings, threshold=0.0))
    assert chat_app.example_questions(always) == [OFF_TOPIC, ANSWERED]
    assert chat_app.example_questions(always, limit=1) == [OFF_TOPIC]
    missing = service.LiveRetriever(replace(settings, examples=str(tmp_path / "none.txt")))
    assert chat_app.example_questions(missing) == []


def test_the_shipped_examples_are_not_shown_for_another_corpus(fake_index: Settings) -> None:
    settings = replace(fake_index, examples=str(PROJECT_ROOT / "examples.txt"))
    assert 3 <= len(chat_app.read_examples(settings.examples_path, 2000)) <= 5
    assert chat_app.example_questions(service.LiveRetriever(settings)) == []


def test_no_examples_are_made_from_headings(fake_index: Settings, tmp_path: Path) -> None:
    settings = replace(fake_index, examples=str(tmp_path / "none.txt"), threshold=0.0)
    app = chat_app.build_app(settings)
    chat = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "chat")
    assert not chat.examples


def test_launch_options_bind_locally_without_sharing(fake_index: Settings) -> None:
    live = service.LiveRetriever(fake_index)
    opts = chat_app.launch_options(fake_index, live)
    assert opts["server_name"] == "127.0.0.1" and opts["server_port"] == 7860
    assert opts["share"] is False and opts["mcp_server"] is False
    assert '<meta name="description"' in opts["head"]
    env = {"CHATBOT_HOST": "0.0.0.0", "CHATBOT_PORT": "8123"}
    custom = Settings.from_env(env, index=fake_index.index, model=fake_index.model)
    opts = chat_app.launch_options(custom, live)
    assert (opts["server_name"], opts["server_port"]) == ("0.0.0.0", 8123)


@pytest.mark.slow
def test_serve_queues_with_concurrency_and_launches_with_options(
    fake_index: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    app = chat_app.serve(fake_index, block=False)
    assert seen["share"] is False and seen["server_name"] == "127.0.0.1"
    assert seen["prevent_thread_lock"] is True
    assert app._queue.default_concurrency_limit == chat_app.CONCURRENCY > 1
    assert app._queue.max_size == chat_app.MAX_QUEUE


def test_analytics_are_off() -> None:
    import os

    assert os.environ["GRADIO_ANALYTICS_ENABLED"] == "False"
