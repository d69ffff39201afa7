"""Association for timing, sampled-instant judging, MOT times from the video, labels, gates."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest

from bus.camera_urls import resolve
from configs.settings import IngestConfig
from ingest.sources import open_source
from sightline.eval.match import normalise_label
from sightline.eval.mot import read_mot, video_frame_times
from sightline.eval.scoring import score_boxes
from sightline.eval.truth import GroundTruth
from sightline.replay import cli as replay_cli
from sightline.samples import generate_clip

A_BOX = (0.0, 0.0, 10.0, 20.0)
B_BOX = (50.0, 0.0, 60.0, 20.0)


def truth(
    objects: list[dict[str, Any]], times: list[float], *, fps: float = 10.0, end: float = 10.0
) -> GroundTruth:
    video = {"file": "x.mp4", "width": 100, "height": 100, "fps": fps, "start_s": 0.0, "end_s": end}
    return GroundTruth.model_validate(
        {"schema": "sightline.truth/1", "video": video, "times": times, "objects": objects}
    )


def person(
    oid: str, intervals: list[list[float]], boxes: list[tuple[float, tuple[float, ...]]]
) -> dict[str, Any]:
    return {
        "id": oid,
        "label": "person",
        "intervals": intervals,
        "boxes": [{"t": t, "bbox": b} for t, b in boxes],
    }


def test_a_long_track_stays_with_its_object_rather_than_pairing_everyone() -> None:
    """A is there 0-10 s, B 5-10 s (1 fps truth). Track `long` follows A for 10 instants (0-9 s)
    and has one box on B at 10 s; track `short` is on A for that one instant.

    Co-matched instants: long-A 10, long-B 1, short-A 1. Forcing as many pairs as possible gives
    {long-B, short-A} (score 2 + tIoU) and times `long` against B: start error 5 s. The documented
    criterion (most co-matched instants + tIoU) gives {long-A}: start and end error 0; B and `short`
    stay unassociated.
    """
    times = [float(t) for t in range(11)]
    gt = truth(
        [
            person("A", [[0.0, 10.0]], [(t, A_BOX) for t in times]),
            person("B", [[5.0, 10.0]], [(t, B_BOX) for t in times if t >= 5]),
        ],
        times,
    )
    preds = [(t, A_BOX, "person", "long") for t in times[:10]]
    preds += [(10.0, B_BOX, "person", "long"), (10.0, A_BOX, "person", "short")]
    s = score_boxes(preds, gt)
    by_id = {o.id: o for o in s.objects}
    assert s.associated_tracks == 1
    assert (by_id["A"].track, by_id["A"].start_error_s, by_id["A"].end_error_s) == ("long", 0.0, 0.0)
    assert by_id["B"].track is None and by_id["B"].start_error_s is None
    assert s.start_error_mean_s == 0.0 and s.end_error_mean_s == 0.0


def test_a_short_gap_in_the_truth_is_bridged_when_timing() -> None:
    """A person hidden 3.0-3.5 s: intervals [0, 3] and [3.5, 8]. A track kept through the
    occlusion (0-8 s) is timed against the whole visit, not against the longer piece [3.5, 8]."""
    times = [0.0, 2.0, 4.0, 6.0, 8.0]
    gt = truth([person("A", [[0.0, 3.0], [3.5, 8.0]], [(t, A_BOX) for t in times])], times)
    preds = [(t, A_BOX, "person", "x") for t in times]
    bridged = score_boxes(preds, gt).objects[0]
    assert (bridged.start_error_s, bridged.end_error_s) == (0.0, 0.0)
    pieces = score_boxes(preds, gt, bridge_s=0.4).objects[0]
    assert pieces.start_error_s == pytest.approx(3.5) and pieces.end_error_s == 0.0


def write_gt(
    path: Path, frames: range, box: tuple[int, int, int, int] = (11, 21, 30, 60), dx: int = 0
) -> Path:
    """One person in every frame, moving `dx` px per frame."""
    x, y, w, h = box
    path.write_text("".join(f"{f},1,{x + dx * (f - 1)},{y},{w},{h},1,1,1\n" for f in frames))
    return path


def test_a_10fps_truth_is_judged_only_where_a_2fps_engine_looked(tmp_path: Path) -> None:
    gt = read_mot(write_gt(tmp_path / "gt.txt", range(1, 21)), fps=10, width=100, height=100)
    assert len(gt.annotated_times()) == 20
    box = gt.objects[0].boxes[0].bbox
    sampled = [0.0, 0.5, 1.0, 1.5]  # what a 2 fps camera gave the engine
    perfect = [(t, box, "person") for t in sampled]
    naive = score_boxes(perfect, gt)  # as if the engine had seen all 20 frames
    assert naive.recall == pytest.approx(0.2) and naive.fn == 16
    judged = score_boxes(perfect, gt, sampled=sampled)
    assert (judged.precision, judged.recall, judged.times, judged.unsampled) == (1.0, 1.0, 4, 16)
    assert "16 annotated instants not sampled" in judged.table()
    # A sampled frame without an answer is still judged: a miss.
    silent = score_boxes(perfect[:3], gt, sampled=sampled)
    assert (silent.tp, silent.fn, silent.recall) == (3, 1, 0.75)


def shifted(src: Path, dst: Path, offset_s: Fraction) -> Path:
    """`src`'s packets in an MPEG-TS whose timestamps start `offset_s` late (as a remux may)."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        shift = int(offset_s / stream.time_base)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
            packet.stream = target
            out.mux(packet)
    return dst


