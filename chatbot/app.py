"""The browser chat (Gradio): verbatim answer cards, follow-ups, feedback and a named API.

Every piece of document or question text is passed through :func:`html.escape` before it
reaches the page, and the chatbot renders neither Markdown nor LaTeX, so a document holding
``<script>``, ``[links](...)`` or ``$x^2$`` is shown as those literal characters.
Retrieval stays in :mod:`chatbot.retrieval`; this module only formats and routes.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import fcntl
import html
import logging
import os
import shutil
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# No calls home: Gradio reads this when it is imported.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import gradio as gr  # noqa: E402

from . import service  # noqa: E402
from .batchio import json_line  # noqa: E402
from .config import ABSTAIN_MESSAGE, Settings  # noqa: E402
from .conversation import followup_query  # noqa: E402
from .documents import SUPPORTED_SUFFIXES  # noqa: E402
from .guard import COOKIE, AdminGate, UploadGuard, read_admin_token  # noqa: E402
from .microbatch import BatchedAsker  # noqa: E402
from .service import LiveRetriever  # noqa: E402
from .types import Answer, Hit  # noqa: E402

log = logging.getLogger(__name__)

API_NAME = "ask"  # the named Gradio endpoint: client.predict(question, api_name="/ask")
FEEDBACK_FILE = "feedback.jsonl"
STRONG = 0.9  # confidence from which a match is called "strong"
MAX_EXAMPLES = 5  # example questions shown at most
MAX_API_K = 20
CONCURRENCY = 4  # requests handled at once per process besides batched questions
MAX_QUEUE = 64
NOTE = (
    "Answers are exact quotes from the documents listed above, not medical advice. "
    "Check the source, and talk to a clinician about your own situation."
)

_feedback_lock = threading.Lock()


# ---------------------------------------------------------------- card HTML (pure functions)


def esc(text: str) -> str:
    """Escape text for HTML (quotes included), so it is shown literally, never as markup."""
    return html.escape(text, quote=True)


@dataclass(frozen=True)
class Scale:
    """The one scale every number in the chat is on: a passage's confidence (the calibrated
    chance that it answers the question), worded from the same bounds as the tiers."""

    threshold: float = Settings.threshold  # the answer tier
    possible: float = Settings.possible_threshold  # the possible tier

    @classmethod
    def of(cls, retriever: Any) -> Scale:
        """The scale of a retriever's tiers."""
        return cls(retriever.threshold, min(retriever.possible_threshold, retriever.threshold))

    def words(self, confidence: float) -> str:
        """ "strong match" (at least ``STRONG`` and the answer tier), "moderate match" (the rest
        of the answer tier), "weak match" (the possible tier) or "poor match" (below it)."""
        if confidence >= self.threshold:
            return "strong match" if confidence >= max(STRONG, self.threshold) else "moderate match"
        if confidence >= self.possible:
            return "weak match"
        return "poor match"

    def legend(self) -> str:
        """What every number means, and where its words change."""
        strong = max(STRONG, self.threshold)
        bands = [f"strong from {strong:.2f}"]
        if strong > self.threshold:
            bands.append(f"moderate from {self.threshold:.2f}")
        if self.possible < self.threshold:
            bands.append(f"weak from {self.possible:.2f}")
        bands.append("poor below")
        return (
            "Each number is the estimated chance (0 to 1) that the passage beside it answers "
            f"your question: {', '.join(bands)}."
        )

    def badge(self, confidence: float, extra: str = "") -> str:
        """A confidence as a badge ("strong match 0.91"), with the legend as its tooltip."""
        words = self.words(confidence)
        classes = " ".join(c for c in ("qa-badge", extra, "qa-" + words.split()[0]) if c)
        return (
            f'<span class="{classes}" title="{esc(self.legend())}">'
            f"{esc(f'{words} {confidence:.2f}')}</span>"
        )


def display_source(source: str) -> str:
    """A document's name as shown on the page: an absolute (server) path shows only its
    file name, so the page never reveals where files live on the server."""
    return os.path.basename(source) if os.path.isabs(source) else source


KIND_LABELS = {"front": "front matter", "references": "reference list", "caption": "caption"}


