"""Starts, changes and stops camera workers so the running set matches what this process owns."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from bus.camera_urls import SourceRefused, resolve
from bus.contracts import CameraSpec, EndOfStream, FrameMeta, RecordedSegment, StatusUpdate
from bus.kafka import Producer
from bus.redact import redact_url
from bus.topics import Topics
from configs.settings import Settings
from ingest import metrics
from ingest.camera import CameraWorker, FramePublisher
from ingest.plan import CameraPlan
from ingest.recorder import SegmentRecorder, recordings_root

log = logging.getLogger(__name__)


class OwnerGate(Protocol):
    def epoch(self, camera_id: str) -> int | None: ...
    def wait_epoch(self, camera_id: str) -> int | None: ...


class KafkaFramePublisher:
    """Frames to the frames topic, status to the status topic; both keyed by camera id.

    With a gate (`ingest.ownership.Ownership`), a camera's messages are published only while this
    process holds the camera, stamped with its owner epoch; anything else is dropped and counted
    (`not_owner`), so a process that lost a camera says nothing more about it.
    """

    def __init__(
        self, producer: Producer, topics: Topics, gate: OwnerGate | None = None, worker: str = ""
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.gate = gate
        self.worker = worker

    def _epoch(self, camera_id: str, wait: bool = False) -> int | None:
        """The owner epoch to stamp, or None (dropped, counted). Frames and end-of-stream `wait`
        while only the lease is in doubt: they come from the camera's publisher thread, whose
        bounded queue (and a file's decoder behind it) waits with them."""
        if self.gate is None:
            return -1
        epoch = self.gate.wait_epoch(camera_id) if wait else self.gate.epoch(camera_id)
        if epoch is None:
            metrics.DROPS.labels(metrics.cam(camera_id), "not_owner").inc()
        return epoch

    def frame(self, meta: FrameMeta, jpeg: bytes) -> None:
        epoch = self._epoch(meta.camera_id, wait=True)
        if epoch is None:
            return
        meta = meta.model_copy(update={"owner": self.worker, "owner_epoch": epoch})
        future = self.producer.send_frame(self.topics.frames, meta, jpeg)
        cid = meta.camera_id

        def failed(exc: BaseException) -> None:  # async delivery failure: count it, say it
            metrics.DROPS.labels(metrics.cam(cid), "publish_error").inc()
            log.warning("frame delivery failed: %s", exc, extra={"camera_id": cid})

        future.add_errback(failed)

    def status(self, update: StatusUpdate) -> None:
        if update.component == "camera" and self._epoch(update.id) is None:
            return
        self.producer.send(self.topics.status, update.id, update)

    def end_of_stream(self, eos: EndOfStream) -> None:
        epoch = self._epoch(eos.camera_id, wait=True)
        if epoch is None:
            return
        self.producer.send_end_of_stream(self.topics.frames, eos.model_copy(update={"owner_epoch": epoch}))

    def segment(self, seg: RecordedSegment) -> None:
        if self._epoch(seg.camera_id) is None:
            return
        self.producer.send(self.topics.recordings, seg.camera_id, seg)


class CameraManager:
    def __init__(self, settings: Settings, publisher: FramePublisher, worker: str) -> None:
        self.settings = settings
        self.publisher = publisher
        self.worker = worker
        self.workers: dict[str, CameraWorker] = {}
        self._revision: dict[str, int] = {}

    def reconcile(self, cameras: dict[str, CameraSpec], revisions: dict[str, int], mine: set[str]) -> None:
        """Stop what is no longer ours or changed; start what is ours and not running."""
        for cid, w in list(self.workers.items()):
            spec = cameras.get(cid)
            if spec is None:
                self._retire(cid, "deleted")
            elif not spec.enabled:
                self._retire(cid, "disabled")
            elif cid not in mine:
                self._retire(cid, "moved to another ingest worker")
            elif revisions.get(cid) != self._revision.get(cid):
                plan = CameraPlan.from_spec(spec, self.settings.ingest, self.settings.recording.mode)
                if plan != w.plan:
                    self._retire(cid, "configuration changed")
                elif not w.alive:
                    self._retire(cid, "restarted", publish=False)  # re-registered after it ended
                else:
                    self._revision[cid] = revisions.get(cid, 0)
        for cid in sorted(mine):
            spec = cameras[cid]
            if cid not in self.workers and spec.enabled:
                self._start(spec, revisions.get(cid, 0))
        metrics.CAMERAS.set(sum(1 for w in self.workers.values() if w.alive))

    def _start(self, spec: CameraSpec, revision: int) -> None:
        plan = CameraPlan.from_spec(spec, self.settings.ingest, self.settings.recording.mode)
        w = CameraWorker(
            plan,
            self.settings.ingest,
            self.publisher,
            worker=self.worker,
            max_frame_bytes=self.settings.bus.max_frame_bytes,
            recorder=self._recorder(plan),
        )
        self.workers[spec.id] = w
        self._revision[spec.id] = revision
        shown = w.plan.model_copy(update={"url": redact_url(w.plan.url)}).model_dump_json()
        log.info("camera %s: starting %s", spec.id, shown, extra={"camera_id": spec.id})
        w.start()

    def _recorder(self, plan: CameraPlan) -> SegmentRecorder | None:
        """A recorder for cameras that record; it only sees live sources (a file is its own recording)."""
        if plan.record == "off":
            return None
        try:
            if resolve(plan.url, self.settings.ingest, must_exist=False).kind == "file":
                return None  # a file is its own recording: clips are cut from it
        except SourceRefused:
            return None  # the camera itself will fail with the reason
        rec = self.settings.recording
        segment = getattr(self.publisher, "segment", None)  # a publisher without it records unindexed
        return SegmentRecorder(
            plan.camera_id,
            recordings_root(self.settings.data_dir),
            plan.record,
            segment_s=rec.segment_s,
            min_free_bytes=rec.min_free_bytes,
            on_segment=segment,
        )

    def _retire(self, cid: str, reason: str, publish: bool = True) -> None:
        w = self.workers.pop(cid)
        self._revision.pop(cid, None)
        if w.alive:
            w.stop(reason)
            if not w.join(5.0):
                log.warning("camera %s did not stop within 5 s", cid, extra={"camera_id": cid})
        metrics.forget(cid)

    def publish_status(self) -> None:
        for w in list(self.workers.values()):
            try:
                self.publisher.status(w.snapshot())
            except Exception:
                log.warning("status publish failed", exc_info=True, extra={"camera_id": w.plan.camera_id})

    def stop_all(self, timeout_s: float = 5.0) -> None:
        for w in self.workers.values():
            w.stop("ingest stopping")
        deadline = time.monotonic() + timeout_s
        for cid, w in self.workers.items():
            if not w.join(max(0.0, deadline - time.monotonic())):
                log.warning("camera %s still busy at shutdown", cid, extra={"camera_id": cid})
        self.workers.clear()
