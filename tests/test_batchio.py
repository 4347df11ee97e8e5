"""Tests for chatbot.batchio: question readers, error reporting, result writers and resume."""

from __future__ import annotations

import csv
import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatbot.batchio import (
    InputError,
    Question,
    csv_columns,
    csv_row,
    detect_format,
    open_writer,
    read_questions,
    record_tier,
)

DATA = Path(__file__).parent / "data" / "batch"


def _record(i: int, *, text: str = "passage", sources: int = 3) -> dict:
    """A record shaped like ``Answer.to_dict()``."""
    return {
        "id": str(i),
        "question": f"question {i}?",
        "answered": i % 2 == 0,
        "tier": "answer" if i % 2 == 0 else "possible",
        "answer": text if i % 2 == 0 else "",
        "confidence": 0.5 + i / 100,
        "passages": [
            {
                "rank": r,
                "text": text,
                "score": 0.9,
                "source": f"doc{r}.md",
                "start": 10 * r,
                "end": 10 * r + len(text),
                "heading": "",
                "highlight": {"start": 0, "end": len(text)},
            }
            for r in range(1, sources + 1)
        ],
    }


# --------------------------------------------------------------------------- detect_format


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        ("q.txt", "txt"),
        ("q.csv", "csv"),
        ("Q.CSV", "csv"),
        ("dir.v2/q.tsv", "tsv"),
        ("q.jsonl", "jsonl"),
        ("q.ndjson", "jsonl"),
        ("-", "txt"),
    ],
)
def test_detect_format_by_extension(path: str, fmt: str) -> None:
    assert detect_format(path, None) == fmt


def test_detect_format_explicit_wins() -> None:
    assert detect_format("questions.dat", "CSV") == "csv"
    assert detect_format("-", "jsonl") == "jsonl"


@pytest.mark.parametrize("path", ["questions.xlsx", "questions"])
def test_detect_format_unknown_extension(path: str) -> None:
    with pytest.raises(InputError, match="--input-format") as err:
        detect_format(path, None)
    assert path in str(err.value)


def test_detect_format_bad_explicit() -> None:
    with pytest.raises(InputError, match="--input-format"):
        detect_format("q.txt", "xml")


# --------------------------------------------------------------------------- formats


def test_read_txt_skips_blank_lines() -> None:
    qs = list(read_questions(str(DATA / "questions.txt")))
    assert qs == [
        Question("1", "What is the refund policy?", None, 1),
        Question("2", "How do I reset my password?", None, 3),
        Question("3", 'Who wrote "Ulysses"?', None, 5),
    ]


def test_read_csv() -> None:
    qs = list(read_questions(str(DATA / "questions.csv")))
    assert qs == [
        Question("q1", "What is the refund policy?", ["30 days"], 2),
        Question("q2", "Where, exactly, is the office?", ["Main Street", "Building 4"], 3),
        Question("q3", "How do I reset my password?", None, 4),
        Question("4", "Who can approve leave?", ["manager", "team lead"], 5),
    ]


def test_read_tsv_keeps_literal_quotes() -> None:
    qs = list(read_questions(str(DATA / "questions.tsv")))
    assert qs == [
        Question("1", "What is the refund policy?", ["30 days"], 2),
        Question("2", 'Who wrote "Ulysses"?', ["James Joyce", "Joyce"], 3),
        Question("3", "How do I reset my password?", None, 5),
    ]


def test_read_jsonl() -> None:
    qs = list(read_questions(str(DATA / "questions.jsonl")))
    assert qs == [
        Question("a", "What is the refund policy?", ["30 days"], 1),
        Question("7", "Where is the office?", ["Main Street", "Building 4"], 3),
        Question("3", "Où est le café ?", None, 4),
    ]


def test_csv_bom_crlf_and_quoted_newline(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(
        b'\xef\xbb\xbfQuestion,ID\r\n"Two\r\nlines?",x\r\n\r\nNext one?,\r\n'
        b'"He said ""hi"", why?",z\r\n'
    )
    qs = list(read_questions(str(path)))
    assert qs == [
        Question("x", "Two\r\nlines?", None, 2),
        Question("2", "Next one?", None, 5),
        Question("z", 'He said "hi", why?', None, 6),
    ]


def test_explicit_format_overrides_extension(tmp_path: Path) -> None:
    path = tmp_path / "questions.dat"
    path.write_text('{"question": "Q?"}\n', encoding="utf-8")
    assert [q.question for q in read_questions(str(path), "jsonl")] == ["Q?"]


def test_stdin_binary(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = "Première question ?\n\nSecond?\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"))
    qs = list(read_questions("-"))
    assert [(q.id, q.question, q.line) for q in qs] == [
        ("1", "Première question ?", 1),
        ("2", "Second?", 3),
    ]


