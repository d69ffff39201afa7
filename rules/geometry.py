"""Plane geometry in normalised frame coordinates, written out because it is a dozen lines.

(shapely would do it, but it is a compiled dependency for four functions, and the evaluator
calls these on every event: plain float arithmetic on tuples is faster than building geometry
objects per call.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

P = tuple[float, float]


def anchor_point(bbox_norm: tuple[float, float, float, float], anchor: str) -> P:
    """The object's position: the bottom centre of its box (feet on the ground) or its centre."""
    x1, y1, x2, y2 = bbox_norm
    if anchor == "center":
        return ((x1 + x2) / 2, (y1 + y2) / 2)
    return ((x1 + x2) / 2, y2)


def side(a: P, b: P, p: P) -> float:
    """> 0 on one side of the infinite line ab, < 0 on the other, 0 on it."""
    return (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])


def crossing(a: P, b: P, inside_sign: float, p: P, q: P) -> tuple[Literal["in", "out"], float] | None:
    """Did the path p→q pass through the segment ab? → ("in"|"out", fraction along p→q) or None.

    A point is "in" when it lies strictly on the `inside` side; a point on the line counts as
    out. A path that changes state crosses the infinite line at one point; it is a crossing of
    the *segment* only if that point lies between a and b. With this half-open convention a path
    that stops exactly on the line and goes on is counted once, not twice or never.
    """
    sp, sq = side(a, b, p) * inside_sign, side(a, b, q) * inside_sign
    in_p, in_q = sp > 0, sq > 0
    if in_p == in_q:
        return None
    t = sp / (sp - sq) if sp != sq else 0.0
    x = (p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]))
    dx, dy = b[0] - a[0], b[1] - a[1]
    u = ((x[0] - a[0]) * dx + (x[1] - a[1]) * dy) / (dx * dx + dy * dy)
    if u < 0.0 or u > 1.0:
        return None
    return ("in" if in_q else "out"), t


def ring(poly: Sequence[P]) -> tuple[tuple[float, float, float, float], ...]:
    """A polygon's edges as `contains` walks them, (xi, yi, xj, yj) with j the vertex before i:
    computed once per zone so the per-event test loops over plain tuples."""
    n = len(poly)
    return tuple((*poly[i], *poly[i - 1]) for i in range(n)) if n else ()


def contains(poly: Sequence[P], p: P) -> bool:
    """Point in polygon (even-odd ray casting); points on the boundary may go either way."""
    return contains_ring(ring(poly), p[0], p[1])


def contains_ring(edges: tuple[tuple[float, float, float, float], ...], x: float, y: float) -> bool:
    """`contains` over a polygon's precomputed `ring`."""
    inside = False
    for xi, yi, xj, yj in edges:
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
    return inside


def edge_hits(poly: Sequence[P], p: P, q: P) -> list[float]:
    """Fractions along p→q where the path meets the polygon's boundary, in order."""
    hits = []
    dx, dy = q[0] - p[0], q[1] - p[1]
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        ex, ey = b[0] - a[0], b[1] - a[1]
        den = dx * ey - dy * ex
        if den == 0:
            continue  # parallel: touching along an edge is not a pass through it
        t = ((a[0] - p[0]) * ey - (a[1] - p[1]) * ex) / den
        u = ((a[0] - p[0]) * dy - (a[1] - p[1]) * dx) / den
        if 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0:
            hits.append(t)
    return sorted(hits)
