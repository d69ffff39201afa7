"""Budgets: what a camera and a query may spend on the model, and how the analyzer degrades.

A budget caps tokens per hour, calls per minute and money per day (engine list prices, so Z.AI's
by default). Periods are fixed wall-clock windows (the hour, the minute, the UTC day): usage is
counted per window and the next window starts from zero — that is the resume. Before each call
the governor compares what has been spent in the running windows, plus what the call is expected
to cost (exact visual tokens, `glm45v_engine.accounting`), with the budget, and picks a level of
the documented degrade order:

    0 normal
    1 longer interval      (the query's interval ×4)
    2 smaller images       (frames sent at half size: about a quarter of the visual tokens)
    3 regions only         (only crops of what moved, whatever `regions` says; no call when
                            nothing moved or no motion was measured)
    4 paused               (no call until the period rolls over)

The level follows the share of the tightest budget already used: from 50 % level 1, from 75 %
level 2, from 90 % level 3, and level 4 when the call itself would exceed it. Priorities decide
who degrades first: under a camera budget, each step down the camera's priority order adds 10 %
to a query's share, so the lower-priority query reaches each level earlier.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bus.contracts import QuerySpec, StatusUpdate
from configs.settings import Budget

LEVELS = ("normal", "longer_interval", "smaller_images", "regions_only", "paused")
THRESHOLDS = (0.5, 0.75, 0.9)  # share used at which levels 1, 2 and 3 begin
PAUSED = len(LEVELS) - 1
REGIONS_ONLY = LEVELS.index("regions_only")
PRIORITY_STEP = 0.10
INTERVAL_FACTOR = 4.0
IMAGE_FACTOR = 0.5
PERIOD_S = {"tokens": 3600, "calls": 60, "money": 86400}


@dataclass
class Usage:
    """Spend in the current window of each period; a new window starts from zero."""

    windows: dict[str, int] = field(default_factory=dict)  # kind -> window index
    spent: dict[str, float] = field(default_factory=dict)  # kind -> amount in that window

    def amount(self, kind: str, now: float) -> float:
        window = int(now // PERIOD_S[kind])
        if self.windows.get(kind) != window:
            self.windows[kind], self.spent[kind] = window, 0.0
        return self.spent[kind]

    def add(self, kind: str, now: float, amount: float) -> None:
        self.amount(kind, now)
        self.spent[kind] += amount


@dataclass(frozen=True)
class Decision:
    level: int
    share: float  # of the tightest budget, after priority
    limit: str = ""  # which budget ("camera tokens_per_hour", …), empty when none applies

    @property
    def name(self) -> str:
        return LEVELS[self.level]

    @property
    def paused(self) -> bool:
        return self.level >= PAUSED

    @property
    def interval_factor(self) -> float:
        return INTERVAL_FACTOR if self.level >= 1 else 1.0

    @property
    def image_factor(self) -> float:
        return IMAGE_FACTOR if self.level >= 2 else 1.0

    @property
    def regions_only(self) -> bool:
        return self.level >= REGIONS_ONLY


NORMAL = Decision(0, 0.0)


class Governor:
    """Per camera and per (camera, query) spend against their budgets; `clock` is injectable."""

    def __init__(
        self, default_camera: Budget | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.default_camera = default_camera
        self.clock = clock
        self.cameras: dict[str, Usage] = {}
        self.queries: dict[tuple[str, str], Usage] = {}
        self.levels: dict[tuple[str, str], Decision] = {}  # last decision per (camera, query)

    def decide(
        self,
        camera_id: str,
        query: QuerySpec,
        *,
        camera_budget: Budget | None,
        peers: list[QuerySpec],
        tokens: int,
        cost: float,
    ) -> Decision:
        """The level for one call expected to cost `tokens` and `cost`; `peers` are the camera's queries."""
        now = self.clock()
        worst = NORMAL
        cam_budget = camera_budget or self.default_camera
        candidates = []
        if cam_budget is not None:
            rank = sorted({-q.priority for q in peers}).index(-query.priority) if peers else 0
            usage = self.cameras.setdefault(camera_id, Usage())
            candidates.append(("camera", cam_budget, usage, rank * PRIORITY_STEP))
        if query.budget is not None:
            usage = self.queries.setdefault((camera_id, query.id), Usage())
            candidates.append(("query", query.budget, usage, 0.0))
        for scope, budget, usage, handicap in candidates:
            for kind, cap, need in (
                ("tokens", budget.tokens_per_hour, float(tokens)),
                ("calls", budget.calls_per_minute, 1.0),
                ("money", budget.money_per_day, cost),
            ):
                if cap is None:
                    continue
                spent = usage.amount(kind, now)
                share = spent / cap + handicap if cap > 0 else float("inf")
                # paused when this call itself would pass the cap, else by the share used so far
                level = PAUSED if spent + need > cap else sum(1 for t in THRESHOLDS if share >= t)
                d = Decision(level, share, f"{scope} {_NAMES[kind]}")
                if (d.level, d.share) > (worst.level, worst.share):
                    worst = d
        self.levels[(camera_id, query.id)] = worst
        return worst

    def record(self, camera_id: str, query_id: str, tokens: int, cost: float) -> None:
        """What a call did cost (the engine's reported usage)."""
        now = self.clock()
        for usage in (self.cameras.get(camera_id), self.queries.get((camera_id, query_id))):
            if usage is not None:
                usage.add("tokens", now, tokens)
                usage.add("calls", now, 1)
                usage.add("money", now, cost)

    def camera_state(self, camera_id: str) -> Decision:
        """The worst level any of the camera's queries is at (the camera's `budget` state)."""
        mine = [d for (cam, _), d in self.levels.items() if cam == camera_id]
        return max(mine, key=lambda d: (d.level, d.share), default=NORMAL)

    def forget_query(self, query_id: str) -> None:
        for key in [k for k in self.levels if k[1] == query_id]:
            del self.levels[key]


_NAMES = {"tokens": "tokens_per_hour", "calls": "calls_per_minute", "money": "money_per_day"}


def budget_statuses(governor: Governor, reported: set[str], worker: str) -> list[StatusUpdate]:
    """Each camera's budget state for the status topic: `budget` while any of its queries is
    degraded (naming the tightest budget, its share and the level), `running` once when it
    recovers. `reported` (cameras last sent as `budget`) is updated."""
    out = []
    for cam in sorted({cam for cam, _ in governor.levels} | reported):
        d = governor.camera_state(cam)
        if d.level == 0 and cam not in reported:
            continue
        out.append(
            StatusUpdate(
                component="budget",
                id=cam,
                worker=worker,
                state="budget" if d.level else "running",
                reason=f"{d.limit} at {d.share:.0%}: {d.name}" if d.level else "within budget",
                counters={"level": float(d.level), "share": round(d.share, 4)},
            )
        )
        (reported.add if d.level else reported.discard)(cam)
    return out
