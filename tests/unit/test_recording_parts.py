"""Who records, and a file camera's clips cut from its own file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bus.contracts import CameraSpec
from configs import Settings
from dashboard.app import create_app
from ingest.manager import CameraManager
from ingest.plan import CameraPlan
from sightline.samples import Figure
from sightline.testing import messages as samples
from sightline.testing.ingest_kit import MemoryFramePublisher


def test_live_cameras_record_file_cameras_are_their_own_recording(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(recording={"mode": "events"})
    manager = CameraManager(settings, MemoryFramePublisher(), "w")

    def plan(url: str, record: str | None = None) -> CameraPlan:
        spec = CameraSpec(id="c", url=url, record=record)  # type: ignore[arg-type]
        return CameraPlan.from_spec(spec, settings.ingest, settings.recording.mode)

    live = manager._recorder(plan("rtsp://cam.local/stream"))
    assert live is not None and live.mode == "events"  # the deployment's default
    assert manager._recorder(plan("rtsp://cam.local/stream", "off")) is None
    assert manager._recorder(plan(str(tmp_path / "clip.mp4"), "continuous")) is None
    assert manager._recorder(plan("gopher://nope/x", "continuous")) is None  # refused: it fails itself


def test_a_file_cameras_event_clip_comes_from_the_file_on_media_time(
    red_figure_clip: tuple[Path, Figure], make_settings: Callable[..., Settings]
) -> None:
    clip, _ = red_figure_clip
    with TestClient(create_app(make_settings())) as client:
        store = client.app.state.sightline.store  # type: ignore[attr-defined]
        store.put_camera(CameraSpec(id="lobby", url=str(clip)))
        ev = samples.event("lobby", "red", "t1", "update", 50, 5.0)
        store.write([ev])
        r = client.get(f"/api/events/{ev.event_id}/clip", params={"pre_s": 1, "post_s": 1})
        assert r.status_code == 200, r.text
        assert r.headers["x-sightline-timeline"] == "media"
        assert float(r.headers["x-sightline-clip-origin"]) == pytest.approx(4.0)  # keyframes every 2 s
        import io

        import av

        with av.open(io.BytesIO(r.content)) as c:
            times = [f.time for f in c.decode(video=0)]
        assert len(times) == 20 and times[-1] == pytest.approx(1.9)  # 4.0 .. 5.9 s of the file
        assert not list((Path(client.app.state.sightline.settings.data_dir) / "recordings").glob("*"))  # type: ignore[attr-defined]
        far = client.get("/api/cameras/lobby/clip", params={"start_s": 100, "end_s": 110})
        assert far.status_code == 404


def test_the_api_takes_and_shows_a_cameras_recording_mode() -> None:
    from dashboard.api_entities import CameraIn, CameraPatch, camera_out

    body = CameraIn.model_validate({"id": "door", "url": "rtsp://cam.local/s", "record": "events"})
    spec = CameraSpec.model_validate(body.model_dump())
    assert spec.record == "events" and camera_out(spec, None).record == "events"
    assert CameraPatch.model_validate({"record": "off"}).model_dump(exclude_unset=True) == {"record": "off"}
    with pytest.raises(ValueError):
        CameraIn.model_validate({"id": "door", "url": "rtsp://cam.local/s", "record": "sometimes"})
