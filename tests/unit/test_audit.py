"""scripts/audit.py: a known vulnerability fails the audit; an unchecked pin is listed, never called clean."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).parents[2] / "scripts" / "audit.py"
spec = importlib.util.spec_from_file_location("audit_script", SCRIPT)
assert spec and spec.loader
audit: Any = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

CLEAN = {"name": "pyyaml", "version": "6.0.4", "vulns": []}
VULN = {"name": "jinja2", "version": "2.10", "vulns": [{"id": "PYSEC-2019-217", "fix_versions": ["2.10.1"]}]}
SKIPPED = {"name": "av", "skip_reason": "Dependency not found on PyPI and could not be audited: av (18.1.0)"}


def test_a_vulnerable_pin_fails_and_is_named() -> None:
    rc, lines = audit.verdict([CLEAN, VULN], strict=False)
    assert rc == 1
    assert lines[0] == "VULNERABLE jinja2 2.10: PYSEC-2019-217"
    assert lines[-1] == "audit: 2 pinned dependencies, 2 checked, 1 vulnerable"


def test_unchecked_pins_are_listed_and_fail_only_when_strict() -> None:
    rc, lines = audit.verdict([CLEAN, SKIPPED], strict=False)
    assert rc == 0
    assert "1 checked" in lines[0] and lines[1].startswith("audit: UNCHECKED (1;") and "av" in lines[1]
    assert audit.verdict([CLEAN, SKIPPED], strict=True)[0] == 1
    assert audit.verdict([CLEAN], strict=True) == (
        0,
        ["audit: 1 pinned dependencies, 1 checked, 0 vulnerable"],
    )
