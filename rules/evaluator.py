"""Rules over tracked objects → alerts. One evaluator for live (`rules.service`), dry run and replay.

Feed it one camera's `ObjectEvent`s in order; it returns the `Alert`s they raise. Everything it
remembers per camera is plain data (`CameraState`), so the service can checkpoint it and a
restarted process continues where the last one stopped, raising the same alert ids.

Built for VLM sampling rates (0.5–2 fps): an object may move far between two events, so a line
crossing is found from the *path* between consecutive positions of a track (segment
intersection), and a zone entry/exit time is interpolated where that path meets the zone's edge.
Durations (dwell, count, absent, cooldown) are media time (`pts_s`); schedules are wall time.
A camera's clock is the latest `pts_s` it has seen, so timers advance with any of its events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bus.contracts import Alert, ObjectEvent, stable_id
from bus.rulespec import Condition, LineSpec, RuleSpec, ZoneSpec, reference_problems
from rules.geometry import P, anchor_point, contains, crossing, edge_hits, side
from rules.schedule import is_open

BBox = tuple[float, float, float, float]


@dataclass
class RuleTrack:
    """One rule's view of one track."""

    inside: bool = False
    since: float | None = None  # dwell: interpolated entry time
    since_frame: int = -1
    fired: bool = False


@dataclass
class Track:
    query_id: str
    label: str
    bbox: BBox
    pts: float
    snapshot: str | None = None
    per: dict[str, RuleTrack] = field(default_factory=dict)


@dataclass
class RuleClock:
    """One rule's camera-wide state: cooldown, and the count/absent episode."""

    last_alert: float | None = None
    since: float | None = None
    since_frame: int = -1
    fired: bool = False


@dataclass
class CameraState:
    session: str = ""
    clock: float = -math.inf
    wall: datetime | None = None  # wall time at `clock`
    frame_id: int = -1
    tracks: dict[str, Track] = field(default_factory=dict)
    rules: dict[str, RuleClock] = field(default_factory=dict)
    inside: dict[str, int] = field(default_factory=dict)  # rule → tracks inside its zone (derived, not saved)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session,
            "clock": None if self.clock == -math.inf else self.clock,
            "wall": self.wall.isoformat() if self.wall else "",
            "frame_id": self.frame_id,
            "tracks": {
                k: {**vars(t), "per": {r: vars(rt) for r, rt in t.per.items()}}
                for k, t in self.tracks.items()
            },
            "rules": {k: vars(v) for k, v in self.rules.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CameraState:
        tracks = {}
        for k, t in d.get("tracks", {}).items():
            per = {r: RuleTrack(**rt) for r, rt in t.get("per", {}).items()}
            tracks[k] = Track(**{**t, "bbox": tuple(t["bbox"]), "per": per})
        inside: dict[str, int] = {}
        for t in tracks.values():
            for r, rt in t.per.items():
                inside[r] = inside.get(r, 0) + rt.inside
        return cls(
            inside=inside,
            session=d.get("session", ""),
            clock=-math.inf if d.get("clock") is None else float(d["clock"]),
            wall=datetime.fromisoformat(d["wall"]) if d.get("wall") else None,
            frame_id=int(d.get("frame_id", -1)),
            tracks=tracks,
            rules={k: RuleClock(**v) for k, v in d.get("rules", {}).items()},
        )


@dataclass(slots=True)
class Compiled:
    """A rule ready to evaluate: what the hot path needs, looked up once."""

    spec: RuleSpec
    kind: Condition
    camera: str
    poly: tuple[P, ...] = ()
    line: tuple[P, P] | None = None
    inside_sign: float = 1.0
    id: str = ""
    anchor: str = "bottom_center"
    direction: str = "any"
    need: float = 0.0  # seconds for dwell / count / absent
    min_count: int = 1
    box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)  # the polygon's bounding box
    timer: bool = False
    edges: bool = False  # enter/leave: a pass through between two samples counts
    query: str | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        w = self.spec.when
        self.id, self.anchor, self.query, self.label = (
            self.spec.id,
            self.spec.anchor,
            self.spec.query,
            self.spec.label,
        )
        self.direction = w.cross.direction if w.cross else "any"
        self.need = (
            w.dwell.seconds
            if w.dwell
            else w.count.seconds
            if w.count
            else w.absent.seconds
            if w.absent
            else 0.0
        )
        self.min_count = w.count.min if w.count else 1
        if self.poly:
            xs, ys = [p[0] for p in self.poly], [p[1] for p in self.poly]
            self.box = (min(xs), min(ys), max(xs), max(ys))
        self.timer = self.kind in ("dwell", "count", "absent")
        self.edges = self.kind in ("enter", "leave")


