"""Batch I/O: stream questions in (txt/csv/tsv/jsonl), write one result record per question out.

Reading is a generator over the raw bytes, decoded line by line, so memory stays flat for any
file size and a bad byte is reported with its line number. Writers flush after every record so
an interrupted run leaves only whole records, which ``open_writer(resume=True)`` counts (after
truncating a partial last record) to let the caller skip questions already answered.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Self

from .types import TIERS

logger = logging.getLogger(__name__)

INPUT_FORMATS = ("txt", "csv", "tsv", "jsonl")
OUTPUT_FORMATS = ("jsonl", "csv")
_EXTENSIONS = {
    ".txt": "txt",
    ".text": "txt",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
ALT_SEPARATOR = " || "  # separates alternative expected answers in a text cell
SKIP_HINT = "fix the line or pass --skip-bad"
STDIN_NAME = "<stdin>"


@dataclass
class Question:
    """One question read from a batch file; ``line`` is the 1-based line it starts on."""

    id: str
    question: str
    expected: list[str] | None
    line: int


class InputError(ValueError):
    """A batch file problem; the one-line message names the file, the line and the remedy."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.path = path
        self.line = line


# --------------------------------------------------------------------------- reading


def detect_format(path: str, input_format: str | None) -> str:
    """Return the question-file format: ``input_format`` if given, else from the extension.

    ``'-'`` (stdin) defaults to ``txt``; an unknown extension is an error rather than a guess,
    because misreading e.g. a CSV as plain text would silently ask the header as a question.
    """
    if input_format:
        fmt = input_format.strip().lower()
        if fmt not in INPUT_FORMATS:
            raise InputError(
                f"unknown input format {input_format!r}; "
                f"pass --input-format {'|'.join(INPUT_FORMATS)}",
                path=path,
            )
        return fmt
    if path == "-":
        return "txt"
    ext = os.path.splitext(path)[1].lower()
    fmt = _EXTENSIONS.get(ext)
    if fmt is None:
        shown = f"extension {ext!r}" if ext else "no extension"
        raise InputError(
            f"{path}: cannot tell the question file format ({shown}); "
            f"pass --input-format {'|'.join(INPUT_FORMATS)}",
            path=path,
        )
    return fmt


def read_questions(
    path: str,
    input_format: str | None = None,
    *,
    skip_bad: bool = False,
    on_bad: Callable[[str], None] | None = None,
) -> Iterator[Question]:
    """Stream the questions of ``path`` (``'-'`` = stdin) one at a time.

    The format is checked and the file is opened eagerly, so a wrong path or extension fails
    before any output is written; rows are parsed lazily. A bad line raises
    :class:`InputError`, or with ``skip_bad`` is skipped and reported through ``on_bad``
    (default: a logged warning). A CSV/TSV header without a ``question`` column is always fatal.
    """
    fmt = detect_format(path, input_format)
    name = STDIN_NAME if path == "-" else path
    if path == "-":
        source: IO[Any] = getattr(sys.stdin, "buffer", sys.stdin)
        owned = False
    else:
        try:
            source = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except OSError as exc:
            raise InputError(
                f"{path}: cannot open question file ({exc.strerror or exc}); check the path",
                path=path,
            ) from None
        owned = True
    reader = _QuestionReader(name, skip_bad, on_bad)
    return reader.run(fmt, source, owned)


