"""Incremental indexing end to end: every format, the CLI, crash safety, locking, live reload."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import docx
import numpy as np
import pytest
from pypdf import PdfReader, PdfWriter

from chatbot import build, service, store
from chatbot import index as ix
from chatbot.cli import main
from chatbot.config import PROJECT_ROOT, Settings

FAKE = "fake-64"


# ---------------------------------------------------------------- generated documents


def make_pdf(pages: list[list[str]], title: str = "") -> bytes:
    """A real PDF written by matplotlib (TrueType text, one figure per page)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    buf = io.BytesIO()
    with (
        plt.rc_context({"pdf.fonttype": 42}),
        PdfPages(buf, metadata={"Title": title} if title else None) as pdf,
    ):
        for lines in pages:
            fig = plt.figure(figsize=(8.5, 11))
            for n, line in enumerate(lines):
                fig.text(0.08, 0.92 - 0.03 * n, line, fontsize=11)
            pdf.savefig(fig)
            plt.close(fig)
    return buf.getvalue()


def make_docx() -> bytes:
    d = docx.Document()
    d.core_properties.title = "Sleep Handbook"
    d.add_heading("Sleep Handbook", level=0)
    d.add_paragraph("Adults need seven to nine hours of sleep each night to stay healthy.")
    d.add_heading("Naps", level=1)
    d.add_paragraph("A short nap of twenty minutes improves alertness without grogginess.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


HTML = """<!DOCTYPE html><html><head><title>Hydration Guide</title>
<style>p { color: red; }</style><script>var secretScript = 1;</script></head>
<body><h1>Water</h1><p>Drink about two litres of water a day in a temperate climate.</p>
<h2>Heat</h2><p>In hot weather sweat losses rise, so drink more water than usual.</p>
<noscript>Enable JavaScript</noscript></body></html>"""

MD = """# Bones

## Calcium

Adults need about 1000 mg of calcium per day for strong bones.

## Vitamin D

Vitamin D helps the gut absorb calcium from food.
"""

TXT = "Green Tea\n\nGreen tea is brewed with water at about 80 degrees for three minutes.\n"

PDF_PAGES = [
    ["Iron deficiency is the most common cause of anaemia worldwide."],
    ["Red meat, lentils and spinach are good dietary sources of iron."],
]


def write_corpus(folder: Path) -> dict[str, Path]:
    """One small document of every supported format."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "txt": folder / "tea.txt",
        "md": folder / "bones.md",
        "html": folder / "water.html",
        "pdf": folder / "iron.pdf",
        "docx": folder / "sleep.docx",
    }
    files["txt"].write_text(TXT, encoding="utf-8")
    files["md"].write_text(MD, encoding="utf-8")
    files["html"].write_text(HTML, encoding="utf-8")
    files["pdf"].write_bytes(make_pdf(PDF_PAGES, title="Iron"))
    files["docx"].write_bytes(make_docx())
    return files


def cli(*argv: str, settings: Settings) -> int:
    return main([*argv, "--model", settings.model, "--index", settings.index])


def source_of(index: ix.Index, name: str) -> str:
    return next(s for s in index.documents if s.endswith("/" + name))


# ---------------------------------------------------------------- formats through the pipeline


def test_every_format_is_indexed_verbatim(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = write_corpus(tmp_path / "docs")
    assert cli("index", "add", str(tmp_path / "docs"), settings=fake_settings) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("added 5 documents, ") and "\n" not in line

    index = store.load(fake_settings.index_dir, FAKE)
    assert len(index.documents) == 5
    for p in index.passages:  # the verbatim guarantee, for every format
        assert index.documents[p.source].text[p.start : p.end] == p.text
    by_doc: dict[str, list] = {}
    for p in index.passages:
        by_doc.setdefault(p.source.rsplit("/", 1)[-1], []).append(p)
    assert {p.heading for p in by_doc["bones.md"]} == {"Calcium", "Vitamin D"}
    assert {p.heading for p in by_doc["water.html"]} == {"Water", "Heat"}
    assert {p.heading for p in by_doc["sleep.docx"]} == {"Sleep Handbook", "Naps"}
    assert [p.page for p in by_doc["iron.pdf"]] == [1, 2]
    html_text = index.documents[source_of(index, "water.html")].text
    assert "Hydration Guide" in html_text
    assert "secretScript" not in html_text and "color" not in html_text
    assert "JavaScript" not in html_text
    assert index.documents[source_of(index, "iron.pdf")].title == "Iron"
    for rec in index.doc_records.values():
        assert Path(rec.path).is_absolute() and Path(rec.path).exists()
    assert {Path(r.path).name for r in index.doc_records.values()} == {
        f.name for f in files.values()
    }

    retriever = service.open_retriever(fake_settings)
    hit = retriever.ask("good dietary sources of iron lentils spinach").hits[0]
    assert hit.source.endswith("iron.pdf") and hit.page == 2
    assert retriever.ask("calcium per day bones").hits[0].heading == "Calcium"


# ---------------------------------------------------------------- the CLI


def test_cli_add_update_remove_list_status(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "docs"
    files = write_corpus(docs)
    (docs / "empty.txt").write_text("")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\n" + os.urandom(3000))
    locked = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf([["Secret."]]))))
    locked.encrypt("pw", owner_password="owner", algorithm="RC4-128")
    with open(docs / "locked.pdf", "wb") as fh:
        locked.write(fh)

    assert cli("index", "add", str(docs), settings=fake_settings) == 2
    out = capsys.readouterr().out.strip()
    assert out.startswith("added 5 documents, ") and "4 failed: " in out and "\n" not in out
    for reason in ("empty.txt: file is empty", "binary.txt: looks binary", "broken.pdf: PDF is"):
        assert reason in out
    assert "locked.pdf: PDF is password-protected" in out
    index = store.load(fake_settings.index_dir)
    assert len(index.documents) == 5

    for bad in ("empty.txt", "binary.txt", "broken.pdf", "locked.pdf"):
        (docs / bad).unlink()
    assert cli("index", "add", str(docs), settings=fake_settings) == 0
    assert capsys.readouterr().out.startswith("no changes (index: 5 documents, ")

    assert cli("index", "list", settings=fake_settings) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 7 and lines[-1] == f"5 documents, {len(index.passages)} passages"
    assert any(line.endswith("iron.pdf") and line.startswith("2\t") for line in lines)

    assert cli("index", "status", settings=fake_settings) == 0
    out = capsys.readouterr().out
    assert "model: fake-64 (dim 64)" in out and "stale: none" in out
    assert out.strip().splitlines()[-1].endswith("; 0 stale")

    files["txt"].write_text(TXT + "\nOolong\n\nOolong tea is partly oxidised before drying.\n")
    files["md"].unlink()
    assert cli("index", "status", settings=fake_settings) == 0
    assert "2 stale; run `chatbot index update`" in capsys.readouterr().out
    assert cli("index", "update", settings=fake_settings) == 0
    out = capsys.readouterr().out
    assert out.startswith("updated 1 document, ") and "removed 1 document" in out
    assert "skipped 3 unchanged" in out
    assert "oxidised" in service.open_retriever(fake_settings).ask("oolong oxidised").answer

    assert cli("index", "remove", str(files["pdf"]), settings=fake_settings) == 0
    assert capsys.readouterr().out.startswith("removed 1 document (index: 3 documents, ")

    before = (fake_settings.index_dir / "manifest.json").read_text()
    assert cli("index", "remove", "nowhere.txt", settings=fake_settings) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith("Error: nowhere.txt is not in the index") and "\n" not in err
    assert (fake_settings.index_dir / "manifest.json").read_text() == before


def test_missing_path_is_reported_and_the_rest_indexed(
    fake_settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.txt"
    good.write_text(TXT)
    assert cli("index", "add", str(tmp_path / "nope.txt"), str(good), settings=fake_settings) == 2
    out = capsys.readouterr().out
    assert out.startswith("added 1 document") and "1 failed: " in out and "nope.txt" in out


def test_list_and_status_without_index_say_how_to_build(
    fake_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    for sub in ("list", "status", "update"):
        assert cli("index", sub, settings=fake_settings) == 1
        assert "chatbot index build" in capsys.readouterr().err


def test_huge_file_limit_from_env(
    fake_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    big = tmp_path / "big.txt"
    big.write_text("Large\n\n" + "Padding words for a large file. " * 200)
    small = tmp_path / "small.txt"
    small.write_text(TXT)
    monkeypatch.setenv("CHATBOT_MAX_FILE_MB", "0.005")
    assert cli("index", "add", str(big), str(small), settings=fake_settings) == 2
    out = capsys.readouterr().out
    assert "added 1 document" in out
    assert "big.txt: 0.0 MB is over the 0.005 MB limit; split the file or raise" in out
    assert list(store.load(fake_settings.index_dir).documents) == [build.default_source(small)]


def test_latin1_text_is_decoded_with_a_logged_fallback(
    fake_settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cafe.txt"
    path.write_bytes("Café crème\n\nA café au lait is coffee with hot milk.\n".encode("latin-1"))
    with caplog.at_level(logging.WARNING, logger="chatbot.documents"):
        summary = service.build(fake_settings, [path])
    assert summary.added == [build.default_source(path)] and not summary.failed
    assert "not valid UTF-8" in caplog.text and "decoded as cp1252" in caplog.text
    index = store.load(fake_settings.index_dir)
    assert "A café au lait is coffee with hot milk." in index.documents[summary.added[0]].text
    for p in index.passages:
        assert index.documents[p.source].text[p.start : p.end] == p.text


def test_utf16_text_with_a_byte_order_mark_is_read(fake_settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "wide.txt"
    path.write_bytes("Tea notes\n\nMatcha is powdered green tea.\n".encode("utf-16"))
    summary = service.build(fake_settings, [path])
    assert summary.added and not summary.failed
    text = store.load(fake_settings.index_dir).documents[summary.added[0]].text
    assert text == "Tea notes\n\nMatcha is powdered green tea.\n"


def test_adding_to_an_index_of_another_model_is_refused(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (fake_index.index_dir / "manifest.json").read_text()
    extra = tmp_path / "extra.txt"
    extra.write_text(TXT)
    other = Settings(index=fake_index.index, corpus=fake_index.corpus, model="fake-32")
    assert cli("index", "add", str(extra), settings=other) == 1
    assert "cannot add to the existing index" in capsys.readouterr().err
    assert (fake_index.index_dir / "manifest.json").read_text() == before
    # A full build may replace it.
    assert cli("index", "build", str(extra), settings=other) == 0
    assert store.load(fake_index.index_dir).manifest["model"] == "fake-32"


# ---------------------------------------------------------------- add + remove changes nothing


def test_add_then_remove_leaves_ask_output_identical(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "q.txt"
    questions.write_text(
        "How much calcium do adults need?\nHow hot should the water be for tea?\n"
        "Which foods contain iron?\nHow long should adults sleep?\n"
    )

    def ask() -> str:
        assert cli("ask", str(questions), settings=fake_index) == 0
        return capsys.readouterr().out

    before = ask()
    extra = write_corpus(tmp_path / "extra")
    assert cli("index", "add", str(tmp_path / "extra"), settings=fake_index) == 0
    capsys.readouterr()
    assert ask() != before  # the new documents answer some questions
    assert cli("index", "remove", str(tmp_path / "extra"), settings=fake_index) == 0
    assert capsys.readouterr().out.startswith(f"removed {len(extra)} documents")
    assert ask() == before


# ---------------------------------------------------------------- crash safety and locking


def _run_cli(*argv: str, **kw: object) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **kw.pop("env", {})}  # type: ignore[dict-item]
    return subprocess.Popen(
        [sys.executable, "-m", "chatbot", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,  # type: ignore[arg-type]
    )


def _write_many(folder: Path, count: int, sentences: int = 60) -> None:
    """``count`` generated documents of ``sentences`` random-word sentences each."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count)
    vocab = [f"term{i}" for i in range(3000)]
    for n in range(count):
        sents = ["Sentence " + " ".join(rng.choice(vocab, 11)) + "." for _ in range(sentences)]
        paras = [" ".join(sents[i : i + 4]) for i in range(0, len(sents), 4)]
        (folder / f"doc{n:04d}.txt").write_text(f"Document {n}\n\n" + "\n\n".join(paras) + "\n")


def _snapshot(index_dir: Path) -> tuple:
    index = store.load(index_dir)
    return (
        index.manifest["generation"],
        sorted(index.documents),
        [p.text for p in index.passages],
        index.vectors.copy(),
    )


@pytest.mark.slow
def test_kill_9_during_add_leaves_the_last_good_index(
    fake_settings: Settings, tmp_path: Path
) -> None:
    index_dir = fake_settings.index_dir
    _write_many(tmp_path / "base", 20)
    service.build(fake_settings, [tmp_path / "base"])
    killed = False
    for attempt in range(3):  # a writer that finishes before it is caught just adds its docs
        before = _snapshot(index_dir)
        more = tmp_path / f"more{attempt}"
        _write_many(more, 80)
        proc = _run_cli("index", "add", str(more), "-q", "--model", FAKE, "--index",
                        str(index_dir))  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.name.startswith(".tmp-") for p in index_dir.iterdir()):
                os.kill(proc.pid, signal.SIGKILL)  # mid-write: the new generation is partial
                killed = True
                break
            time.sleep(0.001)
        proc.communicate(timeout=60)
        if killed:
            break
    assert killed, "every writer finished before its new generation was seen"
    assert proc.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".tmp-") for p in index_dir.iterdir())

    after = _snapshot(index_dir)
    assert after[:3] == before[:3]
    np.testing.assert_array_equal(after[3], before[3])
    assert service.open_retriever(fake_settings).ask("Document 3 sentence").hits

    # The next writer succeeds and clears what the killed one left behind.
    summary = service.build(fake_settings, [more])
    assert len(summary.added) == 80 and not summary.failed
    assert not [p for p in index_dir.iterdir() if p.name.startswith(".tmp-")]
    assert len(store.load(index_dir).documents) == len(before[1]) + 80