Outcome = Literal["fired", "cooldown", "closed"]


def _overlaps(box: tuple[float, float, float, float], p: P, q: P) -> bool:
    """The bounding boxes of a polygon and a path overlap (else the path cannot meet its edges)."""
    x0, y0, x1, y1 = box
    return not (max(p[0], q[0]) < x0 or min(p[0], q[0]) > x1 or max(p[1], q[1]) < y0 or min(p[1], q[1]) > y1)


class Evaluator:
    def __init__(
        self,
        zones: list[ZoneSpec] | tuple[ZoneSpec, ...] = (),
        lines: list[LineSpec] | tuple[LineSpec, ...] = (),
        rules: list[RuleSpec] | tuple[RuleSpec, ...] = (),
    ) -> None:
        self.cameras: dict[str, CameraState] = {}
        self.disabled: dict[str, str] = {}
        self.by_camera: dict[str, list[Compiled]] = {}
        self.timers_by_camera: dict[str, list[Compiled]] = {}
        self.set_rules(zones, lines, rules)

    def set_rules(
        self,
        zones: list[ZoneSpec] | tuple[ZoneSpec, ...],
        lines: list[LineSpec] | tuple[LineSpec, ...],
        rules: list[RuleSpec] | tuple[RuleSpec, ...],
    ) -> None:
        """Replace the rule set; a rule whose zone or line is gone is disabled with a reason."""
        zone = {z.id: z for z in zones}
        line = {ln.id: ln for ln in lines}
        self.disabled = {}
        self.by_camera = {}
        for r in rules:
            problems = reference_problems(list(zones), list(lines), [r])
            if problems:
                self.disabled[r.id] = problems[0].split(": ", 1)[1]
                continue
            if not r.enabled:
                self.disabled[r.id] = "disabled"
                continue
            kind = r.when.kind
            if r.when.line is not None:
                ln = line[r.when.line]
                a, b = ln.points
                c = Compiled(
                    r, kind, ln.camera, line=(a, b), inside_sign=1.0 if side(a, b, ln.inside) > 0 else -1.0
                )
            else:
                z = zone[r.when.zone or ""]
                c = Compiled(r, kind, z.camera, poly=z.polygon)
            self.by_camera.setdefault(c.camera, []).append(c)
        for rs in self.by_camera.values():
            rs.sort(key=lambda c: c.id)
        self.timers_by_camera = {cam: [r for r in rs if r.timer] for cam, rs in self.by_camera.items()}

    # -- checkpoints --------------------------------------------------------------------------

    def state_of(self, camera_id: str) -> dict[str, Any]:
        cam = self.cameras.get(camera_id)
        return cam.to_dict() if cam else CameraState().to_dict()

    def restore(self, camera_id: str, state: dict[str, Any]) -> None:
        self.cameras[camera_id] = CameraState.from_dict(state)

    # -- evaluation ---------------------------------------------------------------------------

    def feed(self, e: ObjectEvent) -> list[Alert]:
        cam = self.cameras.get(e.camera_id)
        if cam is None or e.source_session != cam.session:
            if e.phase == "end" and cam is not None:
                return []  # the end of a track from a session we no longer follow
            cam = self.cameras[e.camera_id] = CameraState(session=e.source_session)
        if e.pts_s > cam.clock:
            cam.clock, cam.wall, cam.frame_id = e.pts_s, e.wall_ts, e.frame_id
        rules = self.by_camera.get(e.camera_id)
        if not rules:
            return []
        out: list[Alert] = []
        key = f"{e.query_id}\x1f{e.track_id}"
        tr = cam.tracks.get(key)
        if tr is None and e.phase == "end":
            return self._timers(cam, rules, e, out)
        prev: Track | None = tr
        if tr is None:
            tr = cam.tracks[key] = Track(e.query_id, e.label, e.bbox_norm, e.pts_s, e.snapshot)
        q, label, b = e.query_id, e.label, e.bbox_norm
        pb = prev.bbox if prev is not None else None
        anchor, p, pp = "", (0.0, 0.0), None  # the position once per anchor in use, not once per rule
        for r in rules:
            if (r.query is not None and r.query != q) or (r.label is not None and r.label != label):
                continue
            if r.anchor != anchor:
                anchor = r.anchor
                p, pp = anchor_point(b, anchor), (anchor_point(pb, anchor) if pb else None)
            if r.line is not None:  # a crossing needs a path: two positions of this track
                if pp is not None:
                    hit = crossing(r.line[0], r.line[1], r.inside_sign, pp, p)
                    if hit is not None and r.direction in ("any", hit[0]):
                        episode = f"{e.frame_id}:{e.phase}"
                        self._fire(cam, r, e, "cross", track=tr, episode=episode, direction=hit[0], out=out)
                continue
            rt = tr.per.get(r.id)
            if rt is not None:  # the common case, cheaply: still outside, or still inside
                x0, y0, x1, y1 = r.box
                now_in = x0 <= p[0] <= x1 and y0 <= p[1] <= y1 and contains(r.poly, p)
                if now_in == rt.inside and (now_in or not r.edges):
                    continue
            self._step(cam, r, tr, prev, e, out, p, pp)
        tr.bbox, tr.pts = e.bbox_norm, e.pts_s
        if e.snapshot:
            tr.snapshot = e.snapshot
        if e.phase == "end":
            for r in rules:  # a track's end closes its dwell: it counts up to when it was last seen
                rt = tr.per.get(r.id)
                if r.kind == "dwell" and rt is not None and rt.inside:
                    self._dwell_due(cam, r, tr, rt, e.track_id, e.pts_s, e, out)
            for rid, rt in tr.per.items():
                if rt.inside:
                    cam.inside[rid] -= 1
            del cam.tracks[key]
        return self._timers(cam, rules, e, out)

    def _step(
        self,
        cam: CameraState,
        r: Compiled,
        tr: Track,
        prev: Track | None,
        e: ObjectEvent,
        out: list[Alert],
        p: P,
        pp: P | None,
    ) -> None:
        rt = tr.per.get(r.id)
        if rt is None:
            rt = tr.per[r.id] = RuleTrack()
        x0, y0, x1, y1 = r.box
        now_in = x0 <= p[0] <= x1 and y0 <= p[1] <= y1 and contains(r.poly, p)
        was_in = rt.inside
        hits: list[float] = []
        moved = pp is not None and (now_in != was_in or (not now_in and r.edges))
        if moved and pp is not None and _overlaps(r.box, pp, p):
            hits = edge_hits(r.poly, pp, p)
        t0 = prev.pts if prev is not None else e.pts_s
        passed = pp is not None and not was_in and not now_in and len(hits) >= 2  # in and out between samples
        episode = f"{e.frame_id}:{e.phase}"
        if r.kind == "enter" and ((now_in and not was_in) or passed):
            self._fire(cam, r, e, "enter", track=tr, episode=episode, out=out)
        elif r.kind == "leave" and ((was_in and not now_in) or passed):
            self._fire(cam, r, e, "leave", track=tr, episode=episode, out=out)
        elif r.kind == "dwell":
            if was_in and not now_in:
                exit_t = t0 + (hits[0] if hits else 0.0) * (e.pts_s - t0)
                self._dwell_due(cam, r, tr, rt, e.track_id, exit_t, e, out)
                rt.since, rt.fired = None, False
            elif now_in and not was_in:
                entry = t0 + hits[-1] * (e.pts_s - t0) if hits else e.pts_s
                rt.since, rt.since_frame, rt.fired = round(entry, 3), e.frame_id, False
        if now_in != was_in:
            cam.inside[r.id] = cam.inside.get(r.id, 0) + (1 if now_in else -1)
        rt.inside = now_in

    def _dwell_due(
        self,
        cam: CameraState,
        r: Compiled,
        tr: Track,
        rt: RuleTrack,
        track_id: str,
        until: float,
        e: ObjectEvent,
        out: list[Alert],
    ) -> None:
        if rt.fired or rt.since is None or until - rt.since < r.need:
            return
        outcome = self._fire(
            cam,
            r,
            e,
            "dwell",
            track=tr,
            track_id=track_id,
            episode=str(rt.since_frame),
            seconds=round(until - rt.since, 3),
            timer=True,
            out=out,
        )
        rt.fired = outcome != "closed"  # outside the schedule: it may still fire when the window opens

    def _timers(
        self, cam: CameraState, rules: list[Compiled], e: ObjectEvent, out: list[Alert]
    ) -> list[Alert]:
        for r in self.timers_by_camera.get(e.camera_id, ()):
            n = cam.inside.get(r.id, 0)
            if r.kind == "dwell":
                if not n:
                    continue
                for key, tr in cam.tracks.items():
                    rt = tr.per.get(r.id)
                    if rt is not None and rt.inside and not rt.fired:
                        self._dwell_due(cam, r, tr, rt, key.split("\x1f", 1)[1], cam.clock, e, out)
            elif r.kind in ("count", "absent"):
                held = (n >= r.min_count) if r.kind == "count" else n == 0
                need = r.need
                rc = cam.rules.get(r.id)
                if rc is None:
                    rc = cam.rules[r.id] = RuleClock()
                if not held:
                    rc.since, rc.fired = None, False
                    continue
                if rc.since is None:
                    rc.since, rc.since_frame, rc.fired = cam.clock, cam.frame_id, False
                if not rc.fired and cam.clock - rc.since >= need:
                    outcome = self._fire(
                        cam,
                        r,
                        e,
                        r.kind,
                        episode=str(rc.since_frame),
                        count=n,
                        seconds=round(cam.clock - rc.since, 3),
                        timer=True,
                        out=out,
                    )
                    rc.fired = outcome != "closed"
        return out

    def _fire(
        self,
        cam: CameraState,
        r: Compiled,
        e: ObjectEvent,
        condition: Literal["enter", "leave", "dwell", "cross", "count", "absent"],
        *,
        episode: str,
        out: list[Alert],
        track: Track | None = None,
        track_id: str | None = None,
        direction: Literal["in", "out"] | None = None,
        seconds: float | None = None,
        count: int | None = None,
        timer: bool = False,
    ) -> Outcome:
        # Timers fire at the camera's clock; instant conditions at the event that revealed them.
        pts = cam.clock if timer else e.pts_s
        wall = cam.wall if timer and cam.wall else e.wall_ts
        spec = r.spec
        if spec.schedule is not None and not is_open(spec.schedule, wall):
            return "closed"
        rc = cam.rules.setdefault(r.id, RuleClock())
        if spec.cooldown_s > 0 and rc.last_alert is not None and abs(pts - rc.last_alert) < spec.cooldown_s:
            return "cooldown"
        rc.last_alert = pts
        if track is not None and track_id is None:
            track_id = e.track_id
        out.append(
            Alert(
                alert_id=stable_id(
                    "alert", spec.id, e.camera_id, cam.session, track_id or "-", condition, episode
                ),
                rule_id=spec.id,
                camera_id=e.camera_id,
                condition=condition,
                severity=spec.severity,
                track_id=track_id,
                query_id=track.query_id if track else spec.query,
                label=track.label if track else spec.label,
                zone_id=spec.when.zone,
                line_id=spec.when.line,
                direction=direction,
                count=count,
                seconds=seconds,
                source_session=cam.session,
                pts_s=round(pts, 3),
                wall_ts=wall,
                bbox_norm=track.bbox if track and timer else (e.bbox_norm if track else None),
                event_id=None if timer else e.event_id,
                snapshot=track.snapshot if track else None,
            )
        )
        return "fired"
