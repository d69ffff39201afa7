"""Dependency audit of requirements.lock with pip-audit: any known vulnerability fails the run.

A pin pip-audit cannot look up (no advisory data reachable, e.g. a registry mirror without
PyPI's vulnerability feed) is listed as UNCHECKED, never reported as clean. It fails the run
only with --strict, because on such a network every pin is unchecked and CI could never pass.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    strict = "--strict" in argv
    cmd = [
        str(Path(sys.executable).with_name("pip-audit")),
        *("-r", str(ROOT / "requirements.lock"), "--no-deps", "--disable-pip"),
        *("--progress-spinner", "off", "-f", "json"),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    try:
        deps = json.loads(proc.stdout)["dependencies"]
    except (json.JSONDecodeError, KeyError):
        print(f"audit: pip-audit failed (rc {proc.returncode}):\n{proc.stderr}", file=sys.stderr)
        return 1
    rc, lines = verdict(deps, strict)
    print("\n".join(lines))
    return rc


def verdict(deps: list[dict[str, Any]], strict: bool) -> tuple[int, list[str]]:
    """pip-audit's JSON `dependencies` → exit code and report lines."""
    vulnerable = [d for d in deps if d.get("vulns")]
    unchecked = [d for d in deps if d.get("skip_reason")]
    lines = [
        f"VULNERABLE {d['name']} {d.get('version', '')}: " + ", ".join(v["id"] for v in d["vulns"])
        for d in vulnerable
    ]
    checked = len(deps) - len(unchecked)
    lines.append(f"audit: {len(deps)} pinned dependencies, {checked} checked, {len(vulnerable)} vulnerable")
    if unchecked:
        names = ", ".join(d["name"] for d in unchecked)
        lines.append(f"audit: UNCHECKED ({len(unchecked)}; no advisory data reachable for them): {names}")
    return (1 if vulnerable or (strict and unchecked) else 0), lines


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
