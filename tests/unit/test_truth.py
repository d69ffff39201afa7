"""Ground truth: the Sightline JSON format, MOTChallenge import, and clear errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sightline.eval.scoring import score_boxes
from sightline.eval.truth import GroundTruth, TruthError, load_truth

VIDEO = {"file": "clip.mp4", "width": 640, "height": 480, "fps": 25.0, "start_s": 0.0, "end_s": 10.0}


def doc(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": "sightline.truth/1",
        "video": VIDEO,
        "objects": [
            {
                "id": "p1", "label": "person", "intervals": [[0.0, 2.0], [5.0, 6.0]],
                "boxes": [{"t": 1.0, "bbox": [10, 20, 50, 120]}, {"t": 5.5, "bbox": [12, 20, 52, 120]}],
            }
        ],
    }  # fmt: skip
    return {**base, **over}


def obj(boxes: list[dict[str, Any]] | None = None, **kw: Any) -> dict[str, Any]:
    return {"id": "a", "label": "person", "intervals": [[0, 1]], **({"boxes": boxes} if boxes else {}), **kw}


def write(tmp_path: Path, data: Any, name: str = "truth.json") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def test_json_round_trip(tmp_path: Path) -> None:
    g = load_truth(write(tmp_path, doc()))
    assert g.video.fps == 25.0 and g.objects[0].intervals == ((0.0, 2.0), (5.0, 6.0))
    assert g.annotated_times() == (1.0, 5.5)  # no explicit times: the instants that have boxes
    assert g.objects[0].visible_at(5.5) and not g.objects[0].visible_at(3.0)
    again = load_truth(write(tmp_path, g.to_json(), "again.json"))
    assert again == g


def test_json_with_a_byte_order_mark(tmp_path: Path) -> None:
    p = tmp_path / "bom.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps(doc()).encode())
    assert load_truth(p).objects[0].id == "p1"


def test_explicit_times_are_sorted_and_used(tmp_path: Path) -> None:
    g = load_truth(write(tmp_path, doc(times=[5.5, 1.0, 3.0])))
    assert g.annotated_times() == (1.0, 3.0, 5.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema": "sightline.truth/9"}, 'expected "schema"'),
        ({"video": {**VIDEO, "fps": 0}}, "video.fps"),
        ({"video": {**VIDEO, "end_s": 1.0}}, "outside the segment"),
        ({"objects": [{"id": "a", "label": "person", "intervals": [[2, 1]]}]}, "0 <= start <= end"),
        ({"objects": [{"id": "a", "label": "person", "intervals": [[0, 3], [2, 4]]}]}, "sorted and disjoint"),
        ({"objects": [{"id": "a", "label": "person", "intervals": []}]}, "at least one interval"),
        ({"objects": [obj([{"t": 4, "bbox": [0, 0, 1, 1]}])]}, "outside its intervals"),
        ({"objects": [obj([{"t": 0, "bbox": [5, 0, 1, 1]}])]}, "x2 > x1"),
        ({"objects": [obj([{"t": 0, "bbox": [0, 0, 900, 9]}])]}, "leaves the frame"),
        ({"objects": [obj([{"t": 0, "bbox": [0, 0, 1, 1], "ignore": "maybe"}])]}, "valid boolean"),
        (
            {"objects": [obj([{"t": 0, "bbox": [0, 0, 1, 1]}, {"t": 0, "bbox": [0, 0, 2, 2]}])]},
            "increasing and unique",
        ),
        ({"objects": [obj(), obj()]}, "repeated"),
        ({"times": [0.5]}, "not one of the annotated `times`"),
        ({"times": [1.0, 5.5, 11.0]}, "outside the segment 0.0..10.0"),
        ({"objects": [obj(colour="red")]}, "Extra inputs"),
    ],
)
def test_bad_json_is_refused_with_the_reason(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(TruthError, match=message) as err:
        load_truth(write(tmp_path, doc(**change)))
    assert str(tmp_path) in str(err.value)  # the message names the file


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="no such ground-truth file"):
        load_truth(tmp_path / "missing.json")
    with pytest.raises(TruthError, match="not valid JSON"):
        load_truth(write(tmp_path, "{not json"))
    with pytest.raises(TruthError, match="not a MOT row"):
        load_truth(write(tmp_path, "hello,world\n", "notes.txt"))
    with pytest.raises(TruthError, match="MOT options"):
        load_truth(write(tmp_path, doc()), classes=(1,))


# ---- MOTChallenge --------------------------------------------------------------------------------

GT_TXT = """\
1,1,11,21,40,100,1,1,1.0
2,1,13,21,40,100,1,1,0.9
3,1,15,21,40,100,1,1,0.8
6,1,21,21,40,100,1,1,1.0
1,2,201,101,30,80,0,1,1.0
2,3,301,51,100,60,1,3,1.0
3,4,401,101,30,80,1,7,1.0
3,5,601,401,60,100,1,1,0.1
"""


def test_mot_gt_txt_import(tmp_path: Path) -> None:
    """Frames are 1-based (frame f at (f-1)/fps); MOT pixels are 1-based (bb_left 11 -> x1 10).

    id 1: pedestrian in frames 1,2,3 and 6 -> two intervals, split at the gap.
    id 2: conf 0 -> an ignored box.  id 3: class 3 (car) -> dropped.
    id 4: class 7 (static person) -> ignored.
    id 5: visibility 0.1 -> kept by default, ignored with min_visibility=0.25; clipped to the 640x480 frame.
    """
    gt = write(tmp_path, GT_TXT, "gt.txt")
    g = load_truth(gt, fps=10, width=640, height=480)
    assert g.video.fps == 10 and g.video.end_s == 0.5
    assert g.annotated_times() == (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # every frame, also those without rows
    objs = {o.id: o for o in g.objects}
    assert sorted(objs) == ["1", "2", "4", "5"]
    one = objs["1"]
    assert one.label == "person" and one.intervals == ((0.0, 0.2), (0.5, 0.5))
    assert [b.t for b in one.boxes] == [0.0, 0.1, 0.2, 0.5]
    assert one.boxes[0].bbox == (10.0, 20.0, 50.0, 120.0) and not one.boxes[0].ignore
    assert objs["2"].boxes[0].ignore and objs["4"].boxes[0].ignore and not objs["5"].boxes[0].ignore
    assert objs["5"].boxes[0].bbox == (600.0, 400.0, 640.0, 480.0)
    strict = load_truth(gt, fps=10, width=640, height=480, min_visibility=0.25)
    assert {o.id: o for o in strict.objects}["5"].boxes[0].ignore


def test_mot_scoring_respects_ignored_rows(tmp_path: Path) -> None:
    g = load_truth(write(tmp_path, GT_TXT, "gt.txt"), fps=10, width=640, height=480)
    preds = [
        (0.0, (10, 20, 50, 120), "person", "t1"),  # id 1: a hit
        (0.0, (200, 100, 230, 180), "person", "t2"),  # on the conf=0 box of id 2: ignored
        (0.1, (300, 50, 400, 110), "person", "t3"),  # on the car: dropped from truth, so a false positive
    ]
    s = score_boxes(preds, g)
    assert (s.tp, s.fp, s.ignored) == (1, 1, 1)
    assert s.fn == 4  # id 1 at 0.1, 0.2, 0.5 and id 5 at 0.2
    assert s.truth_objects == 2  # ids 2 and 4 have only ignored boxes


def test_mot_sequence_directory_with_seqinfo(tmp_path: Path) -> None:
    seq = tmp_path / "MOT17-02"
    (seq / "gt").mkdir(parents=True)
    (seq / "gt" / "gt.txt").write_text(GT_TXT)
    (seq / "seqinfo.ini").write_text(
        "[Sequence]\nname=MOT17-02\nframeRate=30\nseqLength=600\nimWidth=1920\nimHeight=1080\n"
    )
    g = load_truth(seq)
    assert (g.video.file, g.video.fps, g.video.width, g.video.height) == ("MOT17-02", 30.0, 1920, 1080)
    assert len(g.annotated_times()) == 600 and g.annotated_times()[1] == pytest.approx(1 / 30)
    assert load_truth(seq / "gt" / "gt.txt").video.fps == 30.0  # seqinfo.ini is found from gt.txt too
    assert load_truth(seq, fps=10).video.fps == 10.0  # an explicit fps wins


def test_mot_defaults_without_seqinfo(tmp_path: Path) -> None:
    g = load_truth(write(tmp_path, "1,1,1,1,10,20,1,-1,-1,-1\n2,1,3,1,10,20,1,-1,-1,-1\n", "gt.txt"))
    assert g.video.fps == 30.0  # the MOTChallenge norm
    assert (g.video.width, g.video.height) == (12, 20)  # extent of the boxes
    assert len(g.objects) == 1 and not g.objects[0].boxes[0].ignore  # MOT15 rows: class -1 -> pedestrian


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no rows"),
        ("1,1,10,10\n", "at least 6 columns"),
        ("0,1,10,10,5,5,1,1,1\n", "1-based"),
        ("1,1,10,10,0,5,1,1,1\n", "width and height must be positive"),
        ("1,1,10,10,5,5,1,1,1\n1,1,12,10,5,5,1,1,1\n", "two rows for the same frame"),
        ("1,1,nan,10,5,5,1,1,1\n", "non-finite"),
    ],
)
def test_bad_mot_files(tmp_path: Path, text: str, message: str) -> None:
    gt = write(tmp_path, text, "gt.txt")
    with pytest.raises(TruthError, match=message):
        load_truth(gt, fps=10)


def test_mot_bad_fps(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="fps must be positive"):
        load_truth(write(tmp_path, "1,1,1,1,10,20,1,1,1\n", "gt.txt"), fps=-5)


def test_schema_tag_is_written(tmp_path: Path) -> None:
    g = GroundTruth.model_validate(doc())
    assert json.loads(g.to_json())["schema"] == "sightline.truth/1"
