"""Snapshots as claim-checks: JPEGs with boxes drawn, on disk under data_dir; events carry the path."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from bus.contracts import BBox

log = logging.getLogger(__name__)


class SnapshotWriter:
    def __init__(self, data_dir: str | Path, quality: int = 80) -> None:
        self.root = Path(data_dir) / "snapshots"
        self.quality = quality
        self.errors = 0

    def write(
        self, rel: str, jpeg: bytes, boxes: list[tuple[BBox, str]], scale: tuple[float, float]
    ) -> str | None:
        """Draw boxes (given in original pixels; `scale` maps them to the JPEG) and store; returns `rel`."""
        try:
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                return None
            sx, sy = scale
            for (x1, y1, x2, y2), label in boxes:
                p1, p2 = (round(x1 * sx), round(y1 * sy)), (round(x2 * sx), round(y2 * sy))
                cv2.rectangle(img, p1, p2, (0, 220, 255), 2)
                cv2.putText(
                    img,
                    label[:40],
                    (p1[0], max(p1[1] - 4, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    0.45,
                    (0, 220, 255),
                    1,
                    cv2.LINE_AA,
                )
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:
                return None
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(buf.tobytes())
            tmp.replace(path)  # readers never see half a file
            return f"snapshots/{rel}"
        except OSError:
            self.errors += 1
            log.warning("snapshot %s not written", rel, exc_info=True)
            return None