def test_stdin_text_only_and_jsonl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"question": "Q1"}\n{"question": "Q2"}\n'))
    assert [q.question for q in read_questions("-", "jsonl")] == ["Q1", "Q2"]


# --------------------------------------------------------------------------- errors


def test_bad_jsonl_raises_with_line_number() -> None:
    it = read_questions(str(DATA / "bad.jsonl"))
    assert next(it).id == "a"
    with pytest.raises(InputError) as err:
        next(it)
    message = str(err.value)
    assert message.startswith(f"{DATA / 'bad.jsonl'} line 2: malformed JSON")
    assert message.endswith("fix the line or pass --skip-bad")
    assert "\n" not in message
    assert err.value.line == 2


def test_bad_jsonl_skip_bad_reports_each_line() -> None:
    messages: list[str] = []
    qs = list(read_questions(str(DATA / "bad.jsonl"), skip_bad=True, on_bad=messages.append))
    assert [(q.id, q.question, q.line) for q in qs] == [("a", "ok one", 1), ("f", "ok two", 7)]
    assert len(messages) == 5
    for line, (message, what) in enumerate(
        zip(
            messages,
            [
                "malformed JSON",
                '"question" must be a string, not a number',
                'missing "question" field',
                "empty question",
                "expected a JSON object",
            ],
            strict=True,
        ),
        start=2,
    ):
        assert f"bad.jsonl line {line}: {what}" in message
        assert message.endswith("; fix the line or pass --skip-bad")


def test_skip_bad_without_callback_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="chatbot.batchio"):
        qs = list(read_questions(str(DATA / "bad.jsonl"), skip_bad=True))
    assert len(qs) == 2
    assert "bad.jsonl line 2: malformed JSON" in caplog.text


def test_non_utf8_reports_line() -> None:
    path = str(DATA / "latin1.txt")
    with pytest.raises(InputError, match=r"latin1\.txt line 2: not valid UTF-8 \(byte 0xe9"):
        list(read_questions(path))
    messages: list[str] = []
    qs = list(read_questions(path, skip_bad=True, on_bad=messages.append))
    # The bad line keeps its question number, so ids stay tied to positions in the file.
    assert [(q.id, q.question, q.line) for q in qs] == [
        ("1", "First question?", 1),
        ("3", "Third question?", 3),
    ]
    assert len(messages) == 1 and "line 2" in messages[0]


def test_non_utf8_in_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = tmp_path / "q.csv"
    csv_path.write_bytes(b"question\nok?\ncaf\xe9?\nfine?\n")
    with pytest.raises(InputError, match=r"q\.csv line 3: not valid UTF-8"):
        list(read_questions(str(csv_path)))
    qs = list(read_questions(str(csv_path), skip_bad=True, on_bad=lambda m: None))
    assert [(q.question, q.line) for q in qs] == [("ok?", 2), ("fine?", 4)]
    jsonl_path = tmp_path / "q.jsonl"
    jsonl_path.write_bytes(b'{"question": "ok?"}\n{"question": "caf\xe9?"}\n')
    with pytest.raises(InputError, match=r"q\.jsonl line 2: not valid UTF-8"):
        list(read_questions(str(jsonl_path)))


def test_missing_question_column_is_fatal_even_with_skip_bad() -> None:
    path = str(DATA / "no_question_col.csv")
    for skip in (False, True):
        with pytest.raises(InputError) as err:
            list(read_questions(path, skip_bad=skip, on_bad=lambda m: None))
        message = str(err.value)
        assert "no_question_col.csv line 1" in message
        assert "'question' column" in message and "'text'" in message