HOLD_LOCK = """
import sys
from pathlib import Path
from chatbot.store import write_lock
with write_lock(Path(sys.argv[1]), timeout=600):
    print("locked", flush=True)
    sys.stdin.readline()  # hold the lock until told to let go
"""


@pytest.mark.slow
def test_two_writers_are_serialised_by_the_lock(fake_settings: Settings, tmp_path: Path) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("Apples\n\nApples are rich in fibre and vitamin C.\n")
    b.write_text("Bananas\n\nBananas are rich in potassium.\n")
    index_dir = fake_settings.index_dir
    index_dir.mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(index_dir)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        common = ("--model", FAKE, "--index", str(index_dir))
        writers = [_run_cli("index", "add", str(p), *common) for p in (a, b)]
        impatient = _run_cli("index", "add", str(a), *common, env={"CHATBOT_LOCK_TIMEOUT": "0.5"})
        _, err = impatient.communicate(timeout=120)
        assert impatient.returncode == 1
        assert err.strip().splitlines()[-1].startswith("Error: another process is writing")
        assert all(w.poll() is None for w in writers)  # both still waiting for the holder
        assert not (index_dir / "manifest.json").exists()
        holder.communicate("\n", timeout=60)  # let go: the writers now run one at a time
        results = [w.communicate(timeout=120) for w in writers]
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert [w.returncode for w in writers] == [0, 0], results
    assert all(out.startswith("added 1 document") for out, _ in results)
    docs = store.read_records(index_dir)
    assert {Path(r["path"]).name for r in docs.values()} == {"a.txt", "b.txt"}  # no lost update


