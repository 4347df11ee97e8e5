"""A short run of bench/load.py: concurrent API clients while `index add` runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chatbot import store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_load_bench_short_run_has_no_failures(tmp_path: Path) -> None:
    cmd = [sys.executable, str(ROOT / "bench" / "load.py"), "--model", "fake-64"]
    cmd += ["--corpus", str(ROOT / "tests" / "data" / "docs"), "--clients", "6"]
    cmd += ["--seconds", "6", "--add", "--batch", "1,8", "--work", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["8"])]
    assert len(rows) == 2
    for row in rows:
        requests, failures, bad = int(row[1]), int(row[2]), int(row[3])
        assert requests > 0 and failures == 0 and bad == 0
        assert row[7] != "-"  # the add ran while the clients asked
    # The add landed in the index the server was answering from.
    records = store.read_records(tmp_path / "index-batch-8")
    assert [s for s in records if s.endswith("/green_tea.txt")]
