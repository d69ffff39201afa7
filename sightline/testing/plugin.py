"""Pytest plugin (registered automatically when Sightline is installed).

Test camera rules like code: replay a clip with a chosen engine and assert the events.

    def test_someone_comes_in(sightline_replay):
        run = sightline_replay("clips/door.mp4", queries=["people"], truth="clips/door.truth.json")
        assert any(e.phase == "start" for e in run.events)
        assert run.scores.recall >= 0.8

`engine` takes an engine section as a dict (default: the CPU baseline; use
{"type": "cassette", ...} or {"type": "openai", ...} for GLM-4.5V).

Every pytest run in an environment with Sightline installed loads this module, so it imports
nothing heavy (no PyAV, SciPy, ingest or analyzer) until the fixture is used.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from sightline.replay.scored import Replayed


@pytest.fixture
def sightline_replay(tmp_path: Path) -> Callable[..., Replayed]:
    """Replay a clip through Sightline's ingest → analyzer code; returns events (and scores with truth=)."""

    def run(video: str | Path, **kwargs: Any) -> Replayed:
        from sightline.replay.scored import replay

        kwargs.setdefault("data_dir", tmp_path / "sightline-data")
        return replay(video, **kwargs)

    return run
