"""Audit the pinned requirements for known vulnerabilities: ``python tools/audit.py FILE ...``.

1. pip-audit checks every exact pin against its (online) PyPI vulnerability service.
2. Pins pip-audit could not audit -- all of them when the service is unreachable, which pip-audit
   reports as "Dependency not found on PyPI" -- are checked offline against the advisories in the
   pinned ``safety-db`` package; the age of that data is printed, since it is old.

Exit 0 only when every pin was checked by one of the two and none was flagged; exit 1 on a
finding, on a pin that is not ``name==version``, or when a pin could not be checked at all.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

PIP_AUDIT_TIMEOUT = 120  # seconds for the whole pip-audit run
SOCKET_TIMEOUT = 10  # seconds per request inside pip-audit


def read_pins(files: list[Path]) -> dict[str, str]:
    """Canonical name -> version for every requirement line; each must be an exact ``==`` pin."""
    pins: dict[str, str] = {}
    for file in files:
        for number, raw in enumerate(file.read_text().splitlines(), start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                req = Requirement(line)
                (spec,) = req.specifier
            except (InvalidRequirement, ValueError):
                sys.exit(f"audit: {file}:{number}: {line!r} is not one exact pin (name==version)")
            if spec.operator != "==" or "*" in spec.version:
                sys.exit(f"audit: {file}:{number}: {line!r} is not one exact pin (name==version)")
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def pip_audit(files: list[Path]) -> tuple[dict[str, list[str]], str]:
    """Findings per pin that pip-audit audited (name -> vulnerability ids), or ({}, why not)."""
    cmd = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off"]
    cmd += ["--timeout", str(SOCKET_TIMEOUT), "--no-deps", "--disable-pip"]
    for file in files:
        cmd += ["-r", str(file)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_AUDIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        return {}, f"pip-audit timed out after {PIP_AUDIT_TIMEOUT} s"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {}, f"pip-audit failed (exit {proc.returncode}): {last[:200]}"
    audited = {
        canonicalize_name(dep["name"]): [v["id"] for v in dep.get("vulns", [])]
        for dep in report["dependencies"]
        if "skip_reason" not in dep
    }
    skipped = len(report["dependencies"]) - len(audited)
    why = (
        "" if audited else f"pip-audit service unreachable ({skipped} pins 'could not be audited')"
    )
    return audited, why


def offline_check(pins: dict[str, str]) -> tuple[dict[str, list[str]], str]:
    """Check ``pins`` against safety-db's advisories: (name -> advisory ids, data description)."""
    spec = importlib.util.find_spec("safety_db")  # not imported: its __init__ reads a wrong path
    if spec is None or not spec.submodule_search_locations:
        sys.exit("audit: safety-db is not installed (make dev); nothing could be checked")
    folder = Path(spec.submodule_search_locations[0])
    data = json.loads((folder / "insecure_full.json").read_text())
    stamp = datetime.fromtimestamp(data["$meta"]["timestamp"], tz=UTC).date()
    advisories = {canonicalize_name(k): v for k, v in data.items() if k != "$meta"}
    flagged: dict[str, list[str]] = {}
    for name, version in pins.items():
        for adv in advisories.get(name, []):
            for text in adv["specs"]:
                try:
                    hit = SpecifierSet(text).contains(version, prereleases=True)
                except InvalidSpecifier:
                    hit = True  # cannot tell: flag it for a person to read
                if hit:
                    flagged.setdefault(name, []).append(f"{adv['id']} ({text})")
    version = importlib.metadata.version("safety-db")
    return flagged, f"safety-db {version} (advisories up to {stamp})"


def main(argv: list[str]) -> int:
    """Run the audit over the requirement files in ``argv``; return the exit code."""
    files = [Path(a) for a in argv] or [Path("requirements.txt"), Path("requirements-dev.txt")]
    pins = read_pins(files)
    if not pins:
        print("audit: no pins found; nothing was checked")
        return 1
    audited, why = pip_audit(files)
    findings = {name: ids for name, ids in audited.items() if ids}
    if audited:
        count = f"{len(audited)} of {len(pins)} pins audited, {len(findings)} flagged"
        print(f"pip-audit (PyPI service): {count}")
    rest = {name: v for name, v in pins.items() if name not in audited}
    if rest:
        flagged, source = offline_check(rest)
        findings.update(flagged)
        prefix = f"{why}; " if why else f"{len(rest)} pins not audited online; "
        print(f"{prefix}offline check against {source}: {len(flagged)} of {len(rest)} pins flagged")
    for name, ids in sorted(findings.items()):
        print(f"  FLAGGED {name}=={pins[name]}: {', '.join(ids)}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