def source_label(hit: Hit) -> str:
    """Plain-text source line: file, page (if any), section heading, and what the passage
    is when it is not body text (a caption, front matter, a reference list)."""
    label = display_source(hit.source)
    if hit.page is not None:
        label += f", p. {hit.page}"
    if hit.heading:
        label += f" › {hit.heading}"
    if hit.kind in KIND_LABELS:
        label += f" ({KIND_LABELS[hit.kind]})"
    return label


def quote_html(hit: Hit, highlight: bool = True) -> str:
    """The passage verbatim, escaped, with its best-matching sentence in ``<mark>``."""
    text = hit.text
    s, e = hit.highlight.start, hit.highlight.end
    if not highlight or not 0 <= s < e <= len(text):
        return f'<blockquote class="qa-quote">{esc(text)}</blockquote>'
    return (
        f'<blockquote class="qa-quote">{esc(text[:s])}<mark class="qa-hl">{esc(text[s:e])}</mark>'
        f"{esc(text[e:])}</blockquote>"
    )


def _meta(badge: str, hit: Hit) -> str:
    return (
        f'<div class="qa-meta">{badge}<span class="qa-source">{esc(source_label(hit))}</span></div>'
    )


def _passage_list(hits: list[Hit], summary: str, css: str, scale: Scale) -> str:
    """Passages collapsed under ``summary``, each with its own confidence, none highlighted."""
    if not hits:
        return ""
    blocks = "".join(
        f'<div class="qa-passage">{_meta(scale.badge(h.confidence), h)}'
        f"{quote_html(h, highlight=False)}</div>"
        for h in hits
    )
    head = f"<summary>{esc(summary)} ({len(hits)})</summary>"
    return f'<details class="{css}">{head}{blocks}</details>'


def render_question(question: str) -> str:
    """The user's message, escaped."""
    return f'<div class="qa-question">{esc(question)}</div>'


CARD_CLASS = {"answer": "qa-answered", "possible": "qa-possible", "none": "qa-abstained"}
POSSIBLE_MESSAGE = "May not answer your question — check the passage."


def render_answer(answer: Answer, scale: Scale, more: int = 3) -> str:
    """The answer card for the answer's tier; every number on it is a passage's confidence.

    * ``"answer"``: the top passage with its key sentence highlighted, source and badge;
      runner-ups (at most ``more``) collapsed under "More passages", each with its own badge.
    * ``"possible"``: the top passage shown the same way under "May not answer your
      question — check the passage", runner-ups collapsed.
    * ``"none"``: "I couldn't find that in the documents." and the nearest passages
      collapsed, each with its own badge, none highlighted.

    The ranking score (``Hit.score``) is never shown.
    """
    tier = answer.tier if answer.hits else "none"
    parts = [f'<div class="qa-card {CARD_CLASS.get(tier, "qa-abstained")}">']
    if answer.query and answer.query.strip() != answer.question.strip():
        parts.append(
            f'<p class="qa-query">Searched for <q class="qa-query-text">{esc(answer.query)}</q></p>'
        )
    if tier in ("answer", "possible"):
        top = answer.hits[0]
        if tier == "possible":
            parts.append(f'<p class="qa-possible-msg">{esc(POSSIBLE_MESSAGE)}</p>')
        parts.append(_meta(scale.badge(answer.confidence, "qa-conf"), top))
        parts.append(quote_html(top))
        parts.append(
            '<div class="qa-actions"><button type="button" class="qa-copy" '
            'title="Copy the quote, its source and the match">Copy quote</button></div>'
        )
        rest = answer.hits[1 : 1 + more]
        parts.append(_passage_list(rest, "More passages", "qa-more", scale))
    else:
        parts.append(f'<p class="qa-abstain-msg">{esc(ABSTAIN_MESSAGE)}</p>')
        nearest = answer.hits[:more]
        parts.append(_passage_list(nearest, "Nearest passages", "qa-nearest", scale))
    parts.append("</div>")
    return "".join(parts)


def answer_payload(answer: Answer) -> dict[str, Any]:
    """``chatbot ask``'s JSON record for one answer, plus the retrieval query used.

    A document outside the project is named by its file name only (:func:`display_source`):
    the API answers over the network and never reveals where files live on the server.
    """
    record = answer.to_dict(query=True)
    for passage in record["passages"]:
        passage["source"] = display_source(passage["source"])
    return record