# ---------------------------------------------------------------- a running chat


def test_live_retriever_picks_up_a_new_index(
    fake_index: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = service.LiveRetriever(fake_index)
    first = live.get()
    assert live.get() is first  # no change, no reload
    extra = tmp_path / "coffee.txt"
    extra.write_text("Coffee\n\nCoffee contains caffeine, a mild stimulant.\n")
    service.build(fake_index, [extra])
    second = live.get()
    assert second is not first and build.default_source(extra) in second.index.documents
    assert second.ask("caffeine stimulant coffee").hits[0].source.endswith("coffee.txt")

    # A manifest naming a segment that is not there: keep serving the last good index.
    manifest_path = fake_index.index_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    broken = fake_index.index_dir / "broken.json"
    missing = [dict(e, name="seg-999999") for e in manifest["segments"]]
    broken.write_text(json.dumps(dict(manifest, segments=missing)))
    os.replace(broken, manifest_path)
    with caplog.at_level(logging.WARNING, logger="chatbot.service"):
        assert live.get() is second
    assert "keeping the loaded one" in caplog.text
    service.build(fake_index, replace_all=True)  # a good write is picked up again
    assert build.default_source(extra) not in live.get().index.documents


@pytest.mark.slow
def test_questions_during_writes_always_see_a_whole_index(
    fake_index: Settings, tmp_path: Path
) -> None:
    live = service.LiveRetriever(fake_index)
    errors: list[BaseException] = []
    stop = threading.Event()

    def ask_loop() -> None:
        while not stop.is_set():
            try:
                r = live.get()
                answer = r.ask("How much calcium do adults need?")
                for h in answer.hits:
                    assert r.index.documents[h.source].text[h.start : h.end] == h.text
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=ask_loop)
    thread.start()
    try:
        for n in range(6):
            doc = tmp_path / f"n{n}.txt"
            doc.write_text(f"Note {n}\n\nNote number {n} mentions calcium and tea.\n")
            service.build(fake_index, [doc])
            if n % 2:
                service.remove(fake_index, [str(doc)])
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors, errors
    gens = [p for p in fake_index.index_dir.iterdir() if p.name.startswith("gen-")]
    assert len(gens) <= 2  # the current generation and the one before it


