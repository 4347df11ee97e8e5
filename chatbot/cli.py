"""The ``chatbot`` command line: parse input, call the library, turn errors into messages.

Argument parsing lives here only: the handlers turn the flags into ``Settings`` and typed
options (:class:`~chatbot.batch.AskOptions`, :class:`~chatbot.batch.EvalOptions`) for the
library. Every usage error, for every command, is one ``Error: ...`` line on stderr naming
the problem and pointing to ``--help``, with exit code 1 (2 means "some files or lines
failed"); ``--help`` and ``--version`` exit 0.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from . import __version__
from .config import Settings

if TYPE_CHECKING:
    from .batch import AskOptions, EvalOptions

log = logging.getLogger("chatbot")


class UsageError(ValueError):
    """Bad command-line input found after parsing (e.g. ``-k 0``)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``Error:`` line and exit code 1.

    Sub-command parsers are of the same class (argparse creates them with the parent's
    class), so this holds for every command.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"Error: {message}; see `{self.prog} --help`\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        ns, extra = super().parse_known_args(args, namespace)
        if extra:  # reported by the innermost command, whose --help lists its flags
            self.error(f"unrecognized arguments: {' '.join(extra)}")
        return ns, extra


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--index", help="index folder (env CHATBOT_INDEX, default index/)")
    p.add_argument("--model", help="embedding model: local sentence-transformers folder")
    p.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _common_parser(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    _common(p)
    return p


def _ray_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        metavar="ADDRESS",
        help=f"{what} (HOST:PORT, or `auto`, the default, for the cluster running here; "
        "env CHATBOT_RAY_ADDRESS; needs the ray extra)",
    )


RAY_ADDRESS = re.compile(r"auto|local|ray://\S+|\[?[\w.:-]*\]?:\d+")


