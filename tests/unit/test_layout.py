"""The house rules that import-linter cannot see: what loading the pytest plugin costs."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("av", "scipy", "cv2", "torch", "ingest", "analyzer", "sinks", "glm45v_engine", "sightline.replay")


def test_the_pytest_plugin_imports_nothing_heavy_until_its_fixture_is_used() -> None:
    # Installing Sightline registers the plugin for every pytest run in that environment.
    probe = (
        "import sys, sightline.testing.plugin as p; "
        "assert hasattr(p, 'sightline_replay'); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"the plugin imported {done.stdout.strip()}"


def test_the_plugin_is_the_registered_entry_point() -> None:
    from importlib.metadata import entry_points

    [ep] = [e for e in entry_points(group="pytest11") if e.name == "sightline"]
    assert ep.value == "sightline.testing.plugin"