# ---------------------------------------------------------------- feedback log


def feedback_path(settings: Settings) -> Path:
    return settings.index_dir / FEEDBACK_FILE


def append_feedback(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON object as a line, under a thread lock and an exclusive file lock."""
    line = json_line(record)  # one line per record, whatever the text holds
    path.parent.mkdir(parents=True, exist_ok=True)
    with _feedback_lock, open(path, "a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.write(line)
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def vote_name(liked: bool | str | None) -> str:
    """Gradio's like value as a vote: "up", "down", "cleared" or the custom option."""
    if liked is True:
        return "up"
    if liked is False:
        return "down"
    return str(liked) if liked else "cleared"


def feedback_record(turn: dict[str, Any], vote: str) -> dict[str, Any]:
    """The JSON object logged for one vote on one answered turn."""
    return {
        "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "vote": vote,
        **turn,
    }


# ---------------------------------------------------------------- chat turns


def new_state() -> dict[str, Any]:
    """Per-session chat state: the last question asked and a record per answer message."""
    return {"last_question": None, "turns": {}}


def chat_k(settings: Settings) -> int:
    """Passages fetched for a chat turn: the top one plus two or three runner-ups."""
    return min(max(settings.k, 3), 4)


def too_long_message(length: int, limit: int) -> str:
    """What a question over ``limit`` characters gets instead of an answer."""
    return f"Your question is {length:,} characters; the limit is {limit:,}. Please shorten it."


def render_notice(text: str) -> str:
    """A one-line message from the chat itself (not a passage), escaped."""
    return f'<div class="qa-notice">{esc(text)}</div>'


def chat_turn(
    live: LiveRetriever,
    question: str,
    history: list[dict[str, Any]] | None,
    state: dict[str, Any] | None,
    asker: BatchedAsker | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], Answer | None]:
    """Answer one chat message: returns the new history, the new state and the answer.

    A follow-up is searched together with the previous *question* as typed (never with the
    previous search text, so follow-ups do not chain). A question over
    ``settings.max_question_chars`` gets one inline message and no answer (None), as does a
    blank one (which adds nothing). ``asker`` answers it together with concurrent questions
    (default: on its own).
    """
    history = list(history or [])
    state = dict(state or new_state())
    state["turns"] = dict(state.get("turns") or {})
    question = (question or "").strip()
    if not question:
        return history, state, None
    limit = live.settings.max_question_chars
    if len(question) > limit:
        notice = render_notice(too_long_message(len(question), limit))
        history.append({"role": "assistant", "content": notice})
        return history, state, None
    query = followup_query(question, state.get("last_question"))
    retriever = live.get()
    answer = (asker or retriever).ask(question, k=chat_k(live.settings), query=query)
    history.append({"role": "user", "content": render_question(question)})
    history.append({"role": "assistant", "content": render_answer(answer, Scale.of(retriever))})
    state["last_question"] = question
    state["turns"][str(len(history) - 1)] = {
        "answer_id": uuid.uuid4().hex[:16],  # several votes on one answer share this id
        "question": question,
        "query": answer.query or query,
        "answered": answer.answered,
        "tier": answer.tier,
        "confidence": round(float(answer.confidence), 4),
        "passage_ids": [h.passage_id for h in answer.hits],
        "passages": [
            {"id": h.passage_id, "source": h.source, "start": h.start, "end": h.end}
            for h in answer.hits
        ],
        "index_generation": retriever.index.manifest.get("generation", ""),
    }
    log.info("question tier=%s confidence=%.3f", answer.tier, answer.confidence)
    return history, state, answer


def check_api_input(question: str, k: Any, previous: str, limit: int) -> int:
    """Validate one ``/ask`` call; returns ``k`` as an int, or raises ValueError naming the fix."""
    if len(question) > limit:
        raise ValueError(too_long_message(len(question), limit))
    if len(previous) > limit:
        raise ValueError(
            f"previous is {len(previous):,} characters; the limit is {limit:,}. "
            "Pass the previous question only."
        )
    whole = isinstance(k, int) or (isinstance(k, float) and k.is_integer())
    if isinstance(k, bool) or not whole or not 1 <= int(k) <= MAX_API_K:
        raise ValueError(f"k must be a whole number from 1 to {MAX_API_K}, not {k!r}")
    return int(k)