class _QuestionReader:
    """Parsing state shared by the per-format parsers (error policy, physical line count)."""

    def __init__(self, name: str, skip_bad: bool, on_bad: Callable[[str], None] | None):
        self.name = name
        self.skip_bad = skip_bad
        self.on_bad = on_bad
        self.lineno = 0  # physical lines consumed so far
        self.row_start = 0  # first physical line of the CSV row being parsed
        self._new_row = True

    def run(self, fmt: str, source: IO[Any], owned: bool) -> Iterator[Question]:
        try:
            if fmt == "txt":
                yield from self._txt(source)
            elif fmt == "jsonl":
                yield from self._jsonl(source)
            else:
                yield from self._delimited(source, "\t" if fmt == "tsv" else ",")
        finally:
            if owned:
                source.close()

    # -- helpers

    def bad(self, line: int, problem: str) -> None:
        """Raise for a bad line, or report it and return when skipping bad lines."""
        message = f"{self.name} line {line}: {problem}; {SKIP_HINT}"
        if not self.skip_bad:
            raise InputError(message, path=self.name, line=line)
        if self.on_bad is not None:
            self.on_bad(message)
        else:
            logger.warning("%s", message)

    def fatal(self, line: int, problem: str) -> InputError:
        return InputError(f"{self.name} line {line}: {problem}", path=self.name, line=line)

    def lines(self, source: Iterable[Any]) -> Iterator[tuple[int, str | None]]:
        """Yield ``(line number, text)``; text is None for a line that is not valid UTF-8."""
        for raw in source:
            self.lineno += 1
            n = self.lineno
            if isinstance(raw, bytes):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    self.bad(
                        n,
                        f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1}); "
                        "save the file as UTF-8",
                    )
                    yield n, None
                    continue
            else:
                text = raw
            if n == 1 and text.startswith("\ufeff"):
                text = text[1:]
            yield n, text

    # -- formats

    def _txt(self, source: Iterable[Any]) -> Iterator[Question]:
        n = 0
        for lineno, text in self.lines(source):
            if text is None:
                n += 1  # a bad line still holds a question's number, so ids stay positional
                continue
            question = text.strip()
            if not question:
                continue
            n += 1
            yield Question(str(n), question, None, lineno)

    def _jsonl(self, source: Iterable[Any]) -> Iterator[Question]:
        n = 0
        for lineno, text in self.lines(source):
            if text is None:
                n += 1
                continue
            if not text.strip():
                continue
            n += 1
            try:
                obj = json.loads(text.rstrip("\r\n"))  # columns refer to this line only
            except json.JSONDecodeError as exc:
                self.bad(lineno, f"malformed JSON ({exc.msg} at column {exc.colno})")
                continue
            if not isinstance(obj, dict):
                self.bad(lineno, 'expected a JSON object like {"question": "..."}')
                continue
            question = obj.get("question")
            if question is None:
                self.bad(lineno, 'missing "question" field')
                continue
            if not isinstance(question, str):
                self.bad(lineno, f'"question" must be a string, not {_json_type(question)}')
                continue
            question = question.strip()
            if not question:
                self.bad(lineno, "empty question")
                continue
            raw_id = obj.get("id")
            if raw_id is None:
                qid = str(n)
            elif isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
                self.bad(lineno, f'"id" must be a string or an integer, not {_json_type(raw_id)}')
                continue
            else:
                qid = str(raw_id).strip() or str(n)
            try:
                expected = _expected_from_json(obj.get("expected"))
            except ValueError as exc:
                self.bad(lineno, str(exc))
                continue
            yield Question(qid, question, expected, lineno)

    def _row_lines(self, source: Iterable[Any]) -> Iterator[str]:
        """Feed decoded lines to the csv module, noting where each row starts."""
        for lineno, text in self.lines(source):
            if text is None:
                continue
            if self._new_row:
                self.row_start = lineno
                self._new_row = False
            yield text

    def _delimited(self, source: Iterable[Any], delimiter: str) -> Iterator[Question]:
        # TSV follows the plain convention (no quoting: quotes are literal, fields hold no tab
        # or newline); CSV uses standard quoting, so quoted fields may hold commas and newlines.
        # strict: a stray or unclosed quote is reported, not silently merged into the rows below.
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
        reader = csv.reader(
            self._row_lines(source), delimiter=delimiter, quoting=quoting, strict=True
        )
        header: list[str] | None = None
        qcol = idcol = expcol = -1
        n = 0
        while True:
            self._new_row = True
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                n += 1
                self.bad(self.row_start, f"malformed row ({exc})")
                continue
            line = self.row_start
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.replace("\ufeff", "").strip().lower() for cell in row]
                if "question" not in header:
                    found = ", ".join(repr(c) for c in header)
                    raise self.fatal(
                        line,
                        f"the header has no 'question' column (found {found}); add a header "
                        "row with a 'question' column (optional 'id' and 'expected')",
                    )
                qcol = header.index("question")
                idcol = header.index("id") if "id" in header else -1
                expcol = header.index("expected") if "expected" in header else -1
                continue
            n += 1
            if len(row) > len(header) and any(cell.strip() for cell in row[len(header) :]):
                hint = " (quote fields that contain commas)" if delimiter == "," else ""
                self.bad(
                    line,
                    f"malformed row: {len(row)} fields but the header has {len(header)}{hint}",
                )
                continue

            def cell(i: int, row: list[str] = row) -> str:
                return row[i].strip() if 0 <= i < len(row) else ""

            question = cell(qcol)
            if not question:
                self.bad(line, "empty question")
                continue
            try:
                expected = _expected_from_cell(cell(expcol))
            except ValueError as exc:
                self.bad(line, str(exc))
                continue
            yield Question(cell(idcol) or str(n), question, expected, line)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _split_alternatives(text: str) -> list[str] | None:
    parts = [p.strip() for p in text.split(ALT_SEPARATOR)]
    parts = [p for p in parts if p]
    return parts or None