def test_csv_malformed_rows(tmp_path: Path) -> None:
    path = tmp_path / "questions.csv"
    path.write_text(
        "id,question\n"
        "1,Fine?\n"
        "2,Where, exactly, is it?\n"  # unquoted commas: too many fields
        "3,\n"  # empty question
        "4,Also fine?,\n"  # a trailing empty cell is tolerated
        '5,Short row\n6\n7,"[bad expected"\n',
        encoding="utf-8",
    )
    with pytest.raises(InputError) as err:
        list(read_questions(str(path)))
    assert str(err.value).startswith(f"{path} line 3: malformed row: 4 fields but the header has 2")
    assert "--skip-bad" in str(err.value)
    messages: list[str] = []
    qs = list(read_questions(str(path), skip_bad=True, on_bad=messages.append))
    assert [(q.id, q.question, q.line) for q in qs] == [
        ("1", "Fine?", 2),
        ("4", "Also fine?", 5),
        ("5", "Short row", 6),
        ("7", "[bad expected", 8),  # no expected column: just question text
    ]
    assert [m.split(":")[0] for m in messages] == [
        f"{path} line 3",
        f"{path} line 4",
        f"{path} line 7",
    ]


def test_csv_bad_expected_json(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        'question,expected\nA?,"[""x"", 3]"\nB?,"[""unclosed"""\nC?,[]\n', encoding="utf-8"
    )
    messages: list[str] = []
    qs = list(read_questions(str(path), skip_bad=True, on_bad=messages.append))
    assert [(q.question, q.expected) for q in qs] == [("C?", None)]
    assert "line 2: 'expected' list must contain only strings" in messages[0].replace('"', "'")
    assert "line 3: 'expected' starts with '['" in messages[1]


def test_csv_stray_and_unclosed_quotes(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text(
        'id,question\n1,"Quoted" then text?\n2,Fine?\n3,"Never closed?\n4,Swallowed?\n',
        encoding="utf-8",
    )
    messages: list[str] = []
    qs = list(read_questions(str(path), skip_bad=True, on_bad=messages.append))
    assert [(q.id, q.line) for q in qs] == [("2", 3)]
    assert messages[0].startswith(f"{path} line 2: malformed row")
    assert messages[1].startswith(f"{path} line 4: malformed row (unexpected end of data)")


def test_jsonl_bad_id_and_expected(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "A", "id": 1.5}\n'
        '{"question": "B", "id": true}\n'
        '{"question": "C", "expected": 3}\n'
        '{"question": "D", "expected": ["x", 1]}\n'
        '{"question": "E", "expected": "x || y", "id": ""}\n'
        '{"question": "F", "expected": []}\n',
        encoding="utf-8",
    )
    messages: list[str] = []
    qs = list(read_questions(str(path), skip_bad=True, on_bad=messages.append))
    assert [(q.id, q.question, q.expected) for q in qs] == [
        ("5", "E", ["x", "y"]),
        ("6", "F", None),
    ]
    assert [m.split(":")[0].rsplit(" ", 1)[1] for m in messages] == ["1", "2", "3", "4"]