def corpus_counts(live: LiveRetriever) -> tuple[int, int]:
    """(documents, passages) in the loaded index."""
    index = live.get().index
    return len(index.documents), len(index.passages)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def page_title(live: LiveRetriever) -> str:
    docs, passages = corpus_counts(live)
    return f"Ask the documents · {_plural(docs, 'document')}, {_plural(passages, 'passage')}"


def description(live: LiveRetriever) -> str:
    """Plain-text description of the loaded corpus (for the page header and meta tag)."""
    docs, passages = corpus_counts(live)
    return (
        f"Answers are verbatim passages from {_plural(docs, 'document')} "
        f"({_plural(passages, 'passage')}), or an honest “not found”."
    )


def header_html(live: LiveRetriever, shown: int = 5) -> str:
    """Page header: what is loaded (counts and document titles), escaped."""
    index = live.get().index
    names = [d.title.strip() or display_source(d.source) for d in index.documents.values()]
    items = "".join(f"<li>{esc(n)}</li>" for n in names[:shown])
    if len(names) > shown:
        items += f"<li>… and {len(names) - shown} more</li>"
    return (
        '<div class="qa-header"><h1>Ask the documents</h1>'
        f'<p class="qa-desc">{esc(description(live))}</p>'
        f'<ul class="qa-docs">{items}</ul></div>'
    )


def note_html(scale: Scale) -> str:
    """The note under the question box: what the numbers mean, and that answers are quotes."""
    return f'<p class="qa-note">{esc(scale.legend())} {esc(NOTE)}</p>'


def read_examples(path: Path, max_chars: int) -> list[str]:
    """The questions of an examples file: one a line, blank lines and ``#`` comments skipped,
    none longer than ``max_chars``; a missing or unreadable file gives none."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("examples file %s not read: %s", path, exc)
        return []
    questions = [" ".join(line.split()) for line in lines]
    return [q for q in questions if q and not q.startswith("#") and len(q) <= max_chars]


def example_questions(live: LiveRetriever, limit: int = MAX_EXAMPLES) -> list[str]:
    """The questions of ``settings.examples`` that the loaded index answers in the "answer"
    tier (at most ``limit``, in file order); for another corpus that is usually none."""
    settings = live.settings
    questions = read_examples(settings.examples_path, settings.max_question_chars)
    if not questions:
        return []
    try:
        answers = live.get().ask_many(questions, k=1)
    except Exception:  # noqa: BLE001 - examples are a nicety, never a reason to fail
        log.warning("example questions not checked", exc_info=True)
        return []
    answered = [q for q, a in zip(questions, answers, strict=True) if a.tier == "answer"]
    return answered[:limit]


# ---------------------------------------------------------------- document upload (admin)

UPLOAD_FOLDER = "uploads"  # under settings.corpus_dir
WRONG_TOKEN = "Wrong admin token: nothing was added."


def _upload_path(item: Any) -> Path:
    """The temp file Gradio saved an upload to (a path string or a file-like wrapper)."""
    for attr in ("path", "name"):
        value = getattr(item, attr, None)
        if isinstance(value, str) and value:
            return Path(value)
    return Path(str(item))


def upload_documents(
    settings: Settings,
    token: str | None,
    files: list[Any] | None,
    gate: AdminGate | None = None,
) -> str:
    """Store uploaded files under ``corpus/uploads/`` and index them; return a one-line result.

    Only with the right admin token (``gate``: compared in constant time, slowed down after
    wrong tokens). Names are sanitised by :func:`service.safe_upload_name`; files over
    ``settings.max_file_mb`` or of an unsupported type are refused, each with its reason;
    every good file is indexed. Gradio's temporary copies are deleted in every case.
    """
    try:
        gate = gate or AdminGate(read_admin_token(settings))
        wait = gate.wait_seconds()
        if wait > 0:
            return f"Too many wrong admin tokens: try again in {wait:.0f} s."
        if not gate.check(token):
            return WRONG_TOKEN
        if not files:
            return "Choose one or more files to add first."
        saved: list[Path] = []
        refused: list[str] = []
        for item in files:
            src = _upload_path(item)
            try:
                saved.append(service.store_upload(settings, src.name, src, folder=UPLOAD_FOLDER))
            except (ValueError, OSError) as exc:
                refused.append(str(exc))
    finally:
        for item in files or []:
            with contextlib.suppress(OSError):
                _upload_path(item).unlink()
    message = ""
    if saved:
        log.info("upload: indexing %d file(s)", len(saved))
        try:
            message = service.build(settings, saved).line()
        except (ValueError, OSError, RuntimeError) as exc:  # IndexUnusable is a RuntimeError
            log.warning("upload: indexing failed: %s", exc)
            message = f"Error: {exc}"
    if refused:
        note = f"{len(refused)} not stored: " + " | ".join(refused)
        message = f"{message}; {note}" if message else note
    return message


def upload_label(settings: Settings) -> str:
    kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
    return f"Documents ({kinds}; up to {settings.max_file_mb:g} MB each)"


# ---------------------------------------------------------------- the app


# System fonts only: nothing is fetched for the page beyond this server.
THEME = gr.themes.Default(
    primary_hue="teal",
    secondary_hue="slate",
    font=("system-ui", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"),
    font_mono=("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"),
)

CSS = """
#qa-header [data-testid="status-tracker"] { display: none !important; }
.qa-header h1 { font-size: 1.6em; font-weight: 600; margin: 0 0 .2em; }
.qa-header .qa-desc { margin: 0; }
.qa-header .qa-docs { margin: .2em 0 0 1.2em; padding: 0; list-style: disc;
  color: var(--body-text-color-subdued); font-size: .92em; }