def _expected_list(value: list[Any]) -> list[str] | None:
    if not all(isinstance(v, str) for v in value):
        raise ValueError('"expected" list must contain only strings')
    parts = [v.strip() for v in value if v.strip()]
    return parts or None


def _expected_from_json(value: Any) -> list[str] | None:
    """``expected`` from a JSON value: null, a string (``" || "`` alternatives) or strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return _split_alternatives(value)
    if isinstance(value, list):
        return _expected_list(value)
    raise ValueError(f'"expected" must be a string or a list of strings, not {_json_type(value)}')


def _expected_from_cell(cell: str) -> list[str] | None:
    """``expected`` from a CSV cell: empty, a JSON list if it starts with ``[``, or text."""
    if not cell:
        return None
    if cell.startswith("["):
        try:
            value = json.loads(cell)
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"'expected' starts with '[' but is not a JSON list of strings ({exc.msg})"
            ) from None
        if not isinstance(value, list):
            raise ValueError("'expected' starts with '[' but is not a JSON list of strings")
        return _expected_list(value)
    return _split_alternatives(cell)


# --------------------------------------------------------------------------- writing


def record_tier(record: dict[str, Any]) -> str:
    """A result record's tier: its ``"tier"`` if that is one of :data:`~chatbot.types.TIERS`,
    else (records written before tiers existed) ``"answer"`` if it was answered, else
    ``"none"``."""
    tier = record.get("tier")
    if tier in TIERS:
        return str(tier)
    return "answer" if record.get("answered") else "none"


def csv_columns(k: int, *, tier: bool = True) -> list[str]:
    """CSV result columns: the top answer's fields, then the sources of ranks 2..k.

    ``tier=False`` gives the layout written before the ``tier`` column existed (a file in it
    is still resumed in it, see :func:`open_writer`).
    """
    base = ["id", "question", "answered", *(["tier"] if tier else []), "confidence"]
    base += ["answer", "source", "start", "end"]
    return base + [f"rank{r}_source" for r in range(2, max(k, 1) + 1)]


def csv_row(record: dict[str, Any], k: int, *, tier: bool = True) -> list[Any]:
    """Flatten an ``Answer.to_dict()`` record into a CSV row matching :func:`csv_columns`
    (a record without ``"tier"`` gets :func:`record_tier`'s)."""
    passages = record.get("passages") or []
    top = passages[0] if passages else {}
    row: list[Any] = [
        record.get("id", ""),
        record.get("question", ""),
        "true" if record.get("answered") else "false",
        *([record_tier(record)] if tier else []),
        record.get("confidence", ""),
        record.get("answer", ""),
        top.get("source", ""),
        top.get("start", ""),
        top.get("end", ""),
    ]
    for r in range(2, max(k, 1) + 1):
        row.append(passages[r - 1].get("source", "") if len(passages) >= r else "")
    return row


class ResultWriter:
    """Writes result records; every record is flushed at once so an interruption leaves
    only complete records behind (what resuming relies on)."""

    def __init__(self, stream: IO[str], *, close_stream: bool, detach: bool = False):
        self._stream = stream
        self._close_stream = close_stream
        self._detach = detach
        self.count = 0  # records written by this writer
        self.closed = False

    def write(self, record: dict[str, Any]) -> None:
        """Write one record and flush it."""
        if self.closed:
            raise ValueError("write to a closed ResultWriter")
        self._write(record)
        self._stream.flush()
        self.count += 1

    def _write(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and close the file (stdout is flushed, never closed)."""
        if self.closed:
            return
        self.closed = True
        self._stream.flush()
        if self._close_stream:
            self._stream.close()
        elif self._detach:
            self._stream.detach()  # type: ignore[attr-defined]  # keep stdout's buffer open

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# Characters that JSON allows raw in a string but ``str.splitlines`` (and JavaScript before
# ES2019) treats as line breaks; json.dumps already escapes the ASCII ones (\v, \f, \x1c-\x1e).
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_BREAK_TABLE = str.maketrans(_LINE_BREAKS)


def json_text(value: Any) -> str:
    """``value`` as JSON on one line: UTF-8 text kept readable (``ensure_ascii=False``), but
    U+0085, U+2028 and U+2029 escaped so every line-splitting tool sees one line."""
    text = json.dumps(value, ensure_ascii=False)
    # Raw, they can only occur inside strings, and there the escape means the same character.
    if any(c in text for c in _LINE_BREAKS):
        text = text.translate(_LINE_BREAK_TABLE)
    return text


def json_line(record: Any) -> str:
    """``record`` as one JSON Lines line (:func:`json_text` and a newline)."""
    return json_text(record) + "\n"


class JsonlResultWriter(ResultWriter):
    """One :func:`json_line` per record (``ensure_ascii=False``; line separators escaped)."""

    def _write(self, record: dict[str, Any]) -> None:
        self._stream.write(json_line(record))  # one write per record


class CsvResultWriter(ResultWriter):
    """One row per record; the columns are :func:`csv_columns` ``(k, tier=tier)``."""

    def __init__(
        self,
        stream: IO[str],
        *,
        k: int,
        write_header: bool,
        close_stream: bool,
        detach: bool,
        tier: bool = True,
    ):
        super().__init__(stream, close_stream=close_stream, detach=detach)
        self.k = k
        self.tier = tier
        self._csv = csv.writer(stream)
        if write_header:
            self._csv.writerow(csv_columns(k, tier=tier))
            stream.flush()

    def _write(self, record: dict[str, Any]) -> None:
        self._csv.writerow(csv_row(record, self.k, tier=self.tier))


def _output_format(fmt: str) -> str:
    fmt = fmt.strip().lower()
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; use {' or '.join(OUTPUT_FORMATS)}")
    return fmt


def scan_output(fmt: str, out: str, k: int = 3) -> tuple[int, int]:
    """``(complete records, bytes they take)`` of an existing result file; ``(0, 0)`` if there
    is none. Read-only: raises :class:`InputError` if the file is damaged or (CSV) has other
    columns than this run's ``k`` gives (with or without the ``tier`` column)."""
    fmt = _output_format(fmt)
    if not os.path.exists(out):
        return 0, 0
    return _scan_jsonl(out) if fmt == "jsonl" else _scan_csv(out, k)


def written_records(fmt: str, out: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, record)`` for the records of a result file, in order; ``line`` is the 1-based
    line the record starts on. JSONL gives whole records, CSV only ``id`` and ``question``.

    Meant for the first ``done`` records after :func:`scan_output` checked the file (a partial
    last record ends the iteration).
    """
    fmt = _output_format(fmt)
    with open(out, "rb") as fh:
        if fmt == "jsonl":
            for lineno, raw in enumerate(fh, 1):
                if not raw.endswith(b"\n"):
                    return
                if raw.strip():
                    yield lineno, json.loads(raw)
            return
        consumed = 0

        def lines() -> Iterator[str]:
            nonlocal consumed
            for raw in fh:
                consumed += 1
                yield raw.decode("utf-8", errors="replace")

        reader = csv.reader(lines(), strict=True)
        next(reader, None)  # header
        while True:
            start = consumed + 1
            try:
                row = next(reader)
            except (StopIteration, csv.Error):
                return
            if row:
                yield start, {"id": row[0], "question": row[1] if len(row) > 1 else ""}


def open_writer(
    fmt: str,
    out: str | None,
    *,
    resume: bool = False,
    k: int = 3,
    scanned: tuple[int, int] | None = None,
) -> tuple[ResultWriter, int]:
    """Open a result writer for ``fmt`` (``jsonl``/``csv``) on ``out`` (None or ``'-'``: stdout).

    With ``resume`` the existing file's complete records are counted (or taken from
    ``scanned``, :func:`scan_output`'s result), a partial last record is truncated away and
    the file is appended to; the count is returned as ``done`` so the caller skips that many
    questions. A CSV file written before the ``tier`` column existed is continued without it,
    so its rows stay aligned with its header. Without ``resume`` an existing file is
    overwritten. Returns ``(writer, done)``.
    """
    fmt = _output_format(fmt)
    if out is None or out == "-":
        if resume:
            raise ValueError("--resume needs an output file (pass --out FILE), not stdout")
        stream, detach = _stdout_utf8()
        writer = _make_writer(fmt, stream, k, write_header=True, close=False, detach=detach)
        return writer, 0

    done = 0
    keep = 0
    if resume and os.path.exists(out):
        done, keep = scan_output(fmt, out, k) if scanned is None else scanned
        size = os.path.getsize(out)
        if keep < size:
            logger.warning("%s: truncating a partial last record (%d bytes)", out, size - keep)
            os.truncate(out, keep)
        logger.info("%s: resuming after %d complete records", out, done)
    tier = not (fmt == "csv" and keep > 0 and "tier" not in _csv_header(out))
    mode = "a" if resume else "w"
    stream = open(out, mode, encoding="utf-8", newline="")  # noqa: SIM115 - owned by the writer
    writer = _make_writer(
        fmt, stream, k, write_header=keep == 0, close=True, detach=False, tier=tier
    )
    return writer, done


def _make_writer(
    fmt: str,
    stream: IO[str],
    k: int,
    *,
    write_header: bool,
    close: bool,
    detach: bool,
    tier: bool = True,
) -> ResultWriter:
    if fmt == "jsonl":
        return JsonlResultWriter(stream, close_stream=close, detach=detach)
    return CsvResultWriter(
        stream, k=k, write_header=write_header, close_stream=close, detach=detach, tier=tier
    )


def _csv_header(path: str) -> list[str]:
    """The first row of a CSV result file (its column names)."""
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        return next(csv.reader(fh), [])


def _stdout_utf8() -> tuple[IO[str], bool]:
    """stdout as UTF-8 text (answers are verbatim non-ASCII text); True if it must be detached."""
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower().replace("_", "-")
    if encoding in ("utf-8", "utf8") or not hasattr(stream, "buffer"):
        return stream, False
    stream.flush()
    wrapper = io.TextIOWrapper(stream.buffer, encoding="utf-8", newline="", write_through=True)
    return wrapper, True


def _corrupt(path: str, line: int, what: str) -> InputError:
    return InputError(
        f"{path} line {line}: {what}, so it cannot be resumed; "
        "fix or remove that line, or run without --resume",
        path=path,
        line=line,
    )


def _scan_jsonl(path: str) -> tuple[int, int]:
    """Count complete JSONL records; return ``(count, bytes to keep)``.

    A last line without its newline is an interrupted write and is not kept; a complete line
    that is not a JSON object means the file is not ours (or damaged), so that is an error.
    """
    done = 0
    keep = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                break
            if raw.strip():
                try:
                    obj = json.loads(raw)
                except ValueError:
                    raise _corrupt(path, lineno, "not a JSON record") from None
                if not isinstance(obj, dict):
                    raise _corrupt(path, lineno, "not a JSON object")
                done += 1
            keep += len(raw)
    return done, keep


def _scan_csv(path: str, k: int) -> tuple[int, int]:
    """Count complete CSV rows after the header; return ``(count, bytes to keep)``.

    The header must be :func:`csv_columns` ``(k)``, with or without the ``tier`` column.

    Rows are parsed with the csv module (quoted fields may hold newlines). A row is complete
    when the parser finished it on a newline; a row cut inside quotes raises at end of data.
    """
    size = os.path.getsize(path)
    state = {"consumed": 0, "last": b""}

    def lines(fh: IO[bytes]) -> Iterator[str]:
        for raw in fh:
            state["consumed"] += len(raw)
            state["last"] = raw
            yield raw.decode("utf-8", errors="replace")  # a cut may split a multibyte char

    done = 0
    keep = 0
    header_seen = False
    with open(path, "rb") as fh:
        reader = csv.reader(lines(fh), strict=True)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error:
                if state["consumed"] >= size:
                    break  # cut inside a quoted field: a partial last row
                raise _corrupt(path, reader.line_num, "not a well-formed CSV row") from None
            if not state["last"].endswith(b"\n"):
                break  # the last row lost its line ending: partial
            if not header_seen:
                header_seen = True
                columns = csv_columns(k)
                if row not in (columns, csv_columns(k, tier=False)):
                    raise InputError(
                        f"{path}: its CSV columns ({', '.join(row)}) differ from this run's "
                        f"({', '.join(columns)}); resume with the same -k, or run without "
                        "--resume",
                        path=path,
                    )
            elif row:
                done += 1
            keep = state["consumed"]
    return done, keep
