"""Judge a pip-audit JSON report of the lock file: `make audit` runs it after pip-audit.

Fails (exit 1) on a known vulnerability that has a fixed release: upgrade the lock.
Vulnerabilities without a fix are printed, not fatal: there is nothing to upgrade to.
Fails (exit 2) when the audit could not be trusted: no report (pip-audit could not reach
its vulnerability service), or a service that knew none of the locked packages (an index
mirror without PyPI's per-release JSON answers "not found" for every one, and pip-audit
then says "No known vulnerabilities found" about a check it never made).

Usage: python ops/audit_lock.py REPORT.json [PIP_AUDIT_LOG]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# More packages than this unknown to the service: the service, not the packages, is at fault.
MAX_UNKNOWN_SHARE = 0.5


def _unreachable(report: Path, log: Path | None) -> int:
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log and log.exists() \
        else []
    print(f"audit: no report at {report}: pip-audit could not finish. Is the vulnerability "
          "service reachable (pypi.org for `-s pypi`, api.osv.dev for `-s osv`)?\n"
          "  Try another service with AUDIT_SERVICE=osv, or skip the audit on an offline "
          "machine with AUDIT=skip.", file=sys.stderr)
    for line in tail:
        print(f"  pip-audit: {line}", file=sys.stderr)
    return 2


def judge(data: dict) -> tuple[int, list[str]]:
    """Exit code and the lines to print for a parsed pip-audit JSON report."""
    deps = data.get("dependencies", [])
    skipped = [d for d in deps if d.get("skip_reason")]
    lines, fixable = [], []
    for dep in deps:
        for vuln in dep.get("vulns", []):
            fixes = vuln.get("fix_versions") or []
            ids = ", ".join([vuln["id"], *vuln.get("aliases", [])])
            where = f"{dep['name']} {dep['version']}: {ids}"
            if fixes:
                fixable.append(f"audit: FIXABLE {where} (fixed in {', '.join(fixes)})")
            else:
                lines.append(f"audit: no fix yet for {where}")
    if deps and len(skipped) > MAX_UNKNOWN_SHARE * len(deps):
        lines.append(f"audit: the vulnerability service knew {len(deps) - len(skipped)} of "
                     f"{len(deps)} locked packages ({skipped[0]['skip_reason']}); the audit "
                     "proves nothing. Use AUDIT_SERVICE=osv, a network that reaches pypi.org "
                     "itself (not a mirror), or AUDIT=skip on an offline machine.")
        return 2, fixable + lines
    lines += [f"audit: not audited: {d['skip_reason']}" for d in skipped]
    if fixable:
        return 1, fixable + lines + ["audit: upgrade these in uv.lock (uv lock "
                                     "--upgrade-package NAME) or, with a reason, add "
                                     "--ignore-vuln ID to AUDIT_IGNORE."]
    return 0, lines + [f"audit: {len(deps) - len(skipped)} locked packages, no known "
                       "vulnerability with a fix"]


def main(argv: list[str]) -> int:
    report = Path(argv[1])
    log = Path(argv[2]) if len(argv) > 2 else None
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return _unreachable(report, log)
    code, lines = judge(data)
    for line in lines:
        print(line, file=sys.stderr if code else sys.stdout)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
