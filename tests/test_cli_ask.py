"""End-to-end tests of ``chatbot ask`` and ``chatbot eval`` through ``chatbot.cli.main``.

They use the fake-embedder index over tests/data/docs (five passages: three in bones.md, two
in tea.txt), so every figure below is deterministic.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from pathlib import Path

import pytest

from chatbot import batch
from chatbot.batchio import csv_columns
from chatbot.cli import main
from chatbot.config import ABSTAIN_MESSAGE, Settings
from chatbot.retrieval import Retriever

DATA = Path(__file__).parent / "data"
BATCH = DATA / "batch"
SQUAD = DATA / "squad_tiny.json"
KEYS = {"id", "question", "answered", "tier", "answer", "confidence", "passages"}
PASSAGE_KEYS = {
    "rank",
    "text",
    "confidence",
    "score",
    "source",
    "start",
    "end",
    "heading",
    "highlight",
}


def _ask(settings: Settings, *args: str) -> int:
    return main(["ask", "--index", str(settings.index_dir), "--model", "fake-64", *args])


def _records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _read(path: Path) -> list[dict]:
    return _records(path.read_text(encoding="utf-8"))


def _spy_questions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every question the retriever embeds through ``ask_many``."""
    asked: list[str] = []
    original = Retriever.ask_many

    def spy(self: Retriever, questions: list[str], *a: object, **kw: object) -> list:
        asked.extend(questions)
        return original(self, questions, *a, **kw)

    monkeypatch.setattr(Retriever, "ask_many", spy)
    return asked


def _write_questions(path: Path, n: int) -> list[str]:
    questions = [f"Question {i}: how much calcium or green tea, number {i}?" for i in range(n)]
    path.write_text("\n".join(questions) + "\n", encoding="utf-8")
    return questions


# --------------------------------------------------------------------------- inputs


def test_txt_contract(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "questions.txt")) == 0
    out, err = capsys.readouterr()
    records = _records(out)
    assert [r["question"] for r in records] == [
        "What is the refund policy?",
        "How do I reset my password?",
        'Who wrote "Ulysses"?',
    ]
    assert [r["id"] for r in records] == ["1", "2", "3"]
    for r in records:
        assert set(r) == KEYS
        assert len(r["passages"]) == 3
        assert [p["rank"] for p in r["passages"]] == [1, 2, 3]
        for p in r["passages"]:
            assert set(p) >= PASSAGE_KEYS
            assert set(p["highlight"]) == {"start", "end"}
        assert r["answer"] == (r["passages"][0]["text"] if r["answered"] else ABSTAIN_MESSAGE)
    assert "hit@1" not in err  # no expected answers: no evaluation table


def test_answered_record_quotes_the_passage(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "q.txt"
    path.write_text("Adults need about 1000 mg of calcium per day\n", encoding="utf-8")
    assert _ask(fake_index, str(path)) == 0
    (record,) = _records(capsys.readouterr().out)
    assert record["answered"] is True
    top = record["passages"][0]
    assert record["answer"] == top["text"]
    doc = Path(top["source"]).read_text(encoding="utf-8")
    assert doc[top["start"] : top["end"]] == top["text"]  # verbatim


def test_csv_input(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "questions.csv")) == 0
    out, err = capsys.readouterr()
    records = _records(out)
    assert [r["id"] for r in records] == ["q1", "q2", "q3", "4"]
    assert records[1]["question"] == "Where, exactly, is the office?"
    assert re.search(r"questions evaluated\s+3\b", err)  # q3 has no expected answer
    assert re.search(r"without expected answer\s+1\b", err)


def test_tsv_input(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "questions.tsv")) == 0
    records = _records(capsys.readouterr().out)
    assert [r["question"] for r in records] == [
        "What is the refund policy?",
        'Who wrote "Ulysses"?',
        "How do I reset my password?",
    ]


def test_jsonl_input(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "questions.jsonl")) == 0
    records = _records(capsys.readouterr().out)
    assert [r["id"] for r in records] == ["a", "7", "3"]
    assert records[2]["question"] == "Où est le café ?"


