"""The annotated vtest.avi ground truth: its internal consistency, and the baseline figures in the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import need  # type: ignore[import-not-found]

from sightline.eval.scoring import score_boxes
from sightline.eval.truth import GroundTruth, load_truth
from sightline.eval.vtest import DEFAULT_TRUTH, frames_at, measure
from sightline.samples import vtest_path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "evaluation.md"
BLOCK = re.compile(r"<!-- eval_vtest:begin -->\n```text\n(.*?)```\n<!-- eval_vtest:end -->", re.S)


@pytest.fixture(scope="module")
def vtest_truth() -> GroundTruth:
    return load_truth(DEFAULT_TRUTH)


def test_vtest_truth_shape(vtest_truth: GroundTruth) -> None:
    v = vtest_truth.video
    assert (v.file, v.width, v.height, v.fps, v.start_s, v.end_s) == ("vtest.avi", 768, 576, 10.0, 0.0, 19.9)
    assert vtest_truth.annotated_times() == tuple(float(t) for t in range(20))
    assert all(o.label == "person" for o in vtest_truth.objects)
    real = [b for o in vtest_truth.objects for b in o.boxes if not b.ignore]
    assert len(real) >= 100  # about 6.5 people per second over 20 s
    assert vtest_truth.note  # how it was made and its limits travel with the data


def test_vtest_truth_identities_move_plausibly(vtest_truth: GroundTruth) -> None:
    """Kept identities: from one second to the next a person moves less than ~1.5 body heights,
    and their box height changes by less than 40 % (a swapped id would jump)."""
    for o in vtest_truth.objects:
        for a, b in zip(o.boxes, o.boxes[1:], strict=False):
            ha, hb = a.bbox[3] - a.bbox[1], b.bbox[3] - b.bbox[1]
            ca = ((a.bbox[0] + a.bbox[2]) / 2, (a.bbox[1] + a.bbox[3]) / 2)
            cb = ((b.bbox[0] + b.bbox[2]) / 2, (b.bbox[1] + b.bbox[3]) / 2)
            step = ((ca[0] - cb[0]) ** 2 + (ca[1] - cb[1]) ** 2) ** 0.5 / (b.t - a.t)
            assert step < 1.5 * max(ha, hb), f"{o.id} jumps {step:.0f} px/s at t={b.t}"
            if not (a.ignore or b.ignore or _at_edge(a.bbox) or _at_edge(b.bbox)):
                assert 0.6 < hb / ha < 1.0 / 0.6, f"{o.id} changes height {ha}->{hb} at t={b.t}"


def _at_edge(bbox: tuple[float, float, float, float]) -> bool:
    return bbox[0] <= 1 or bbox[2] >= 767


def test_truth_scores_itself_perfectly(vtest_truth: GroundTruth) -> None:
    preds = [(b.t, b.bbox, o.label, o.id) for o in vtest_truth.objects for b in o.boxes]
    s = score_boxes(preds, vtest_truth)
    assert (s.precision, s.recall, s.fp, s.id_switches, s.fragmented_objects) == (1.0, 1.0, 0, 0, 0)
    assert s.ignored == sum(1 for o in vtest_truth.objects for b in o.boxes if b.ignore)


def test_docs_report_what_the_baseline_measures(vtest_truth: GroundTruth) -> None:
    """docs/evaluation.md quotes the output of `python -m sightline.eval.vtest --iou 0.5 --iou 0.3`."""
    video = vtest_path()
    need(video is not None, "vtest.avi (Debian opencv-doc) is not installed")
    assert video is not None
    match = BLOCK.search(DOCS.read_text(encoding="utf-8"))
    assert match, "docs/evaluation.md lost its eval_vtest block"
    measured = "\n\n".join(s.table() for s in measure(vtest_truth, video, "people", [0.5, 0.3]))
    assert match.group(1).strip() == measured.strip(), (
        "baseline figures changed; update docs/evaluation.md from "
        "`python -m sightline.eval.vtest --iou 0.5 --iou 0.3`"
    )


def test_frames_at_finds_every_annotated_instant(vtest_truth: GroundTruth) -> None:
    video = vtest_path()
    need(video is not None, "vtest.avi (Debian opencv-doc) is not installed")
    assert video is not None
    frames = frames_at(video, [0.0, 1.0, 19.0])
    assert [(f.frame_id, f.pts_s) for f in frames] == [(0, 0.0), (10, 1.0), (190, 19.0)]
    assert frames[0].size == (768, 576)
    with pytest.raises(ValueError, match="found 0 of the 1"):
        frames_at(video, [1000.0])
