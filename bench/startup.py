"""Start-up cost of an index: ``store.load`` time, memory after load, size on disk per passage,
for two (code, index) pairs measured in the same run, e.g. format 2 (vectors read whole, FAISS
rebuilt on load) against format 3 (FAISS stored; vectors and FAISS memory-mapped).

    .venv/bin/python bench/startup.py --before CODE_DIR INDEX_DIR --after CODE_DIR INDEX_DIR
                                      [--runs 3]

Each load runs in a fresh ``python -c`` subprocess started in CODE_DIR (so ``import chatbot``
imports that checkout), after importing chatbot.store (not timed). Reported per side: the
median over ``--runs`` of the load time, of VmRSS after load and of RssAnon (private memory:
what the process holds itself; file-backed mapped pages are in VmRSS but shared with the
page cache and reclaimable), peak RSS (ru_maxrss), and the generation folder's size on disk
divided by the passage count. The files are in the page cache for both sides (a first,
untimed load warms it). Prints a table with the ratio after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROBE = r"""
import json, resource, sys, time
from pathlib import Path
from chatbot import store
def status():
    out = {}
    for line in open('/proc/self/status'):
        key, _, value = line.partition(':')
        if key in ('VmRSS', 'RssAnon', 'RssFile'):
            out[key] = int(value.split()[0]) / 1024
    return out
t = time.perf_counter()
index = store.load(Path(sys.argv[1]))
seconds = time.perf_counter() - t
result = dict(status(), seconds=seconds, passages=len(index.passages),
              maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              file=store.__file__)
print(json.dumps(result))
"""


def probe(code: Path, index: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(index.resolve())],
        cwd=code,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def disk_bytes(index: Path) -> int:
    manifest = json.loads((index / "manifest.json").read_text())
    gen = index / manifest["generation"]
    return sum(f.stat().st_blocks * 512 for f in gen.rglob("*") if f.is_file())


def measure(code: Path, index: Path, runs: int) -> dict:
    probe(code, index)  # warm the page cache
    results = [probe(code, index) for _ in range(runs)]
    med = {k: statistics.median(r[k] for r in results) for k in results[0] if k != "file"}
    med["file"] = results[0]["file"]
    med["disk_per_passage"] = disk_bytes(index) / med["passages"]
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", nargs=2, metavar=("CODE", "INDEX"), type=Path, required=True)
    ap.add_argument("--after", nargs=2, metavar=("CODE", "INDEX"), type=Path, required=True)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    before = measure(*args.before, args.runs)
    after = measure(*args.after, args.runs)
    for name, r in (("before", before), ("after", after)):
        print(f"{name}: {r['file']} on {r['passages']} passages")
    rows = [
        ("store.load (s)", "seconds", "{:.3f}"),
        ("VmRSS after load (MiB)", "VmRSS", "{:.1f}"),
        ("RssAnon after load (MiB)", "RssAnon", "{:.1f}"),
        ("RssFile after load (MiB)", "RssFile", "{:.1f}"),
        ("peak RSS (MiB)", "maxrss", "{:.1f}"),
        ("disk per passage (KiB)", "disk_per_passage", "{:.2f}"),
    ]
    print(f"| {'median of ' + str(args.runs):<26} | {'before':>8} | {'after':>8} | after/before |")
    print(f"| {'-' * 26} | {'-' * 8} | {'-' * 8} | {'-' * 12} |")
    for label, key, fmt in rows:
        b, a = before[key], after[key]
        if key == "disk_per_passage":
            b, a = b / 1024, a / 1024
        ratio = f"{a / b:.2f}" if b else "-"
        print(f"| {label:<26} | {fmt.format(b):>8} | {fmt.format(a):>8} | {ratio:>12} |")


if __name__ == "__main__":
    main()
