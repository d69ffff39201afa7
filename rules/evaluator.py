"""Rules over tracked objects → alerts. One evaluator for live (`rules.service`), dry run and replay.

Feed it one camera's `ObjectEvent`s in order; it returns the `Alert`s they raise. Everything it
remembers per camera is plain data (`CameraState`), so the service can checkpoint it and a
restarted process continues where the last one stopped, raising the same alert ids.

Built for VLM sampling rates (0.5–2 fps): an object may move far between two events, so a line
crossing is found from the *path* between consecutive positions of a track (segment
intersection), and a zone entry/exit time is interpolated where that path meets the zone's edge.
Durations (dwell, count, absent, cooldown) are media time (`pts_s`); schedules are wall time.
A camera's clock is the latest `pts_s` it has seen, so timers advance with any of its events.

The per-event path is written for `sightline bench rules` (docs/design.md, "Speed"): rules are
compiled to plain floats once, looked up by (camera, query, label) once, each zone or line is
tested once per event however many rules use it, and a dwell rule only looks at its tracks when
one of them can be due. None of it changes what fires or the ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from bus.contracts import Alert, ObjectEvent, stable_id
from bus.rulespec import Condition, LineSpec, RuleSpec, Schedule, ZoneSpec, reference_problems
from rules.geometry import P, contains_ring, crossing, edge_hits, ring, side
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
    # dwell rule → no inside track can be due before this media time (derived, not saved; a
    # missing entry means "unknown": the next event looks at every track)
    due: dict[str, float] = field(default_factory=dict)

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
    """A rule ready to evaluate: what the hot path needs, looked up once (plain floats and flags,
    no pydantic attribute or property in the per-event loop)."""

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
    # Precomputed for the hot path.
    slot: int = 0  # index of this rule's (zone or line, anchor) among its camera's: computed once per event
    center: bool = False  # anchor == "center"
    ring: tuple[tuple[float, float, float, float], ...] = ()  # the polygon's edges, see `geometry.ring`
    ax: float = 0.0  # line: first point and b - a
    ay: float = 0.0
    dx: float = 0.0
    dy: float = 0.0
    zone_id: str | None = None
    line_id: str | None = None
    schedule: Schedule | None = None
    cooldown_s: float = 0.0
    severity: Literal["info", "warning", "critical"] = "warning"

    def __post_init__(self) -> None:
        w = self.spec.when
        self.id, self.anchor, self.query, self.label = (
            self.spec.id,
            self.spec.anchor,
            self.spec.query,
            self.spec.label,
        )
        self.center = self.anchor == "center"
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
            self.ring = ring(self.poly)
        if self.line is not None:
            (self.ax, self.ay), (bx, by) = self.line
            self.dx, self.dy = bx - self.ax, by - self.ay
        self.timer = self.kind in ("dwell", "count", "absent")
        self.edges = self.kind in ("enter", "leave")
        self.zone_id, self.line_id = w.zone, w.line
        self.schedule, self.cooldown_s, self.severity = (
            self.spec.schedule,
            self.spec.cooldown_s,
            self.spec.severity,
        )


@dataclass(slots=True)
class CameraRules:
    """One camera's rules, sorted by id, and which of them watch a (query, label)."""

    rules: list[Compiled]
    timers: list[Compiled]
    slots: int  # distinct (zone or line, anchor) pairs among `rules`
    plans: dict[tuple[str, str], tuple[Compiled, ...]] = field(default_factory=dict)

    def plan(self, query_id: str, label: str) -> tuple[Compiled, ...]:
        """The rules that watch tracks of this query and label, in id order (looked up once)."""
        found = self.plans.get((query_id, label))
        if found is None:
            if len(self.plans) >= 4096:  # labels are open-ended: keep the cache bounded
                self.plans.clear()
            found = self.plans[(query_id, label)] = tuple(
                r
                for r in self.rules
                if (r.query is None or r.query == query_id) and (r.label is None or r.label == label)
            )
        return found


Outcome = Literal["fired", "cooldown", "closed"]