def test_any_sequence_of_changes_equals_a_fresh_build(
    fake_settings: Settings, tmp_path: Path
) -> None:
    docs = tmp_path / "docs"
    files = write_corpus(docs)
    service.build(fake_settings, [docs])
    # Update the first document by name, remove one, add one, update another.
    files["md"].write_text(MD + "\n## Exercise\n\nWalking and lifting weights strengthen bones.\n")
    files["txt"].write_text(TXT + "\nBlack Tea\n\nBlack tea is fully oxidised.\n")
    (docs / "apple.txt").write_text("Apples\n\nApples are rich in fibre.\n")
    service.build(fake_settings, [files["md"]])
    service.remove(fake_settings, [str(files["docx"])])
    service.build(fake_settings, [docs / "apple.txt", files["txt"]])
    files["docx"].unlink()

    fresh = Settings(index=str(tmp_path / "fresh"), model=FAKE)
    service.build(fresh, [docs])
    a, b = store.load(fake_settings.index_dir), store.load(fresh.index_dir)
    assert list(a.documents) == list(b.documents)
    assert [(p.source, p.text, p.start, p.heading, p.page) for p in a.passages] == [
        (p.source, p.text, p.start, p.heading, p.page) for p in b.passages
    ]
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)
    np.testing.assert_allclose(a.sentence_vectors, b.sentence_vectors, atol=1e-6)
    np.testing.assert_array_equal(a.token_counts, b.token_counts)
    np.testing.assert_allclose(a.token_vectors, b.token_vectors, atol=1e-3)
    assert [a.passage_terms(i) for i in range(a.size)] == [
        b.passage_terms(i) for i in range(b.size)
    ]
    for query in (["calcium", "bone"], ["tea", "oxidis"], ["iron"]):
        np.testing.assert_allclose(a.lexical.scores(query), b.lexical.scores(query))
    ra, rb = service.open_retriever(fake_settings), service.open_retriever(fresh)
    for q in ("How do I strengthen bones?", "Is black tea oxidised?", "Which fruit has fibre?"):
        assert ra.ask(q).to_dict() == rb.ask(q).to_dict()