def test_input_format_flag_overrides_extension(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "questions.dat"
    path.write_text('{"question": "How hot should tea water be?"}\n', encoding="utf-8")
    assert _ask(fake_index, str(path)) == 1
    assert "--input-format" in capsys.readouterr().err
    assert _ask(fake_index, "--input-format", "jsonl", str(path)) == 0
    assert _records(capsys.readouterr().out)[0]["question"] == "How hot should tea water be?"


def test_stdin(
    fake_index: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"How much calcium?\n\nHow do I brew green tea?\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert _ask(fake_index, "-") == 0
    records = _records(capsys.readouterr().out)
    assert [r["question"] for r in records] == ["How much calcium?", "How do I brew green tea?"]


def test_stdin_jsonl(
    fake_index: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b'{"id": "x", "question": "How much calcium?", "expected": "1000 mg"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert _ask(fake_index, "--input-format", "jsonl", "-") == 0
    out, err = capsys.readouterr()
    assert _records(out)[0]["id"] == "x"
    assert "hit@1" in err


# --------------------------------------------------------------------------- order, -k, output


def test_order_and_ids_across_many_chunks(
    fake_index: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHATBOT_BATCH_SIZE", "7")
    monkeypatch.setattr(batch, "WINDOW_BATCHES", 2)  # windows of 14 questions
    asked = _spy_questions(monkeypatch)
    questions = _write_questions(tmp_path / "many.txt", 100)
    assert _ask(fake_index, str(tmp_path / "many.txt")) == 0
    records = _records(capsys.readouterr().out)
    assert [r["question"] for r in records] == questions
    assert [r["id"] for r in records] == [str(i) for i in range(1, 101)]
    assert asked == questions  # each question embedded once, in order


@pytest.mark.parametrize("k", [1, 2, 5])
def test_k(fake_index: Settings, capsys: pytest.CaptureFixture[str], k: int) -> None:
    assert _ask(fake_index, "-k", str(k), str(BATCH / "questions.txt")) == 0
    records = _records(capsys.readouterr().out)
    assert all(len(r["passages"]) == k for r in records)  # the index holds five passages


def test_k_must_be_positive(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, "-k", "0", str(BATCH / "questions.txt")) == 1
    assert capsys.readouterr().err.startswith("Error: -k must be at least 1")


def test_out_file(fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "answers.jsonl"
    assert _ask(fake_index, str(BATCH / "questions.txt"), "--out", str(out)) == 0
    assert capsys.readouterr().out == ""
    assert [r["id"] for r in _read(out)] == ["1", "2", "3"]


def test_csv_output(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ask(fake_index, "--format", "csv", str(BATCH / "questions.jsonl")) == 0
    csv_text = capsys.readouterr().out
    assert _ask(fake_index, str(BATCH / "questions.jsonl")) == 0
    records = _records(capsys.readouterr().out)
    rows = list(csv.reader(io.StringIO(csv_text)))
    assert rows[0] == csv_columns(3)
    assert rows[0] == [
        *["id", "question", "answered", "tier", "confidence", "answer", "source", "start"],
        *["end", "rank2_source", "rank3_source"],
    ]
    assert len(rows) == 1 + len(records)
    for row, r in zip(rows[1:], records, strict=True):
        top = r["passages"][0]
        assert row[:6] == [
            r["id"],
            r["question"],
            str(r["answered"]).lower(),
            r["tier"],
            str(r["confidence"]),
            r["answer"],
        ]
        assert row[6:9] == [top["source"], str(top["start"]), str(top["end"])]
        assert row[9:] == [p["source"] for p in r["passages"][1:]]


def test_csv_output_inferred_from_out_and_k(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "answers.csv"
    assert _ask(fake_index, "-k", "4", str(BATCH / "questions.txt"), "--out", str(out)) == 0
    with open(out, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == csv_columns(4)
    assert rows[0][-3:] == ["rank2_source", "rank3_source", "rank4_source"]
    assert [row[0] for row in rows[1:]] == ["1", "2", "3"]


def test_out_must_not_be_the_input(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "q.txt"
    path.write_text("How much calcium?\n", encoding="utf-8")
    assert _ask(fake_index, str(path), "--out", str(path)) == 1
    assert "is the question file itself" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == "How much calcium?\n"


# --------------------------------------------------------------------------- resume


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_resume_after_truncated_output(
    fake_index: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fmt: str,
) -> None:
    monkeypatch.setenv("CHATBOT_BATCH_SIZE", "4")
    _write_questions(tmp_path / "q.txt", 23)
    full = tmp_path / f"full.{fmt}"
    assert _ask(fake_index, str(tmp_path / "q.txt"), "--format", fmt, "--out", str(full)) == 0
    data = full.read_bytes()
    lines = data.splitlines(keepends=True)
    # an interrupted run: 10 complete records (plus the CSV header) and half of the next one
    kept = 10 + (fmt == "csv")
    part = tmp_path / f"part.{fmt}"
    part.write_bytes(b"".join(lines[:kept]) + lines[kept][: len(lines[kept]) // 2])
    asked = _spy_questions(monkeypatch)
    argv = [str(tmp_path / "q.txt"), "--format", fmt, "--out", str(part), "--resume"]
    assert _ask(fake_index, *argv) == 0
    assert part.read_bytes() == data  # same as an uninterrupted run
    assert len(asked) == 13 and asked[0].startswith("Question 10:")  # nothing repeated
    assert "resuming" in capsys.readouterr().err
    # resuming a finished file answers nothing and changes nothing
    asked.clear()
    assert _ask(fake_index, *argv) == 0
    assert part.read_bytes() == data and asked == []


def test_resume_after_interrupt_keeps_evaluation(
    fake_index: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CHATBOT_BATCH_SIZE", "2")
    monkeypatch.setattr(batch, "WINDOW_BATCHES", 1)  # answer two questions at a time
    questions = str(BATCH / "eval.jsonl")
    full = tmp_path / "full.jsonl"
    assert _ask(fake_index, questions, "--out", str(full)) == 0
    table = capsys.readouterr().err

    original = Retriever.ask_many
    calls = {"n": 0}

    def interrupted(self: Retriever, qs: list[str], *a: object, **kw: object) -> list:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, qs, *a, **kw)

    monkeypatch.setattr(Retriever, "ask_many", interrupted)
    part = tmp_path / "part.jsonl"
    assert _ask(fake_index, questions, "--out", str(part)) == 130
    err = capsys.readouterr().err
    assert "interrupted after 2 answers" in err and "--resume" in err
    assert [r["id"] for r in _read(part)] == ["A", "B"]

    monkeypatch.setattr(Retriever, "ask_many", original)
    asked = _spy_questions(monkeypatch)
    assert _ask(fake_index, questions, "--out", str(part), "--resume") == 0
    assert part.read_bytes() == full.read_bytes()
    assert len(asked) == 3  # only E, F, G: A and B are scored from the file
    assert capsys.readouterr().err.endswith(table)  # the same evaluation as without the break


def test_resume_with_other_input_is_an_error(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    assert _ask(fake_index, str(BATCH / "questions.jsonl"), "--out", str(out)) == 0
    capsys.readouterr()
    assert _ask(fake_index, str(BATCH / "questions.txt"), "--out", str(out), "--resume") == 1
    err = capsys.readouterr().err
    assert err.startswith(f"Error: {out} holds answers to other questions (line 1: ")


def test_resume_needs_out(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "questions.txt"), "--resume") == 1
    assert "--out" in capsys.readouterr().err


# --------------------------------------------------------------------------- evaluation


# eval.jsonl against the fake index (ranks of the first passage containing an expected text):
#   A  rank 1, high confidence, answered     -> right
#   B  rank 3, high confidence, answered     -> wrong (top passage is the brewing one)
#   E  no expected answer                    -> only counted
#   F  rank 1, middling confidence           -> a possible answer, right (not answered)
#   G  no match, low confidence, abstained   -> not found, correctly
# hit@1 = 2/4, hit@3 = 3/4, MRR = (1 + 1/3 + 1 + 0) / 4 = 0.583, abstain rate = 2/4,
# accuracy at the answer threshold = 2/4 (B answered wrong, F's right passage not answered).
# Answering from A's confidence (A only) or from F's (A, B, F) are both right on 3 of 4; the
# higher threshold wins the tie, so A's is the best threshold.
# Calibration: A and B share the 0.9-1.0 bin (one right: observed 0.5); F (right) and G
# (wrong) are each alone in a bin, so ECE = 2/4 * |0.5 - mean(A, B)| + 1/4 * (1 - F) + 1/4 * G.
def expected_table(records: list[dict]) -> list[tuple[str, str]]:
    confidence = {r["id"]: r["confidence"] for r in records}
    assert confidence["A"] > max(confidence["B"], confidence["F"], confidence["G"])
    assert min(confidence["A"], confidence["B"]) >= 0.9
    possible = Settings.possible_threshold
    assert Settings.threshold > confidence["F"] >= possible > confidence["G"]
    assert int(confidence["F"] * 10) != int(confidence["G"] * 10)
    ece = abs(0.5 - (confidence["A"] + confidence["B"]) / 2) / 2
    ece += (1 - confidence["F"] + confidence["G"]) / 4
    return [
        ("questions evaluated", "4"),
        ("hit@1", "0.500"),
        ("hit@3", "0.750"),
        ("MRR", "0.583"),
        ("abstain rate", "0.500"),
        ("answered right", "1"),
        ("answered wrong", "1"),
        ("possible answer right / wrong", "1 / 0"),
        ("not found, top right / wrong", "0 / 1"),
        (f"accuracy (threshold {Settings.threshold:.3f})", "0.500"),
        ("best threshold", f"{confidence['A']:.3f} (accuracy 0.750)"),
        ("calibration error (ECE, 10 bins)", f"{ece:.3f}"),
        ("without expected answer", "1"),
    ]


def _table(err: str) -> list[tuple[str, str]]:
    rows = []
    for line in err.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}(\S.*)$", line)
        if m:
            rows.append((m.group(1), m.group(2)))
    return rows


def test_evaluation_table_on_stderr(
    fake_index: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ask(fake_index, str(BATCH / "eval.jsonl")) == 0
    out, err = capsys.readouterr()
    records = _records(out)
    assert [(r["id"], r["answered"], r["tier"]) for r in records] == [
        ("A", True, "answer"),
        ("B", True, "answer"),
        ("E", True, "answer"),
        ("F", False, "possible"),
        ("G", False, "none"),
    ]
    assert _table(err) == expected_table(records)


def test_quiet_hides_the_table(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, "--quiet", str(BATCH / "eval.jsonl")) == 0
    assert capsys.readouterr().err == ""


def test_report(fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.html"
    assert _ask(fake_index, str(BATCH / "eval.jsonl"), "--report", str(report)) == 0
    out, err = capsys.readouterr()
    assert "report written" in err
    page = report.read_text(encoding="utf-8")
    summary = page.split("<h2>Questions</h2>")[0]
    for label, value in expected_table(_records(out)):
        cell = f'<tr><th>{label}</th><td class="num">{value}</td></tr>'
        assert cell in summary, cell
    assert '<img src="data:image/png;base64,iVBOR' in page
    tiers = page.split("<h2>Tiers</h2>")[1].split("<h2>")[0]
    assert "<tr><td>answer</td>" + _num("1", "1", "2") + "</tr>" in tiers
    assert "<tr><td>possible answer</td>" + _num("1", "0", "1") + "</tr>" in tiers
    assert "<tr><td>not found</td>" + _num("0", "1", "1") + "</tr>" in tiers
    calibration = page.split("<h2>Calibration</h2>")[1].split("<h2>")[0]
    ece = dict(expected_table(_records(out)))["calibration error (ECE, 10 bins)"]
    assert f"<strong>ECE {ece}</strong> over 4 questions" in calibration
    assert "<td>0.9&ndash;1.0</td>" + _num("2") in calibration  # A and B
    # From the answer threshold only A and B are covered (half the questions), one of them
    # wrong; from the possible threshold F (right) too; from 0.1 all four, B and G wrong.
    t, p = f"{Settings.threshold:.3f}", f"{Settings.possible_threshold:.3f}"
    assert "<tr>" + _num(t, "2", "0.500", "0.500") + "<td>answer threshold</td>" in page
    assert "<tr>" + _num(p, "3", "0.750", "0.333") + "<td>possible threshold</td>" in page
    assert "<tr>" + _num("0.100", "4", "1.000", "0.500") + "<td></td>" in page
    questions = page.split("<h2>Questions</h2>")[1]
    assert [m for m in re.findall(r'<tr class="([\w-]+)">', questions)] == [
        "right",
        "wrong",
        "possible-right",
        "abstained",
    ]
    assert "Mona Lisa" in questions and "walking || strolling" in questions


def _num(*cells: str) -> str:
    return "".join(f'<td class="num">{c}</td>' for c in cells)


def test_possible_tier_in_outputs_and_report(
    fake_index: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the possible threshold below F's and G's confidence, they are possible answers
    (F's right, G's wrong): not answered (the abstain rate is unchanged), shown with their
    tier everywhere."""
    monkeypatch.setenv("CHATBOT_POSSIBLE_THRESHOLD", "0.1")
    report = tmp_path / "report.html"
    out = tmp_path / "answers.csv"
    questions = str(BATCH / "eval.jsonl")
    assert _ask(fake_index, questions, "--out", str(out), "--report", str(report)) == 0
    table = dict(_table(capsys.readouterr().err))
    assert table["abstain rate"] == "0.500"
    assert table["possible answer right / wrong"] == "1 / 1"
    assert table["not found, top right / wrong"] == "0 / 0"
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["id"], r["answered"], r["tier"]) for r in rows] == [
        ("A", "true", "answer"),
        ("B", "true", "answer"),
        ("E", "true", "answer"),
        ("F", "false", "possible"),
        ("G", "false", "possible"),
    ]
    page = report.read_text(encoding="utf-8")
    assert "<tr><td>possible answer</td>" + _num("1", "1", "2") + "</tr>" in page
    assert "<tr>" + _num("0.100", "4", "1.000", "0.500") + "<td>possible threshold</td>" in page
    listed = page.split("<h2>Questions</h2>")[1]
    assert re.findall(r'<tr class="([\w-]+)">', listed) == [
        "right",
        "wrong",
        "possible-right",
        "possible-wrong",
    ]
    assert listed.count("<td>possible answer</td>") == 2
    assert listed.count("<td>possible, right</td>") == 1
    assert listed.count("<td>possible, wrong</td>") == 1


def test_threshold_flag(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, "--threshold", "0", str(BATCH / "eval.jsonl")) == 0
    out, err = capsys.readouterr()
    assert all(r["answered"] for r in _records(out))
    table = dict(_table(err))
    assert table["abstain rate"] == "0.000"
    assert table["answered wrong"] == "2"
    assert table["accuracy (threshold 0.000)"] == "0.500"


def test_report_without_expected(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "r.html"
    assert _ask(fake_index, str(BATCH / "questions.txt"), "--report", str(report)) == 0
    assert "questions evaluated" in report.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- bad input


def test_malformed_jsonl_exit_1_names_the_line(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.jsonl"
    assert _ask(fake_index, str(BATCH / "bad.jsonl"), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: ")
    assert re.search(r"bad\.jsonl line 2: malformed JSON .*--skip-bad", err)
    assert [r["id"] for r in _read(out)] == ["a"]  # answered before the bad line


def test_skip_bad_exit_2(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, "--skip-bad", str(BATCH / "bad.jsonl")) == 2
    out, err = capsys.readouterr()
    assert [r["id"] for r in _records(out)] == ["a", "f"]
    for line in (2, 3, 4, 5, 6):
        assert f"Warning: skipped {BATCH / 'bad.jsonl'} line {line}:" in err
    assert "skipped 5 bad lines" in err


def test_non_utf8_input(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "latin1.txt")) == 1
    err = capsys.readouterr().err
    assert re.match(r"Error: \S*latin1\.txt line 2: not valid UTF-8 \(byte 0xe9", err)
    assert _ask(fake_index, "--skip-bad", str(BATCH / "latin1.txt")) == 2
    out, _ = capsys.readouterr()
    assert [r["id"] for r in _records(out)] == ["1", "3"]  # ids stay positional


def test_missing_question_column(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in ([], ["--skip-bad"]):
        assert _ask(fake_index, *extra, str(BATCH / "no_question_col.csv")) == 1
        err = capsys.readouterr().err
        assert re.match(r"Error: \S*no_question_col\.csv line 1: .*'question' column", err)


def test_missing_file_and_index(
    fake_index: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _ask(fake_index, str(tmp_path / "nope.txt")) == 1
    assert capsys.readouterr().err.startswith("Error: ")
    argv = ["ask", "--index", str(tmp_path / "none"), "--model", "fake-64"]
    assert main([*argv, str(BATCH / "questions.txt")]) == 1
    assert capsys.readouterr().err.startswith("Error: no index")


@pytest.mark.parametrize(
    "argv",
    [["--bogus"], ["-k", "three"], ["--format", "xml"], []],
    ids=["unknown-flag", "bad-k", "bad-format", "no-file"],
)
def test_usage_errors_exit_1(
    fake_index: Settings, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    files = [] if argv == [] else [str(BATCH / "questions.txt")]
    with pytest.raises(SystemExit) as exc:
        _ask(fake_index, *argv, *files)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "named", "command"),
    [
        (["index", "build", "--bogus"], "--bogus", "chatbot index build"),
        (["index"], "index_command", "chatbot index"),
        (["index", "list", "--index"], "--index", "chatbot index list"),
        (["chat", "--port", "x"], "--port", "chatbot chat"),
        (["eval", "--limit", "x", "f.json"], "--limit", "chatbot eval"),
        (["bogus"], "bogus", "chatbot"),
        (["--bogus"], "--bogus", "chatbot"),
    ],
)
def test_usage_errors_of_every_command_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str, command: str
) -> None:
    """One ``Error:`` line naming the problem and the command's --help, exit 1 (not 2)."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert named in err and err.rstrip().endswith(f"see `{command} --help`"), err


@pytest.mark.parametrize("argv", [["--help"], ["index", "build", "--help"], ["ask", "--help"]])
def test_help_exits_0(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")


# --------------------------------------------------------------------------- progress


def test_progress_bar_on_a_terminal(
    fake_index: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert _ask(fake_index, str(BATCH / "questions.txt")) == 0
    err = capsys.readouterr().err
    assert re.search(r"answering: 3q .*q/s\]", err)
    assert _ask(fake_index, "--quiet", str(BATCH / "questions.txt")) == 0
    assert capsys.readouterr().err == ""


def test_no_progress_when_piped(fake_index: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    assert _ask(fake_index, str(BATCH / "questions.txt")) == 0  # capsys' stderr is no TTY
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- chatbot eval


def _eval(*args: str) -> int:
    return main(["eval", "--model", "fake-64", *args])


def test_eval_squad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "squad.html"
    assert _eval(str(SQUAD), "--report", str(report), "--baselines") == 0
    out, err = capsys.readouterr()
    assert out.startswith("8 questions, 3 documents, 6 passages;")
    table = dict(_table(out))
    assert table["questions evaluated"] == "8"
    hit1, hitk, mrr = (float(table[k]) for k in ("hit@1", "hit@3", "MRR"))
    assert 0 < hit1 <= hitk <= 1 and hit1 <= mrr <= hitk
    assert int(table["answered right"]) + int(table["answered wrong"]) == round(
        8 * (1 - float(table["abstain rate"]))
    )
    assert re.search(r"^fused\s+" + re.escape(table["hit@1"]), out, re.M)  # same ranking
    assert re.search(r"^bm25-only\s", out, re.M) and re.search(r"^dense-only\s", out, re.M)
    page = report.read_text(encoding="utf-8")
    assert "SQuAD evaluation" in page and "data:image/png;base64," in page
    assert page.count("<tr class=") == 8
    assert "report written" in err


def test_eval_gold_spans_are_the_expected_texts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "squad.html"
    assert _eval(str(SQUAD), "-k", "1", "--limit", "1", "--report", str(report)) == 0
    out = capsys.readouterr().out
    assert out.startswith("4 questions, 1 documents, 2 passages;")
    table = dict(_table(out))
    assert table["questions evaluated"] == "4" and "hit@1" in table
    page = report.read_text(encoding="utf-8")
    for answer in ("Camellia sinensis", "steamed or pan-fired", "80 degrees Celsius"):
        assert f"<td>{answer}</td>" in page


def test_eval_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _eval(str(tmp_path / "missing.json")) == 1
    assert capsys.readouterr().err.startswith("Error: ")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "1.1"}', encoding="utf-8")
    assert _eval(str(bad)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "SQuAD-format" in err
