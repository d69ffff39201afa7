"""Clips from recorded segments through the real API: across boundaries, gaps, bad input, boxes, evidence.

The segments are made by the real recorder from a generated clip (a red figure walking 3-9 s,
keyframes every 2 s), with a clock that follows media time, so every wall time is known.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from bus.contracts import ObjectEvent, RecordedSegment
from configs import Settings
from dashboard.app import create_app
from ingest.recorder import SegmentRecorder
from sightline.samples import Figure
from sightline.testing import messages as samples
from sinks.clipcut import output_size
from sinks.eventwrite import track_key
from sinks.evidence import verify_zip

T0 = samples.T0.timestamp()


def record(clip: Path, root: Path, camera: str = "door", segment_s: float = 2.0) -> list[RecordedSegment]:
    """Feed a file's packets to the recorder as if they arrived live, at T0 + media time."""
    now = [T0]
    got: list[RecordedSegment] = []
    rec = SegmentRecorder(
        camera, root, "continuous", segment_s=segment_s, on_segment=got.append, clock=lambda: now[0]
    )
    with av.open(str(clip)) as c:
        stream = c.streams.video[0]
        rec.begin(stream, "sess0001")
        for pkt in c.demux(stream):
            if pkt.dts is not None:
                now[0] = T0 + float(pkt.dts * stream.time_base)
            rec.packet(pkt)
        rec.end()
    assert rec.problem == "" and rec.errors == 0
    return got


@pytest.fixture
def recorded(
    red_figure_clip: tuple[Path, Figure], make_settings: Callable[..., Settings]
) -> Iterator[tuple[TestClient, list[RecordedSegment], Figure]]:
    clip, fig = red_figure_clip
    settings = make_settings(recording={"max_clip_s": 30})
    segs = record(clip, Path(settings.data_dir) / "recordings")
    with TestClient(create_app(settings)) as client:
        store = client.app.state.sightline.store  # type: ignore[attr-defined]
        store.write(segs)
        yield client, segs, fig


def _events(fig: Figure) -> list[ObjectEvent]:
    """The figure's track as the analyzer would report it: a box every second, 3.5 .. 8.5 s."""
    times = [3.5 + i for i in range(6)]
    phases = ["start", *["update"] * 4, "end"]
    out = []
    for i, (t, ph) in enumerate(zip(times, phases, strict=True)):
        box = fig.box_at(t, 640, 360)
        assert box is not None
        out.append(samples.event("door", "red", "t1", ph, i, t, bbox=box, label="person in red"))
    return out


def _decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data)) as c:
        return list(c.decode(video=0))


