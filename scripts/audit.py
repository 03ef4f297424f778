"""Report known vulnerabilities in the installed dependencies (``pip-audit``); never fails.

    python scripts/audit.py            # report; exit 0 whatever it finds
    python scripts/audit.py --strict   # exit 1 if a vulnerability is found

Audits the environment this Python runs in (``pip-audit --local``: exactly what ``make
install`` put there, which is what the tests ran against) and also writes that
environment as a lock, ``pip freeze`` style, to ``--lock`` so a finding names exact
versions. ``make test`` runs it first as a report: an advisory in a dependency must not
turn CI red by itself. pip-audit needs its vulnerability service (PyPI's JSON API or
OSV); where it cannot be reached (an offline CI, a mirror-only network), the report says
so plainly instead of claiming a clean result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def run_pip_audit(timeout_s: float, service: str) -> tuple[dict[str, Any] | None, str]:
    exe = shutil.which("pip-audit", path=str(Path(sys.executable).parent)) or shutil.which("pip-audit")
    if exe is None:
        return None, "pip-audit is not installed (it is in the dev extra: make install)"
    cmd = [exe, "--local", "--skip-editable", "--format", "json", "--progress-spinner", "off",
           "--vulnerability-service", service, "--timeout", "15"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None, f"pip-audit did not finish within {timeout_s:.0f}s (is the network slow or blocked?)"
    try:
        return json.loads(proc.stdout), ""
    except json.JSONDecodeError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"pip-audit failed (exit {proc.returncode}): {last[:300]}"


def write_lock(path: Path) -> int:
    freeze = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, timeout=60).stdout
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(freeze)
    return len([x for x in freeze.splitlines() if x and not x.startswith("#")])


def report(data: dict[str, Any]) -> tuple[list[str], int, int]:
    """-> (finding lines, packages audited, packages skipped)."""
    deps = data.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    findings = [f"  {d['name']} {d.get('version')}: {v.get('id')} ({', '.join(v.get('aliases') or []) or 'no alias'})"
                f"; fixed in {', '.join(v.get('fix_versions') or []) or 'no release yet'}"
                for d in deps for v in d.get("vulns") or []]
    return findings, len(deps) - len(skipped), len(skipped)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strict", action="store_true", help="exit 1 when a vulnerability is found")
    ap.add_argument("--timeout", type=float, default=90.0)
    ap.add_argument("--service", default="pypi", choices=["pypi", "osv"])
    ap.add_argument("--lock", type=Path, default=Path(".switchyard/audit-lock.txt"))
    args = ap.parse_args()
    n_locked = write_lock(args.lock)
    data, why = run_pip_audit(args.timeout, args.service)
    print(f"pip-audit: {n_locked} installed packages locked in {args.lock}")
    if data is None:
        print(f"pip-audit: NOT AUDITED: {why}")
        return 0
    findings, audited, skipped = report(data)
    if audited == 0:
        print(f"pip-audit: NOT AUDITED: the {args.service} vulnerability service knew none of the {skipped} "
              "packages (no route to it from here, or a private mirror); run it where it is reachable")
        return 0
    print(f"pip-audit: {audited} packages audited, {skipped} skipped (not on PyPI), "
          f"{len(findings)} known vulnerabilities")
    for line in findings:
        print(line)
    return 1 if findings and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
