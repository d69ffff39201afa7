"""One object, one track, whatever the model calls it: a replay where the scripted GLM names the
walking figure differently from answer to answer (and sometimes gives no label at all)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from sightline.replay.scored import Replayed
from sightline.samples import Figure
from sightline.testing.scripted_server import ScriptedServer

pytestmark = pytest.mark.e2e
# Each wording comes back every third answer: often enough that, with labels as identity, each
# became a confirmed track of its own (three starts, three ends for one figure).
WORDINGS = ["person in red", "woman in a red coat", None]


def test_alternating_wordings_and_label_less_answers_are_one_track(
    sightline_replay,  # type: ignore[no-untyped-def]
    red_figure_clip: tuple[Path, Figure],
) -> None:
    clip, _ = red_figure_clip
    scenario = {"mode": "colour", "colours": [{"label": "person in red", "wordings": WORDINGS}]}
    with ScriptedServer(scenario) as glm:
        run: Replayed = sightline_replay(
            clip,
            queries=["people in red"],
            engine={"type": "openai", "base_url": glm.base_url, "api_key": "x"},
        )
        answers = [str(r["messages"]) for r in glm.requests]
    assert len(answers) >= 8  # the figure was asked about often enough to hear every wording
    tracks = run.tracks()
    assert len(tracks) == 1, {t: [(e.phase, e.label) for e in evs] for t, evs in tracks.items()}
    [events] = tracks.values()
    phases = Counter(e.phase for e in events)
    assert phases["start"] == 1 and phases["end"] == 1
    # the label is what was said (a label-less answer is given the query text), not a made-up one
    assert {e.label for e in events} <= {"person in red", "woman in a red coat", "people in red"}
