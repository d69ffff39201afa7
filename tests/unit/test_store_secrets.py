"""The store keeps only masked camera URLs, on SQLite and PostgreSQL; migration 0002 masks older rows.
Part of the security corpus (tests/badinput/README.md)."""

from __future__ import annotations

from sqlalchemy import text
from test_store_events import store  # noqa: F401  (the SQLite/PostgreSQL fixture)

from bus.contracts import CameraSpec, ControlMessage
from sinks.migrate import downgrade, upgrade
from sinks.store import Store

SECRET = "hunter2S3cret"


def _camera(url: str) -> ControlMessage:
    return ControlMessage(op="upsert", kind="camera", id="door", camera=CameraSpec(id="door", url=url))


def _raw_specs(s: Store) -> str:
    with s.engine.connect() as conn:
        return " ".join(r[0] for r in conn.execute(text("SELECT spec FROM cameras")))


def test_the_store_never_holds_a_camera_password(store: Store) -> None:  # noqa: F811
    store.write([_camera(f"rtsp://admin:{SECRET}@10.0.0.5/live?access_token={SECRET}")])
    assert SECRET not in _raw_specs(store)
    cam = store.camera("door")
    assert cam is not None and cam.url == "rtsp://admin:***@10.0.0.5/live?access_token=***"


def test_the_migration_masks_rows_written_before_it(store: Store) -> None:  # noqa: F811
    downgrade(store.engine, "0001")
    spec = CameraSpec(id="door", url=f"rtsp://admin:{SECRET}@10.0.0.5/live").to_json().decode()
    with store.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO cameras (id, spec, enabled, updated_at) VALUES ('door', :s, true, 1.0)"),
            {"s": spec},
        )
        conn.execute(
            text("INSERT INTO cameras (id, spec, enabled, updated_at) VALUES ('file', :s, true, 1.0)"),
            {"s": CameraSpec(id="file", url="/videos/a.mp4").to_json().decode()},
        )
    upgrade(store.engine)
    assert SECRET not in _raw_specs(store)
    door, file = store.camera("door"), store.camera("file")
    assert door is not None and door.url == "rtsp://admin:***@10.0.0.5/live"
    assert file is not None and file.url == "/videos/a.mp4"