.qa-note { font-size: .92em; color: var(--body-text-color); margin: .2em 0 0;
  border-left: 3px solid var(--color-accent); padding: .1em 0 .1em .6em; }
.qa-question { white-space: pre-wrap; }
.qa-card { line-height: 1.55; }
.qa-card .qa-meta { display: flex; flex-wrap: wrap; align-items: center; gap: .35em .6em;
  font-size: .88em; margin: 0 0 .35em; }
.qa-card .qa-badge { border-radius: 999px; padding: .05em .65em; font-weight: 600;
  white-space: nowrap; }
.qa-card .qa-strong { background: #dcfce7; color: #14532d; }
.qa-card .qa-moderate { background: #fef3c7; color: #78350f; }
.qa-card .qa-weak { background: #ffedd5; color: #7c2d12; }
.qa-card .qa-poor { background: #fee2e2; color: #7f1d1d; }
.qa-card .qa-badge[title] { cursor: help; }
.qa-card .qa-source { color: var(--body-text-color); opacity: .8; }
.qa-card .qa-source::before { content: "Source: "; }
.qa-card .qa-quote { white-space: pre-wrap !important; margin: .2em 0 .4em; padding: .5em .9em;
  border-left: 4px solid var(--color-accent); background: var(--background-fill-secondary);
  border-radius: 0 6px 6px 0; font-style: normal; }
.qa-card mark.qa-hl { background: #fde68a; color: #1f2937; padding: 0 .1em; border-radius: 2px; }
.qa-card .qa-query { font-size: .88em; color: var(--body-text-color); margin: 0 0 .4em; }
.qa-card .qa-abstain-msg { font-weight: 600; margin: 0 0 .3em; }
.qa-card .qa-possible-msg { font-weight: 600; margin: 0 0 .45em; padding: .3em .7em;
  border-left: 4px solid #c2410c; background: #fff7ed; color: #7c2d12; border-radius: 0 6px 6px 0; }
.qa-possible > .qa-quote { border-left-color: #c2410c; }
.qa-possible mark.qa-hl { background: transparent; color: inherit;
  text-decoration: underline 2px #c2410c; text-underline-offset: 3px; }
.qa-card details { margin-top: .4em; }
.qa-card details > summary { cursor: pointer; color: var(--body-text-color); font-size: .92em;
  font-weight: 500; padding: .2em 0; }
.qa-card details .qa-passage { margin-top: .5em; font-size: .95em; }
.qa-card details .qa-quote { border-left: 4px solid var(--border-color-primary);
  background: transparent; }
.qa-card .qa-nearest .qa-quote { border-left-style: dashed;
  color: var(--body-text-color-subdued); }
.qa-card .qa-actions { display: flex; gap: .5em; }
.qa-card .qa-copy { font-size: .8em; padding: .1em .7em; border-radius: 6px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary);
  color: var(--body-text-color); }
.qa-notice { font-weight: 600; border-left: 4px solid #b45309; padding: .2em 0 .2em .7em; }
.qa-card, .qa-notice { scroll-margin-top: .5rem; }
.qa-question { scroll-margin-top: 1.5rem; }
#chat .placeholder { padding: var(--spacing-xxl) var(--spacing-xxl) 0; }
/* One scroll area, the page: the chat grows with its messages (it never scrolls by itself)
   and the question row stays at the bottom of the screen. */
.gradio-container { overflow: clip !important; }
#chat, #chat > .wrapper, #chat .panel-wrap, #chat .bubble-wrap { height: auto !important;
  max-height: none !important; overflow: visible !important; }
#qa-input { position: sticky; bottom: 0; z-index: var(--layer-5); padding: .4em 0; margin: 0;
  background: var(--body-background-fill); }
@media (max-width: 640px) {
  #qa-input { gap: 6px; }
  #qa-input > button { flex: 0 0 auto !important; min-width: 0 !important; padding: 0 .7em;
    font-size: 1em; }
  #chat .message-row.panel { padding: 14px 12px; }
  .qa-card .qa-quote { padding: .4em .6em; }
  .qa-header h1 { font-size: 1.3em; }
  .qa-header .qa-desc, .qa-header .qa-docs { font-size: .85em; }
}
"""

# Run once on page load. "Copy quote": the card's verbatim quote, its source and the match
# label, as plain text (Gradio's sanitiser drops data-* attributes, so the text is read from
# the card itself). A new reply is scrolled to its start.
PAGE_JS = r"""
() => {
  if (window.__qaInstalled) return;
  window.__qaInstalled = true;
  const fallback = (text) => {
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    try { document.execCommand("copy"); } finally { ta.remove(); }
  };
  document.addEventListener("click", async (event) => {
    const path = event.composedPath ? event.composedPath() : [event.target];
    const btn = path.find((el) => el.classList && el.classList.contains("qa-copy"));
    if (!btn) return;
    event.preventDefault();
    event.stopPropagation();
    const card = btn.closest(".qa-card");
    if (!card) return;
    const part = (sel) => (card.querySelector(sel) || {}).textContent || "";
    const text = "\u201c" + part(":scope > .qa-quote") + "\u201d\n\u2014 "
      + part(":scope > .qa-meta .qa-source") + " (" + part(":scope > .qa-meta .qa-conf") + ")";
    try { await navigator.clipboard.writeText(text); } catch (err) { fallback(text); }
    btn.textContent = "Copied";
    setTimeout(() => { btn.textContent = "Copy quote"; }, 1500);
  }, true);
  // After each new reply, bring its start (badge, source) into view, not the chat's end;
  // with the question above it when both fit in the upper third of the screen.
  let replies = 0;
  new MutationObserver(() => {
    const all = document.querySelectorAll("#chat .qa-card, #chat .qa-notice");
    if (all.length > replies) {
      const reply = all[all.length - 1];
      const top = reply.getBoundingClientRect().top;
      const asked = [...document.querySelectorAll("#chat .qa-question")]
        .filter((q) => q.getBoundingClientRect().top < top).pop();
      const near = asked && top - asked.getBoundingClientRect().top < innerHeight / 3;
      (near ? asked : reply).scrollIntoView({ block: "start" });
    }
    replies = all.length;
  }).observe(document.body, { childList: true, subtree: true });
}
"""


# Typing the admin token stores it as a same-site cookie, which the browser then sends with
# the file upload request that Gradio makes when files are chosen (see chatbot.guard).
TOKEN_COOKIE_JS = (
    f"(t) => {{ document.cookie = '{COOKIE}=' + encodeURIComponent(t || '') "
    "+ '; path=/; SameSite=Strict'; return t; }"
)


def build_app(settings: Settings, live: LiveRetriever | None = None) -> gr.Blocks:
    """The chat UI and the named ``ask`` API endpoint, over one retriever per process.

    Questions asked at the same time (chat or API) are embedded and searched together
    (:class:`BatchedAsker`, up to ``settings.api_batch_size``).
    """
    live = live or LiveRetriever(settings)
    asker = BatchedAsker(live, settings.api_batch_size)
    gate = AdminGate(read_admin_token(settings))
    limit = settings.max_question_chars
    lanes = max(CONCURRENCY, settings.api_batch_size)  # requests in flight for questions
    examples = example_questions(live)
    placeholder = (
        "<b>Ask a question about the documents.</b><br>"
        "The reply quotes the best-matching passage word for word, or says it isn't there. "
        "A short follow-up such as “and in men?” is searched with your previous question."
    )

    with gr.Blocks(title=page_title(live), analytics_enabled=False, fill_height=False) as app:
        header = gr.HTML(header_html(live), elem_id="qa-header")
        chatbot = gr.Chatbot(
            label="Answers",
            show_label=False,
            elem_id="chat",
            height=None,  # grows with its messages: the page is the one scroll area
            min_height=240,
            layout="panel",
            render_markdown=False,  # our HTML is already escaped; no Markdown on top
            latex_delimiters=[],  # "$x^2$" in a document stays "$x^2$"
            sanitize_html=True,
            allow_tags=False,
            line_breaks=False,
            buttons=[],  # no share; "Copy quote" in each card copies plain text
            feedback_options=("Like", "Dislike"),
            placeholder=placeholder,
            examples=[{"text": q} for q in examples] or None,
            autoscroll=False,  # PAGE_JS brings each new reply's start into view instead
        )
        with gr.Row(equal_height=True, elem_id="qa-input"):
            question = gr.Textbox(
                show_label=False,
                placeholder="Ask a question…",
                lines=1,
                max_lines=4,
                scale=8,
                min_width=120,
                elem_id="question",
                autofocus=True,
            )
            ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=64, elem_id="ask")
            clear_btn = gr.Button(
                "Clear", variant="secondary", scale=1, min_width=64, elem_id="clear"
            )
        gr.HTML(note_html(Scale.of(live.get())), elem_id="qa-note")
        state = gr.State(new_state())
        if gate.enabled:  # the panel exists only when an admin token is configured
            with gr.Accordion("Add documents", open=False, elem_id="qa-upload"):
                token_box = gr.Textbox(
                    label="Admin token", type="password", max_length=512, elem_id="upload-token"
                )
                uploads = gr.File(
                    label=upload_label(settings),
                    file_count="multiple",
                    file_types=sorted(SUPPORTED_SUFFIXES),
                    type="filepath",
                    elem_id="upload-files",
                )
                add_btn = gr.Button("Add to the index", elem_id="upload-add")
                token_box.change(None, [token_box], None, js=TOKEN_COOKIE_JS)
                upload_status = gr.Textbox(
                    label="Result", interactive=False, elem_id="upload-status"
                )

            def on_upload(token: str, files: list[Any] | None) -> tuple[str, str, None]:
                return upload_documents(settings, token, files, gate), header_html(live), None

            add_btn.click(
                on_upload,
                [token_box, uploads],
                [upload_status, header, uploads],
                concurrency_limit=1,
                api_visibility="private",
            )

        def respond(
            message: str, history: list[dict[str, Any]], st: dict[str, Any]
        ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
            history, st, answer = chat_turn(live, message, history, st, asker)
            # A refused (over-long) question stays in the box, to be shortened.
            return ("" if answer is not None else message), history, st

        def respond_example(
            history: list[dict[str, Any]], st: dict[str, Any], evt: gr.SelectData
        ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
            value = evt.value if isinstance(evt.value, dict) else {"text": str(evt.value)}
            return respond(value.get("text", ""), history, st)

        def on_like(st: dict[str, Any], data: gr.LikeData) -> None:
            index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
            turn = (st or {}).get("turns", {}).get(str(index))
            if turn is None:
                log.warning("feedback for unknown message %s ignored", index)
                return
            append_feedback(feedback_path(settings), feedback_record(turn, vote_name(data.liked)))

        def clear() -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
            return "", [], new_state()

        io = {"inputs": [question, chatbot, state], "outputs": [question, chatbot, state]}
        private = {"api_visibility": "private"}
        turns = {"concurrency_limit": lanes, "concurrency_id": "questions", **private}
        question.submit(respond, **io, **turns)
        ask_btn.click(respond, **io, **turns)
        chatbot.example_select(
            respond_example, [chatbot, state], [question, chatbot, state], **turns
        )
        chatbot.like(on_like, [state], None, **private)
        clear_btn.click(clear, None, [question, chatbot, state], **private)
        chatbot.clear(lambda: new_state(), None, [state], **private)

        def ask(question: str, k: int = 3, previous: str = "") -> dict:
            """Answer one question: the `chatbot ask` JSON record plus "query" (the text searched).

            Pass the previous question, as asked, as `previous` to ask a follow-up; it is
            searched together with this one only (never with earlier questions).
            """
            question = (question or "").strip()
            previous = previous or ""
            try:
                k = check_api_input(question, k, previous, limit)
            except ValueError as exc:  # the caller's mistake: a message, no traceback
                raise gr.Error(str(exc), print_exception=False) from None
            query = followup_query(question, previous or None)
            return answer_payload(asker.ask(question, k=k, query=query))

        gr.api(ask, api_name=API_NAME, concurrency_limit=lanes, concurrency_id="questions")
        # The index may have been rebuilt since start-up: refresh what the header says.
        app.load(
            lambda: header_html(live),
            None,
            [header],
            show_progress="hidden",
            queue=False,
            **private,
        )

    app.live_retriever = live  # type: ignore[attr-defined]  # for tests and serve()
    app.asker = asker  # type: ignore[attr-defined]
    app.admin_gate = gate  # type: ignore[attr-defined]
    return app


def launch_options(
    settings: Settings, live: LiveRetriever, gate: AdminGate | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: local bind, no sharing, our CSS and JS, and
    the guard that closes Gradio's upload route unless the admin token comes with it."""
    from starlette.middleware import Middleware

    gate = gate or AdminGate(read_admin_token(settings))
    meta = esc(f"{page_title(live)}. {description(live)}")
    return {
        "app_kwargs": {"middleware": [Middleware(UploadGuard, gate=gate)]},
        "server_name": settings.host,
        "server_port": settings.port,
        "share": False,
        "inbrowser": False,
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "show_error": False,
        "max_file_size": int(settings.max_file_mb * 1e6),  # uploads are refused past this
        "quiet": True,  # we print one line ourselves, without Gradio's share-link hint
        "footer_links": ["api"],
        "theme": THEME,
        "css": CSS,
        "js": PAGE_JS,
        "head": f'<meta name="description" content="{meta}">',
    }


def private_temp_dir() -> Path:
    """Give this process its own Gradio temp folder, removed when the process exits.

    Gradio keeps received files in ``GRADIO_TEMP_DIR`` (shared, never emptied, by default);
    a folder of our own means nothing uploaded outlives the server.
    """
    folder = Path(tempfile.mkdtemp(prefix="chatbot-gradio-"))
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def serve(
    settings: Settings, *, block: bool = True, live: LiveRetriever | None = None
) -> gr.Blocks:
    """Start the chat on ``settings.host:settings.port`` (``block=False`` returns at once)."""
    app = build_app(settings, live)
    app.queue(default_concurrency_limit=CONCURRENCY, max_size=MAX_QUEUE)
    opts = launch_options(settings, app.live_retriever, app.admin_gate)  # type: ignore[attr-defined]
    private_temp_dir()
    log.info("serving %s on http://%s:%s", settings.index_dir, settings.host, settings.port)
    app.launch(prevent_thread_lock=True, **opts)
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("listening on %s: the chat is reachable from other machines", settings.host)
    if block:
        print(f"Chat running at {app.local_url}  (Ctrl+C to stop)", file=sys.stderr, flush=True)
        app.block_thread()
    return app