# `CameraState.due` is a lower bound, kept this far below `since + need` so that float rounding
# can never make it later than the moment `clock - since >= need` first holds (the exact test
# still decides; the bound only spares looking at tracks that cannot be due).
_DUE_MARGIN = 1e-3


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
        self.by_camera: dict[str, CameraRules] = {}
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
        zone_list, line_list = list(zones), list(lines)
        self.disabled = {}
        compiled: dict[str, list[Compiled]] = {}
        for r in rules:
            problems = reference_problems(zone_list, line_list, [r])
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
            compiled.setdefault(c.camera, []).append(c)
        for state in self.cameras.values():
            state.due.clear()  # bounds of the previous rules' dwell times
        self.by_camera = {}
        for cam, rs in compiled.items():
            rs.sort(key=lambda c: c.id)
            slots: dict[tuple[str, str | None, bool], int] = {}
            for c in rs:
                geo = ("line", c.line_id, c.center) if c.line is not None else ("zone", c.zone_id, c.center)
                c.slot = slots.setdefault(geo, len(slots))
            self.by_camera[cam] = CameraRules(rs, [r for r in rs if r.timer], len(slots))

    # -- checkpoints --------------------------------------------------------------------------

    def state_of(self, camera_id: str) -> dict[str, Any]:
        cam = self.cameras.get(camera_id)
        return cam.to_dict() if cam else CameraState().to_dict()

    def restore(self, camera_id: str, state: dict[str, Any]) -> None:
        self.cameras[camera_id] = CameraState.from_dict(state)

    # -- evaluation ---------------------------------------------------------------------------

    def feed(self, e: ObjectEvent) -> list[Alert]:
        camera_id, phase = e.camera_id, e.phase
        cam = self.cameras.get(camera_id)
        if cam is None or e.source_session != cam.session:
            if phase == "end" and cam is not None:
                return []  # the end of a track from a session we no longer follow
            cam = self.cameras[camera_id] = CameraState(session=e.source_session)
        pts = e.pts_s
        if pts > cam.clock:
            cam.clock, cam.wall, cam.frame_id = pts, e.wall_ts, e.frame_id
        cr = self.by_camera.get(camera_id)
        if cr is None:
            return []
        out: list[Alert] = []
        q, label, b = e.query_id, e.label, e.bbox_norm
        key = f"{q}\x1f{e.track_id}"
        tr = cam.tracks.get(key)
        prev: Track | None = tr
        if tr is None:
            if phase == "end":
                return self._timers(cam, cr, e, out)
            tr = cam.tracks[key] = Track(q, label, b, pts, e.snapshot)
        plan = cr.plans.get((q, label)) or cr.plan(q, label)
        if plan:
            self._rules(cam, cr, plan, tr, prev, b, e, out)
        tr.bbox, tr.pts = b, pts
        if e.snapshot:
            tr.snapshot = e.snapshot
        if phase == "end":
            for r in cr.rules:  # a track's end closes its dwell: it counts up to when it was last seen
                rt = tr.per.get(r.id)
                if r.kind == "dwell" and rt is not None and rt.inside:
                    self._dwell_due(cam, r, tr, rt, e.track_id, pts, e, out)
            for rid, rt in tr.per.items():
                if rt.inside:
                    cam.inside[rid] -= 1
            del cam.tracks[key]
        return self._timers(cam, cr, e, out)

    def _rules(
        self,
        cam: CameraState,
        cr: CameraRules,
        plan: tuple[Compiled, ...],
        tr: Track,
        prev: Track | None,
        b: BBox,
        e: ObjectEvent,
        out: list[Alert],
    ) -> None:
        """One track's event against the rules that watch it, in rule id order.

        Each (zone or line, anchor) is tested once per event, not once per rule, and the common
        cases (still outside, still inside, no change of side) end without a call."""
        x1, y1, x2, y2 = b
        bx, by = (x1 + x2) / 2, y2  # the anchors, as `geometry.anchor_point` computes them
        cy = (y1 + y2) / 2
        if prev is not None:
            x1, y1, x2, y2 = prev.bbox
            obx, oby = (x1 + x2) / 2, y2
            ocy = (y1 + y2) / 2
        else:
            obx = oby = ocy = 0.0
        geo: list[Any] = [None] * cr.slots  # per slot: inside (zone), crossing or False (line)
        per = tr.per
        for r in plan:
            if r.center:
                y, oy = cy, ocy
            else:
                y, oy = by, oby
            if r.line is not None:  # a crossing needs a path: two positions of this track
                if prev is None:
                    continue
                hit = geo[r.slot]
                if hit is None:
                    ax, ay, dx, dy = r.ax, r.ay, r.dx, r.dy
                    # `geometry.side` of both ends, the same arithmetic; no change of side, no crossing
                    sp = (dx * (oy - ay) - dy * (obx - ax)) * r.inside_sign
                    sq = (dx * (y - ay) - dy * (bx - ax)) * r.inside_sign
                    if (sp > 0) == (sq > 0):
                        hit = False
                    else:
                        hit = crossing(r.line[0], r.line[1], r.inside_sign, (obx, oy), (bx, y)) or False
                    geo[r.slot] = hit
                if hit and r.direction in ("any", hit[0]):
                    episode = f"{e.frame_id}:{e.phase}"
                    self._fire(cam, r, e, "cross", track=tr, episode=episode, direction=hit[0], out=out)
                continue
            now_in = geo[r.slot]
            if now_in is None:
                x0, y0, x1, y1 = r.box
                now_in = geo[r.slot] = x0 <= bx <= x1 and y0 <= y <= y1 and contains_ring(r.ring, bx, y)
            rt = per.get(r.id)
            if rt is not None and now_in == rt.inside:  # the common case, cheaply
                if now_in or not r.edges:
                    continue  # still inside, or still outside of a zone that only times
                # enter/leave, still outside: a pass through between samples needs a path that
                # reaches the zone's bounding box (`_overlaps`, written out)
                if prev is None:
                    continue
                x0, y0, x1, y1 = r.box
                if (
                    (bx < x0 and obx < x0)
                    or (bx > x1 and obx > x1)
                    or (y < y0 and oy < y0)
                    or (y > y1 and oy > y1)
                ):
                    continue
            self._step(cam, r, tr, prev, e, out, now_in, (bx, y), None if prev is None else (obx, oy))

    def _step(
        self,
        cam: CameraState,
        r: Compiled,
        tr: Track,
        prev: Track | None,
        e: ObjectEvent,
        out: list[Alert],
        now_in: bool,
        p: P,
        pp: P | None,
    ) -> None:
        rt = tr.per.get(r.id)
        if rt is None:
            rt = tr.per[r.id] = RuleTrack()
        was_in = rt.inside
        hits: list[float] = []
        moved = pp is not None and (now_in != was_in or (not now_in and r.edges))
        if moved and pp is not None and _overlaps(r.box, pp, p):
            hits = edge_hits(r.poly, pp, p)
        t0 = prev.pts if prev is not None else e.pts_s
        passed = pp is not None and not was_in and not now_in and len(hits) >= 2  # in and out between samples
        if r.kind == "enter" and ((now_in and not was_in) or passed):
            self._fire(cam, r, e, "enter", track=tr, episode=f"{e.frame_id}:{e.phase}", out=out)
        elif r.kind == "leave" and ((was_in and not now_in) or passed):
            self._fire(cam, r, e, "leave", track=tr, episode=f"{e.frame_id}:{e.phase}", out=out)
        elif r.kind == "dwell":
            if was_in and not now_in:
                exit_t = t0 + (hits[0] if hits else 0.0) * (e.pts_s - t0)
                self._dwell_due(cam, r, tr, rt, e.track_id, exit_t, e, out)
                rt.since, rt.fired = None, False
            elif now_in and not was_in:
                entry = t0 + hits[-1] * (e.pts_s - t0) if hits else e.pts_s
                rt.since, rt.since_frame, rt.fired = round(entry, 3), e.frame_id, False
                due = cam.due.get(r.id)
                if due is not None:
                    cam.due[r.id] = min(due, rt.since + r.need - _DUE_MARGIN)
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

    def _timers(self, cam: CameraState, cr: CameraRules, e: ObjectEvent, out: list[Alert]) -> list[Alert]:
        clock, inside = cam.clock, cam.inside
        for r in cr.timers:
            rid = r.id
            n = inside.get(rid, 0)
            if r.kind == "dwell":
                if not n or clock < cam.due.get(rid, -math.inf):
                    continue  # nobody inside, or nobody due yet
                need, soonest = r.need, math.inf
                for key, tr in cam.tracks.items():
                    rt = tr.per.get(rid)
                    if rt is None or not rt.inside or rt.fired or rt.since is None:
                        continue
                    if clock - rt.since < need:  # `_dwell_due`'s test, written out
                        soonest = min(soonest, rt.since + need - _DUE_MARGIN)
                        continue
                    self._dwell_due(cam, r, tr, rt, key.split("\x1f", 1)[1], clock, e, out)
                    if not rt.fired:  # outside its schedule: try again with the next event
                        soonest = -math.inf
                cam.due[rid] = soonest
                continue
            # count or absent
            held = (n >= r.min_count) if r.kind == "count" else n == 0
            rc = cam.rules.get(rid)
            if rc is None:
                rc = cam.rules[rid] = RuleClock()
            if not held:
                rc.since, rc.fired = None, False
                continue
            if rc.since is None:
                rc.since, rc.since_frame, rc.fired = clock, cam.frame_id, False
            if not rc.fired and clock - rc.since >= r.need:
                outcome = self._fire(
                    cam,
                    r,
                    e,
                    r.kind,
                    episode=str(rc.since_frame),
                    count=n,
                    seconds=round(clock - rc.since, 3),
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
        if r.schedule is not None and not is_open(r.schedule, wall):
            return "closed"
        rc = cam.rules.get(r.id)
        if rc is None:
            rc = cam.rules[r.id] = RuleClock()
        if r.cooldown_s > 0 and rc.last_alert is not None and abs(pts - rc.last_alert) < r.cooldown_s:
            return "cooldown"
        rc.last_alert = pts
        if track is not None and track_id is None:
            track_id = e.track_id
        out.append(
            Alert(
                alert_id=stable_id(
                    "alert", r.id, e.camera_id, cam.session, track_id or "-", condition, episode
                ),
                rule_id=r.id,
                camera_id=e.camera_id,
                condition=condition,
                severity=r.severity,
                track_id=track_id,
                query_id=track.query_id if track else r.query,
                label=track.label if track else r.label,
                zone_id=r.zone_id,
                line_id=r.line_id,
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