def test_segments_are_keyframe_aligned_and_contiguous(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    _, segs, _ = recorded
    assert [round(s.start_ts.timestamp() - T0, 3) for s in segs] == [0, 2, 4, 6, 8, 10]
    assert all(abs(s.duration_s - 2.0) < 1e-6 for s in segs) and sum(s.frames for s in segs) == 120


def test_a_clip_across_segment_boundaries_starts_on_the_keyframe_before(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    client, _, _ = recorded
    start, end = samples.T0 + timedelta(seconds=3.0), samples.T0 + timedelta(seconds=7.5)
    r = client.get("/api/cameras/door/clip", params={"start": start.isoformat(), "end": end.isoformat()})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4" and r.headers["x-sightline-cut"] == "keyframe"
    assert float(r.headers["x-sightline-clip-origin"]) == pytest.approx(T0 + 2.0)  # keyframe at 2 s
    assert json.loads(r.headers["x-sightline-gaps"]) == []
    assert r.content[4:8] == b"ftyp" and r.content.index(b"moov") < r.content.index(b"mdat"), "faststart"
    frames = _decode(r.content)
    assert len(frames) == 55  # 2.0 .. 7.4 s at 10 fps, no re-encode, nothing lost at 4 and 6 s
    assert frames[0].key_frame and frames[-1].time == pytest.approx(5.4)


def test_holes_in_the_recording_and_broken_segments_are_reported_not_hidden(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    client, segs, _ = recorded
    root = Path(client.app.state.sightline.settings.data_dir) / "recordings"  # type: ignore[attr-defined]
    (root / segs[2].path).unlink()  # 4-6 s gone from disk (still in the index)
    (root / segs[3].path).write_bytes(b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100)  # 6-8 s corrupt
    start, end = samples.T0 + timedelta(seconds=1), samples.T0 + timedelta(seconds=11)
    r = client.get("/api/cameras/door/clip", params={"start": start.isoformat(), "end": end.isoformat()})
    assert r.status_code == 200, r.text
    gaps = json.loads(r.headers["x-sightline-gaps"])
    assert [(g["start"] - T0, g["end"] - T0) for g in gaps] == [(4.0, 6.0), (6.0, 8.0)]
    assert "gone" in gaps[0]["why"] and "unreadable" in gaps[1]["why"]
    assert gaps[0]["clip_start_s"] == pytest.approx(4.0)  # clip starts at the keyframe at 0 s
    times = [f.time for f in _decode(r.content)]
    assert times[0] == 0 and not [t for t in times if 4.0 <= t < 8.0] and times[-1] == pytest.approx(10.9)


def test_bad_ranges_get_clear_answers(recorded: tuple[TestClient, list[RecordedSegment], Figure]) -> None:
    client, _, _ = recorded
    t = samples.T0

    def get(a: float, b: float, cam: str = "door") -> tuple[int, dict[str, object]]:
        r = client.get(
            f"/api/cameras/{cam}/clip",
            params={
                "start": (t + timedelta(seconds=a)).isoformat(),
                "end": (t + timedelta(seconds=b)).isoformat(),
            },
        )
        return r.status_code, r.json()

    code, body = get(100, 110)
    assert code == 404
    assert body["detail"]["available"] == {
        "start": t.isoformat(),
        "end": (t + timedelta(seconds=12)).isoformat(),
    }
    assert get(0, 40)[0] == 422  # longer than max_clip_s (30)
    assert get(5, 5)[0] == 422
    assert get(0, 5, cam="nobody")[0] == 404
    assert client.get("/api/cameras/..%2F..%2Fetc/clip", params={"start_s": 0, "end_s": 1}).status_code in (
        404,
        422,
    )
    assert client.get("/api/events/not-an-event/clip").status_code == 404


def test_event_clip_annotated_draws_the_interpolated_box(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    client, _, fig = recorded
    store = client.app.state.sightline.store  # type: ignore[attr-defined]
    events = _events(fig)
    store.write(events)
    mid = events[2]  # an update at 5.5 s
    plain = client.get(f"/api/events/{mid.event_id}/clip", params={"pre_s": 2, "post_s": 2})
    assert plain.status_code == 200
    assert float(plain.headers["x-sightline-clip-origin"]) == pytest.approx(T0 + 2.0)  # keyframe before 3.5
    assert _decode(plain.content)[-1].time == pytest.approx(5.4)  # up to 7.5 s
    r = client.get(f"/api/events/{mid.event_id}/clip", params={"pre_s": 2, "post_s": 2, "annotate": "true"})
    assert r.status_code == 200 and r.headers["x-sightline-cut"] == "exact"
    assert float(r.headers["x-sightline-clip-origin"]) == pytest.approx(T0 + 3.5)
    frames = _decode(r.content)
    assert len(frames) == 40  # 3.5 .. 7.4 s, re-encoded
    # At 6.0 s, between the samples at 5.5 and 6.5, the box is where the figure is at 6.0 s: its top
    # edge crosses the background right of the figure's head (the figure moves 37 px in 0.5 s, so a
    # box left at the 5.5 s sample would not reach there).
    x1, y1, x2, _ = (round(v) for v in fig.box_at(6.0, 640, 360) or (0, 0, 0, 0))
    corner = slice(x2 - (x2 - x1) // 4 + 3, x2 - 3)

    def red(img: np.ndarray) -> float:
        px = img[y1, corner].astype(int)
        return float(((px[:, 2] > 150) & (px[:, 1] < 100) & (px[:, 0] < 100)).mean())

    assert red(frames[25].to_ndarray(format="bgr24")) > 0.8
    assert red(_decode(plain.content)[40].to_ndarray(format="bgr24")) < 0.2  # same instant, no box
    key = track_key("door", "red", "t1")  # what a search hit names
    assert client.get(f"/api/tracks/{key}/first-event").json() == {"event_id": events[0].event_id}
    assert client.get("/api/tracks/no-such-track/first-event").status_code == 404
    track = client.get(f"/api/events/{mid.event_id}/track").json()
    whole = client.get(f"/api/events/{mid.event_id}/clip", params={"span": "track"})
    assert track["clip_origin"] == pytest.approx(float(whole.headers["x-sightline-clip-origin"]))
    assert track["clip_origin"] == pytest.approx(T0)  # the track 3.5 .. 8.5 s, 5 s either side
    assert [(g["start"] - T0, g["end"] - T0) for g in track["gaps"]] == [(-1.5, 0.0), (12.0, 13.5)]
    assert track["timeline"] == "wall" and [p["t"] - T0 for p in track["points"]] == pytest.approx(
        [3.5, 4.5, 5.5, 6.5, 7.5, 8.5]
    )


def test_an_annotated_clip_is_scaled_down_on_request_and_says_so(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    client, _, fig = recorded
    events = _events(fig)
    client.app.state.sightline.store.write(events)  # type: ignore[attr-defined]
    mid = events[2]
    url = f"/api/events/{mid.event_id}/clip"
    full = client.get(url, params={"pre_s": 2, "post_s": 2, "annotate": "true"})  # default 720: not up
    assert full.status_code == 200
    assert full.headers["x-sightline-size"] == full.headers["x-sightline-source-size"] == "640x360"
    assert (_decode(full.content)[0].width, _decode(full.content)[0].height) == (640, 360)
    r = client.get(url, params={"pre_s": 2, "post_s": 2, "annotate": "true", "height": 180})
    assert r.status_code == 200
    assert (r.headers["x-sightline-size"], r.headers["x-sightline-source-size"]) == ("320x180", "640x360")
    frames = _decode(r.content)
    assert len(frames) == 40 and (frames[0].width, frames[0].height) == (320, 180)
    # The box is drawn where the figure is, in the smaller picture's coordinates.
    x1, y1, x2, _ = (round(v / 2) for v in fig.box_at(6.0, 640, 360) or (0, 0, 0, 0))
    px = frames[25].to_ndarray(format="bgr24")[y1, x1 + 3 : x2 - 3].astype(int)
    assert ((px[:, 2] > 150) & (px[:, 1] < 100) & (px[:, 0] < 100)).mean() > 0.8
    bigger = client.get(url, params={"pre_s": 2, "post_s": 2, "annotate": "true", "height": 1080})
    assert bigger.headers["x-sightline-size"] == "640x360"  # never scaled up
    plain = client.get(url, params={"pre_s": 2, "post_s": 2, "height": 180})
    assert plain.status_code == 422  # a plain clip is copied: no size to choose
    assert "x-sightline-size" not in client.get(url, params={"pre_s": 2, "post_s": 2}).headers


def test_output_size_keeps_the_aspect_ratio_even_and_never_grows() -> None:
    assert output_size(1920, 1080, 720) == (1280, 720)
    assert output_size(1920, 1080, None) == output_size(1920, 1080, 0) == (1920, 1080)
    assert output_size(640, 360, 720) == (640, 360)
    assert output_size(721, 481, 240) == (360, 240)
    assert output_size(1921, 1081, 2000) == (1920, 1080)


def test_the_evidence_zip_matches_its_manifest_and_opens_without_sightline(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    client, _, fig = recorded
    store = client.app.state.sightline.store  # type: ignore[attr-defined]
    settings = client.app.state.sightline.settings  # type: ignore[attr-defined]
    snap = Path(settings.data_dir) / "snapshots" / "door" / "red" / "s1.jpg"
    snap.parent.mkdir(parents=True)
    _ok, jpg = cv2.imencode(".jpg", np.full((36, 64, 3), 200, np.uint8))
    snap.write_bytes(jpg.tobytes())
    events = _events(fig)
    events[0] = events[0].model_copy(update={"snapshot": "snapshots/door/red/s1.jpg"})
    store.write(events)
    r = client.get(f"/api/events/{events[0].event_id}/evidence")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert verify_zip(r.content) == []
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        names = set(zf.namelist())
        assert {"clip.mp4", "snapshot-event.jpg", "track.json", "engine.json", "manifest.json"} <= names
        assert len(_decode(zf.read("clip.mp4"))) > 0
        assert (
            cv2.imdecode(np.frombuffer(zf.read("snapshot-event.jpg"), np.uint8), cv2.IMREAD_COLOR) is not None
        )
        assert [e["phase"] for e in json.loads(zf.read("track.json"))] == ["start", *["update"] * 4, "end"]
        engine = json.loads(zf.read("engine.json"))
        assert engine["engine"] == "baseline" and "person in red" in engine["prompt"]
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["event_id"] == events[0].event_id
    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(r.content)) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            body = src.read(name)
            dst.writestr(name, body + b"x" if name == "track.json" else body)
    assert verify_zip(tampered.getvalue()) == ["track.json: hash differs"]


def test_a_segment_path_outside_the_recordings_directory_is_a_gap_not_a_file(
    recorded: tuple[TestClient, list[RecordedSegment], Figure],
) -> None:
    client, segs, _ = recorded
    store = client.app.state.sightline.store  # type: ignore[attr-defined]
    settings = client.app.state.sightline.settings  # type: ignore[attr-defined]
    secret = Path(settings.data_dir) / "secret.mp4"
    secret.write_bytes(Path(Path(settings.data_dir) / "recordings" / segs[0].path).read_bytes())
    evil = segs[0].model_copy(update={"segment_id": "evil", "camera_id": "evil", "path": "../secret.mp4"})
    store.write([evil])
    t = samples.T0
    r = client.get(
        "/api/cameras/evil/clip",
        params={"start": t.isoformat(), "end": (t + timedelta(seconds=2)).isoformat()},
    )
    assert r.status_code == 404  # nothing readable: the only segment was refused
    assert "outside" in json.dumps(r.json())


def test_a_file_camera_whose_codec_mp4_cannot_hold_is_re_encoded_not_a_server_error(
    vtest: Path, tmp_path: Path
) -> None:
    """vtest.avi (the demo's camera) is MS-MPEG4 in AVI: copying its packets into MP4 is refused."""
    from sinks.clipcut import Piece, remux

    with av.open(str(vtest)) as c:
        assert c.streams.video[0].codec_context.name.startswith("msmpeg4")
    out = tmp_path / "clip.mp4"
    result = remux([Piece(vtest, 0.0, 2.0, 5.0, (2.0, 5.0))], out)
    with av.open(str(out)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(c.decode(stream))
    assert result.origin == 2.0 and result.frames == len(frames)
    assert 2.5 <= len(frames) / 10.0 <= 3.1  # vtest is 10 fps: about 3 s of it