def test_mot_frames_sit_at_the_videos_own_timestamps(tmp_path: Path) -> None:
    clip = generate_clip(tmp_path / "c.mp4", duration_s=2, fps=10, figures=[], size=(160, 96))
    ts = shifted(clip, tmp_path / "c.ts", Fraction(1, 5))
    gt_file = write_gt(tmp_path / "gt.txt", range(1, 21), (1, 21, 30, 40), dx=6)
    stamps = video_frame_times(ts)
    assert stamps[0] >= 0.2 - 1e-6  # the remux does not start at 0
    gt = read_mot(gt_file, fps=10, width=160, height=96, video=ts)
    assert gt.annotated_times() == tuple(stamps)
    assert gt.video.start_s == stamps[0] and gt.video.end_s == stamps[19]
    # ... which is where ingest places the frames the engine answers about.
    source = open_source(
        resolve(str(ts), IngestConfig()), IngestConfig(), sample_fps=10.0, keyframes_only=False
    )
    try:
        ingested = [d.pts_s for d in source.frames()]
    finally:
        source.close()
    assert ingested == stamps
    # The engine answers perfectly at each frame's own time: frame k's box at ingest's k-th time.
    answers = [(t, b.bbox, "person") for t, b in zip(ingested, gt.objects[0].boxes, strict=True)]
    assert score_boxes(answers, gt, sampled=ingested).recall == 1.0
    # Placed at (f - 1) / fps, the truth is judged two frames (12 px on a 30 px box) off.
    by_frame_number = read_mot(gt_file, fps=10, width=160, height=96)
    assert score_boxes(answers, by_frame_number, sampled=ingested).recall < 0.5


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Person", "person"), ("  a  Man. ", "person"), ("the pedestrians", "person"), ("Red-Car", "red car")],
)
def test_labels_are_compared_after_normalisation(raw: str, expected: str) -> None:
    assert normalise_label(raw) == expected


def test_label_aliases_and_ignoring_labels() -> None:
    gt = truth([person("A", [[0.0, 1.0]], [(0.0, A_BOX)])], [0.0])
    answer = [(0.0, A_BOX, "A woman in a red coat")]
    assert score_boxes(answer, gt).tp == 0
    assert score_boxes(answer, gt, aliases={"woman in a red coat": "person"}).tp == 1
    assert score_boxes(answer, gt, match_labels=False).tp == 1
    assert replay_cli.aliases(["woman in a red coat = person"]) == {"woman in a red coat": "person"}
    with pytest.raises(ValueError, match="FROM=TO"):
        replay_cli.aliases(["person"])


def test_a_truth_that_judges_nothing_cannot_pass_a_gate() -> None:
    empty = truth([], [])
    nothing = score_boxes([], empty)
    assert (nothing.precision, nothing.recall) == (1.0, 1.0)  # the convention...
    with pytest.raises(ValueError, match="no annotated instant"):
        replay_cli.check_gates(nothing, {"recall": 0.5, "precision": None})  # ... is no pass
    quiet_scene = score_boxes([(0.0, A_BOX, "person")], truth([], [0.0]))
    with pytest.raises(ValueError, match="nothing to find"):
        replay_cli.check_gates(quiet_scene, {"recall": 0.5, "precision": None})
    failed, met = replay_cli.check_gates(quiet_scene, {"recall": None, "precision": 0.5})
    assert failed == ["precision 0.000 < 0.5"] and met == []
    assert replay_cli.check_gates(nothing, {"recall": None, "precision": None}) == ([], [])


def test_replay_arguments_accept_aliases() -> None:
    p = argparse.ArgumentParser()
    replay_cli.add_args(p)
    args = p.parse_args(
        ["v.mp4", "--label-alias", "man=person", "--label-alias", "kid=person", "--ignore-labels"]
    )
    assert args.label_alias == ["man=person", "kid=person"] and args.ignore_labels