def test_missing_file_fails_eagerly(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot open"):
        read_questions(str(tmp_path / "nope.txt"))


def test_empty_files(tmp_path: Path) -> None:
    for name in ("e.txt", "e.csv", "e.tsv", "e.jsonl"):
        (tmp_path / name).write_bytes(b"")
        assert list(read_questions(str(tmp_path / name))) == []


# --------------------------------------------------------------------------- streaming


def _write_lines(path: Path, lines: Iterator[str]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["txt", "csv", "jsonl"])
def test_streaming_memory_stays_small(tmp_path: Path, fmt: str) -> None:
    n = 200_000
    path = tmp_path / f"big.{fmt}"
    if fmt == "txt":
        lines = (f"Question number {i} about something?\n" for i in range(n))
    elif fmt == "csv":
        header = iter(["id,question,expected\n"])
        body = (f'q{i},"Question {i}, about something?",answer {i}\n' for i in range(n))
        lines = (x for part in (header, body) for x in part)
    else:
        lines = (json.dumps({"id": i, "question": f"Question {i}?"}) + "\n" for i in range(n))
    _write_lines(path, lines)
    assert path.stat().st_size > 5_000_000  # the file alone is bigger than the budget

    tracemalloc.start()
    try:
        count = 0
        last = None
        for q in read_questions(str(path)):
            count += 1
            last = q
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == n
    assert last is not None and last.line == (n + 1 if fmt == "csv" else n)
    assert peak < 5 * 1024 * 1024, f"peak {peak} bytes"


# --------------------------------------------------------------------------- writers


def test_jsonl_writer(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("old contents\n", encoding="utf-8")
    writer, done = open_writer("jsonl", str(out))
    assert done == 0
    records = [_record(0, text="caf\u00e9 \u2013 \u201cquoted\u201d"), _record(1)]
    writer.write(records[0])
    # Flushed per record: another reader sees the complete line before close().
    assert out.read_text(encoding="utf-8") == json.dumps(records[0], ensure_ascii=False) + "\n"
    writer.write(records[1])
    writer.close()
    writer.close()  # idempotent
    text = out.read_text(encoding="utf-8")
    assert "caf\u00e9 \u2013 \u201cquoted\u201d" in text  # ensure_ascii=False
    assert [json.loads(line) for line in text.splitlines()] == records
    with pytest.raises(ValueError):
        writer.write(records[0])


def test_csv_writer(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    writer, done = open_writer("csv", str(out), k=4)
    assert done == 0
    with writer:
        writer.write(_record(0, text='multi\nline, with "quotes"', sources=2))
        writer.write(
            {  # written before tiers existed: no "tier", derived from "answered"
                "id": "x",
                "question": "none?",
                "answered": False,
                "answer": "",
                "confidence": 0.1,
                "passages": [],
            }
        )
        writer.write(_record(1, sources=0))
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert (
        rows[0]
        == csv_columns(4)
        == [
            "id",
            "question",
            "answered",
            "tier",
            "confidence",
            "answer",
            "source",
            "start",
            "end",
            "rank2_source",
            "rank3_source",
            "rank4_source",
        ]
    )
    assert rows[1] == [
        "0",
        "question 0?",
        "true",
        "answer",
        "0.5",
        'multi\nline, with "quotes"',
        "doc1.md",
        "10",
        str(10 + len('multi\nline, with "quotes"')),
        "doc2.md",
        "",
        "",
    ]
    assert rows[2] == ["x", "none?", "false", "none", "0.1", "", "", "", "", "", "", ""]
    assert rows[3][:5] == ["1", "question 1?", "false", "possible", "0.51"]


def test_record_tier() -> None:
    assert record_tier({"answered": False, "tier": "possible"}) == "possible"
    assert record_tier({"answered": True, "tier": "answer"}) == "answer"
    # Records written before tiers existed (or with an unknown tier): from "answered".
    assert record_tier({"answered": True}) == "answer"
    assert record_tier({"answered": False}) == "none"
    assert record_tier({}) == "none"
    assert record_tier({"answered": True, "tier": "maybe"}) == "answer"
    assert record_tier({"answered": False, "tier": None}) == "none"


def test_csv_row_without_tier_is_the_old_layout() -> None:
    record = _record(1)
    old = csv_row(record, 3, tier=False)
    new = csv_row(record, 3)
    assert len(old) == len(csv_columns(3, tier=False)) == len(new) - 1
    assert new[:3] + new[4:] == old and new[3] == "possible"


def test_stdout_writer(capsys: pytest.CaptureFixture[str]) -> None:
    writer, done = open_writer("jsonl", None)
    writer.write(_record(2, text="naïve"))
    writer.close()
    assert done == 0
    assert json.loads(capsys.readouterr().out)["answer"] == "naïve"
    writer, _ = open_writer("csv", "-", k=2)
    writer.write(_record(1))
    writer.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "id,question,answered,tier,confidence,answer,source,start,end,rank2_source"
    assert not sys.stdout.closed


def test_writer_rejects_bad_args(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="output format"):
        open_writer("xml", str(tmp_path / "o.xml"))
    with pytest.raises(ValueError, match="--resume"):
        open_writer("jsonl", None, resume=True)
    with pytest.raises(ValueError, match="--resume"):
        open_writer("csv", "-", resume=True)


# --------------------------------------------------------------------------- resume


def test_resume_jsonl_truncates_partial_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    writer, _ = open_writer("jsonl", str(out))
    for i in range(3):
        writer.write(_record(i))
    writer.close()
    complete = out.read_bytes()
    with out.open("ab") as fh:
        fh.write(b'{"id": "3", "question": "interrupt')
    writer, done = open_writer("jsonl", str(out), resume=True)
    assert done == 3
    assert out.read_bytes() == complete  # the partial line is gone
    writer.write(_record(3))
    writer.close()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["0", "1", "2", "3"]


def test_resume_missing_or_empty_file(tmp_path: Path) -> None:
    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"new.{fmt}"
        writer, done = open_writer(fmt, str(out), resume=True)
        assert done == 0
        writer.write(_record(0))
        writer.close()
        writer, done = open_writer(fmt, str(out), resume=True)
        writer.close()
        assert done == 1


def test_resume_jsonl_corrupt_line_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "0"}\nnot json\n{"id": "2"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="line 2"):
        open_writer("jsonl", str(out), resume=True)


def test_resume_without_flag_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": "0"}\n', encoding="utf-8")
    writer, done = open_writer("jsonl", str(out))
    writer.close()
    assert done == 0 and out.read_bytes() == b""


def test_resume_csv_truncates_partial_row(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    writer, _ = open_writer("csv", str(out))
    writer.write(_record(0, text="line one\nline two, with a comma"))  # quoted newline
    writer.write(_record(1))
    writer.close()
    complete = out.read_bytes()
    for partial in (b'2,"question 2?",true', b'2,"question 2?",true,0.52,"cut\r\n inside'):
        out.write_bytes(complete + partial)
        writer, done = open_writer("csv", str(out), resume=True)
        writer.close()
        assert done == 2, partial
        assert out.read_bytes() == complete
    writer, done = open_writer("csv", str(out), resume=True)
    writer.write(_record(2))
    writer.close()
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == ["0", "1", "2"]
    assert rows[0]["answer"] == "line one\nline two, with a comma"


def test_resume_csv_header_only_and_partial_header(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    writer, _ = open_writer("csv", str(out))
    writer.close()
    header = out.read_bytes()
    writer, done = open_writer("csv", str(out), resume=True)
    writer.write(_record(0))
    writer.close()
    assert done == 0
    assert out.read_bytes().count(b"rank2_source") == 1
    out.write_bytes(header[:10])  # interrupted while writing the header
    writer, done = open_writer("csv", str(out), resume=True)
    writer.write(_record(0))
    writer.close()
    assert done == 0
    assert out.read_bytes().startswith(header) and out.read_bytes().count(header) == 1


def test_resume_csv_with_other_columns_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    writer, _ = open_writer("csv", str(out), k=3)
    writer.write(_record(0))
    writer.close()
    with pytest.raises(InputError, match="columns"):
        open_writer("csv", str(out), resume=True, k=5)


def test_resume_csv_written_before_the_tier_column(tmp_path: Path) -> None:
    """A file in the old layout (no ``tier``) is resumed in that layout: rows stay aligned."""
    out = tmp_path / "old.csv"
    with out.open("w", encoding="utf-8", newline="") as fh:
        old = csv.writer(fh)
        old.writerow(csv_columns(3, tier=False))
        old.writerow(csv_row(_record(0), 3, tier=False))
    writer, done = open_writer("csv", str(out), resume=True, k=3)
    writer.write(_record(1))
    writer.close()
    assert done == 1
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert "tier" not in rows[0]
    assert [(r["id"], r["answered"], r["confidence"]) for r in rows] == [
        ("0", "true", "0.5"),
        ("1", "false", "0.51"),
    ]
    with pytest.raises(InputError, match="columns"):  # other k: still an error
        open_writer("csv", str(out), resume=True, k=4)
    # A new file, or one in the current layout, gets the tier column.
    writer, _ = open_writer("csv", str(out), k=3)
    writer.write(_record(1))
    writer.close()
    writer, done = open_writer("csv", str(out), resume=True, k=3)
    writer.write(_record(2))
    writer.close()
    with out.open(encoding="utf-8", newline="") as fh:
        assert [r["tier"] for r in csv.DictReader(fh)] == ["possible", "answer"]


_texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30
)  # any text, newlines and quotes included


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fmt=st.sampled_from(["jsonl", "csv"]),
    texts=st.lists(_texts, min_size=1, max_size=5),
    cut=st.floats(min_value=0, max_value=1),
)
def test_resume_after_any_cut(tmp_path: Path, fmt: str, texts: list[str], cut: float) -> None:
    """Cutting the file at any byte keeps exactly the records that were complete there."""
    out = tmp_path / f"prop.{fmt}"
    writer, _ = open_writer(fmt, str(out))
    ends = []  # byte offset at which each record is complete
    for i, text in enumerate(texts):
        rec = _record(i, text=text)
        rec["question"] = text
        writer.write(rec)
        ends.append(out.stat().st_size)
    writer.close()
    data = out.read_bytes()
    at = int(len(data) * cut)
    out.write_bytes(data[:at])
    writer, done = open_writer(fmt, str(out), resume=True)
    writer.close()
    assert done == sum(1 for end in ends if end <= at)
    kept = out.read_bytes()
    assert data.startswith(kept)
    if fmt == "jsonl":
        assert len(kept.splitlines()) == done
    else:
        with out.open(encoding="utf-8", newline="") as fh:
            assert len(list(csv.reader(fh))) == (done + 1 if kept else 0)