def ray_address(args: argparse.Namespace) -> str | None:
    """The ``--ray`` address, if given. ``--ray PATH`` (a value that is no address) is
    ``--ray`` followed by a PATH: the value goes back to the paths."""
    value = getattr(args, "ray", None)
    if value is None or RAY_ADDRESS.fullmatch(value):
        return value
    if hasattr(args, "paths"):
        args.paths = [value, *args.paths]
        return "auto"
    raise UsageError(
        f"--ray {value}: not a cluster address (HOST:PORT or auto); "
        f"see `chatbot {args.command} --help`"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``chatbot`` parser with its sub-commands (all :class:`_Parser`)."""
    parser = _Parser(
        prog="chatbot",
        description="Answer questions about your documents with verbatim passages.",
    )
    parser.add_argument("--version", action="version", version=f"chatbot {__version__}")
    sub = parser.add_subparsers(dest="command")

    chat = sub.add_parser("chat", help="start the browser chat (default command)")
    _common(chat)
    chat.add_argument("--host", help="address to bind (env CHATBOT_HOST, default 127.0.0.1)")
    chat.add_argument("--port", type=int, help="port (env CHATBOT_PORT, default 7860)")
    chat.add_argument(
        "--admin-token",
        help="enable the upload panel (env CHATBOT_ADMIN_TOKEN; a flag is visible in `ps`, "
        "so prefer the env variable or --admin-token-file)",
    )
    chat.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="read the admin token from the first line of FILE (env CHATBOT_ADMIN_TOKEN_FILE)",
    )

    idx = sub.add_parser(
        "index",
        help="build and maintain the index",
        description="Build the index, or add, update and remove documents incrementally "
        "(.txt .md .html .pdf .docx; files over CHATBOT_MAX_FILE_MB, default 50, are skipped).",
        epilog="exit status: 0 done, 1 error (index unchanged), 2 some files failed "
        "(every other file was indexed)",
    )
    isub = idx.add_subparsers(dest="index_command", required=True)
    for name, help_, nargs in [
        ("build", "build the index from files/folders (default corpus/)", "*"),
        ("add", "add or update files/folders (recursive)", "+"),
        ("remove", "remove documents by path or indexed name", "+"),
    ]:
        p = isub.add_parser(name, help=help_)
        _common(p)
        p.add_argument("paths", nargs=nargs, metavar="PATH")
        if name != "remove":
            _ray_flag(p, "read, split and embed on a Ray cluster")
    update_help = "re-scan indexed sources: re-index changed, drop deleted"
    _ray_flag(_common_parser(isub.add_parser("update", help=update_help)), "re-index on Ray")
    for name, help_ in [
        ("list", "list indexed documents"),
        ("status", "model, passage count and stale documents"),
        ("optimize", "merge the index's segments into one (drops deleted passages)"),
    ]:
        _common(isub.add_parser(name, help=help_))

    ask = sub.add_parser(
        "ask",
        help="answer a file of questions (JSON Lines or CSV out), evaluate expected answers",
        description="Answer every question of FILE in input order. Inputs: .txt (one question "
        "per line), .csv/.tsv (column 'question'; optional 'id', 'expected'), .jsonl (objects "
        "with 'question'; optional 'id', 'expected'). When questions have 'expected' answers, "
        "hit@1, hit@k, MRR, abstain rate, wrong answers, counts per tier and the calibration "
        "error are printed to stderr. "
        "Exit codes: 0 ok, 1 usage or input error, 2 some lines skipped with --skip-bad.",
    )
    _common(ask)
    ask.add_argument("file", metavar="FILE", help="questions file ('-' = stdin)")
    ask.add_argument("-k", type=int, help="passages per question (default 3)")
    ask.add_argument("--out", help="output file (default stdout)")
    ask.add_argument(
        "--format",
        choices=["jsonl", "csv"],
        help="output format (default jsonl; csv when --out ends in .csv)",
    )
    ask.add_argument(
        "--input-format",
        choices=["txt", "csv", "tsv", "jsonl"],
        help="question file format (default: from the extension; stdin: txt)",
    )
    ask.add_argument("--skip-bad", action="store_true", help="skip malformed lines (exit 2)")
    ask.add_argument("--resume", action="store_true", help="continue a partial --out file")
    _ray_flag(ask, "answer on a Ray cluster's actors (same answers, same order)")
    ask.add_argument("--report", help="write an HTML evaluation report (needs expected answers)")
    _thresholds(ask)

    ev = sub.add_parser(
        "eval",
        help="evaluate retrieval on a SQuAD-format file",
        description="Index the articles of a SQuAD-format JSON file into a temporary index, "
        "answer its questions and print hit@1, hit@k, MRR, abstain rate, wrong answers, counts "
        "per tier and the calibration error. "
        "A passage is right when it covers a gold answer span.",
    )
    _common(ev)
    ev.add_argument("file", metavar="FILE.json")
    ev.add_argument("-k", type=int, help="passages per question (default 3)")
    _thresholds(ev)
    ev.add_argument("--report", help="write an HTML evaluation report")
    ev.add_argument("--limit", type=int, help="only the first N articles")
    ev.add_argument("--baselines", action="store_true", help="also BM25-only and dense-only")
    return parser


def _settings(args: argparse.Namespace, **extra: object) -> Settings:
    return Settings.from_env(
        index=getattr(args, "index", None),
        model=getattr(args, "model", None),
        ray_address=ray_address(args),
        **extra,
    )


def _progress(args: argparse.Namespace) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def cmd_chat(args: argparse.Namespace) -> int:
    from .app import serve

    settings = _settings(
        args,
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        admin_token=getattr(args, "admin_token", None),
        admin_token_file=getattr(args, "admin_token_file", None),
    )
    serve(settings)
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from . import index as ix
    from . import service, store

    settings = _settings(args)
    sub = args.index_command
    if sub in ("list", "status"):
        manifest = store.read_manifest(settings.index_dir, any_format=True)
        # What `ask` would say: an index it refuses is reported as unusable (exit 1).
        try:
            store.load(settings.index_dir, settings.model, settings.splitter_settings())
            problem = None
        except store.IndexUnusable as exc:
            problem = exc
        docs = store.read_records(settings.index_dir, manifest)
        total = f"{len(docs)} documents, {manifest.get('passages', 0)} passages"
        if sub == "list":
            print("passages\tbytes\tindexed at\trecognised\tdocument")
            for source, r in docs.items():
                name = ix.display_name(source)
                found = r["recognised"] or "-"
                print(f"{r['passages']}\t{r['bytes']}\t{r['indexed_at']}\t{found}\t{name}")
            print(total)
        else:
            print(f"index: {settings.index_dir}")
            print(f"model: {manifest.get('model')} (dim {manifest.get('dim')})")
            print(f"splitter: {manifest.get('splitter')}")
            print(f"written: {manifest.get('written_at')} ({manifest.get('generation')})")
            print(f"segments: {len(manifest.get('segments', []))}")
            if problem is None:
                stale = [ix.display_name(s) for s in service.stale_sources(settings, docs)]
                print(f"stale: {', '.join(stale) if stale else 'none'}")
                fix = "; run `chatbot index update`" if stale else ""
                print(f"{total}; {len(stale)} stale{fix}")
            else:
                print(f"{total}; unusable (see the error below)")
        if problem is not None:
            raise store.IndexUnusable(f"the index cannot be used: {problem}")
        return 0
    if sub == "optimize":
        summary = service.optimize(settings)
        if not args.quiet:
            print(summary)
        return 0
    if sub == "build":
        paths = [Path(p) for p in args.paths] or None
        summary = service.build(settings, paths, replace_all=True, progress=_progress(args))
    elif sub == "add":
        summary = service.build(settings, [Path(p) for p in args.paths], progress=_progress(args))
    elif sub == "remove":
        summary = service.remove(settings, args.paths)
    else:
        summary = service.update(settings, progress=_progress(args))
    if not args.quiet:
        print(summary.line())
    return 2 if summary.failed else 0


def ask_options(args: argparse.Namespace) -> AskOptions:
    """The parsed ``chatbot ask`` flags as :class:`~chatbot.batch.AskOptions`."""
    from .batch import AskOptions

    return AskOptions(
        file=args.file,
        out=args.out,
        fmt=args.format,
        input_format=args.input_format,
        skip_bad=args.skip_bad,
        resume=args.resume,
        report=args.report,
        quiet=args.quiet,
    )


def eval_options(args: argparse.Namespace) -> EvalOptions:
    """The parsed ``chatbot eval`` flags as :class:`~chatbot.batch.EvalOptions`."""
    from .batch import EvalOptions

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1; see `chatbot eval --help`")
    return EvalOptions(
        file=args.file,
        limit=args.limit,
        baselines=args.baselines,
        report=args.report,
        quiet=args.quiet,
    )


def _thresholds(parser: argparse.ArgumentParser) -> None:
    """The tier flags of ``ask`` and ``eval``."""
    parser.add_argument(
        "--threshold", type=float, help="quote the top passage as the answer from this confidence"
    )
    parser.add_argument(
        "--possible-threshold",
        type=float,
        help="below --threshold, show the top passage as a possible answer from this confidence",
    )


def _answer_settings(args: argparse.Namespace) -> Settings:
    """Settings with ``-k`` and the thresholds applied (``ask`` and ``eval``)."""
    settings = _settings(
        args, k=args.k, threshold=args.threshold, possible_threshold=args.possible_threshold
    )
    if settings.k < 1:
        raise UsageError(f"-k must be at least 1; see `chatbot {args.command} --help`")
    return settings


def cmd_ask(args: argparse.Namespace) -> int:
    from .batch import run_batch

    settings = _answer_settings(args)
    return run_batch(settings, ask_options(args), progress=_progress(args))


def cmd_eval(args: argparse.Namespace) -> int:
    from .batch import run_squad_eval

    settings = _answer_settings(args)
    return run_squad_eval(settings, eval_options(args), progress=_progress(args))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["chat", *(argv if argv is not None else sys.argv[1:])])
    level = logging.INFO if getattr(args, "verbose", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    import bm25s  # noqa: F401 - imported first so the level set below sticks

    for noisy in ("httpx", "sentence_transformers", "transformers", "bm25s", "urllib3"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    handlers = {"chat": cmd_chat, "index": cmd_index, "ask": cmd_ask, "eval": cmd_eval}
    from .batchio import InputError
    from .distributed import ClusterError
    from .documents import DocumentError
    from .embedder import ModelError
    from .store import IndexUnusable

    try:
        return handlers[args.command](args)
    except (
        UsageError,
        InputError,
        DocumentError,
        ModelError,
        IndexUnusable,
        ClusterError,
        ValueError,
    ) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
