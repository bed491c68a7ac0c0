"""The lock-file audit's verdicts (ops/audit_lock.py) on pip-audit JSON reports."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("audit_lock", ROOT / "ops" / "audit_lock.py")
audit_lock = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(audit_lock)  # type: ignore[union-attr]


def dep(name: str, *vulns: dict) -> dict:
    return {"name": name, "version": "1.0", "vulns": list(vulns)}


def vuln(ident: str, *fixes: str) -> dict:
    return {"id": ident, "fix_versions": list(fixes), "aliases": [f"CVE-{ident}"]}


def test_only_a_vulnerability_with_a_fix_fails():
    code, lines = audit_lock.judge({"dependencies": [dep("a"), dep("b", vuln("X", "1.1"))]})
    assert code == 1 and "FIXABLE b 1.0: X, CVE-X (fixed in 1.1)" in lines[0]
    code, lines = audit_lock.judge({"dependencies": [dep("a"), dep("b", vuln("Y"))]})
    assert code == 0 and "no fix yet for b 1.0: Y" in lines[0]


def test_a_service_that_knows_no_package_is_not_a_clean_audit():
    skipped = [{"name": n, "skip_reason": f"Dependency not found on PyPI: {n}"} for n in "abc"]
    code, lines = audit_lock.judge({"dependencies": [dep("d"), *skipped]})
    assert code == 2 and "knew 1 of 4" in lines[-1]


def test_no_report_says_the_service_was_unreachable(tmp_path, capsys):
    log = tmp_path / "audit.log"
    log.write_text("requests.exceptions.ConnectionError: api.osv.dev\n")
    assert audit_lock.main(["x", str(tmp_path / "missing.json"), str(log)]) == 2
    err = capsys.readouterr().err
    assert "could not finish" in err and "AUDIT=skip" in err and "api.osv.dev" in err
    report = tmp_path / "ok.json"
    report.write_text(json.dumps({"dependencies": [dep("a")], "fixes": []}))
    assert audit_lock.main(["x", str(report)]) == 0
