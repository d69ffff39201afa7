"""Measure an engine on an annotated video with the raw per-frame box path.

    python -m sightline.eval.vtest [--truth tests/data/vtest_people_0-20s.json] [--video PATH]
                                  [--query people] [--iou 0.5 --iou 0.3] [--min-width W] [--trim DX DY]

Decodes the frames at the truth's annotated instants, asks the CPU baseline engine for boxes
on each (no tracking, no events), and scores them with `score_boxes`. This is the number
docs/evaluation.md reports; `sightline replay --truth` measures the whole pipeline instead.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import av

from configs.engine import BaselineEngineConfig
from glm45v_engine.baseline import BaselineEngine
from glm45v_engine.types import Frame, Image
from sightline.eval.match import Prediction
from sightline.eval.scoring import Scores, score_boxes
from sightline.eval.truth import TIME_EPS, GroundTruth, load_truth

DEFAULT_TRUTH = Path(__file__).resolve().parents[2] / "tests" / "data" / "vtest_people_0-20s.json"


def frames_at(video: str | Path, times: Sequence[float]) -> list[Frame]:
    """Decode the frames whose media time equals one of `times` (within half a frame)."""
    wanted = sorted(times)
    out: list[Frame] = []
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        half = 0.5 / float(stream.average_rate or 25)
        for n, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else n * 2 * half
            if any(abs(t - w) <= half + TIME_EPS for w in wanted):
                image = cast(Image, frame.to_ndarray(format="bgr24"))  # bgr24 is always uint8
                out.append(Frame(image=image, frame_id=n, pts_s=t))
            if t > wanted[-1] + half:
                break
    if len(out) != len(wanted):
        raise ValueError(f"{video}: found {len(out)} of the {len(wanted)} annotated instants")
    return out


async def baseline_predictions(
    frames: Sequence[Frame], query: str, config: BaselineEngineConfig | None = None
) -> list[Prediction]:
    engine = BaselineEngine(config)
    groundings = await engine.ground(frames, query)
    return [
        Prediction(t=f.pts_s or 0.0, bbox=b.bbox, label=b.label or "", score=b.score)
        for f, g in zip(frames, groundings, strict=True)
        for b in g.boxes
    ]


def trim(p: Prediction, dx: float, dy: float) -> Prediction:
    """Shrink a box by fractions of its width/height on each side (diagnostic: HOG windows are padded)."""
    x1, y1, x2, y2 = p.bbox
    w, h = x2 - x1, y2 - y1
    return p.model_copy(update={"bbox": (x1 + dx * w, y1 + dy * h, x2 - dx * w, y2 - dy * h)})


def measure(
    truth: GroundTruth,
    video: str | Path,
    query: str,
    ious: Sequence[float],
    *,
    config: BaselineEngineConfig | None = None,
    trim_xy: tuple[float, float] | None = None,
) -> list[Scores]:
    frames = frames_at(video, truth.annotated_times())
    preds = asyncio.run(baseline_predictions(frames, query, config))
    if trim_xy:
        preds = [trim(p, *trim_xy) for p in preds]
    return [score_boxes(preds, truth, iou=v) for v in ious]


def main(argv: Sequence[str] | None = None) -> int:
    from sightline.samples import vtest_path

    ap = argparse.ArgumentParser(prog="python -m sightline.eval.vtest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--truth", default=str(DEFAULT_TRUTH))
    ap.add_argument("--video", default=None, help="default: the installed vtest.avi")
    ap.add_argument("--query", default="people")
    ap.add_argument("--iou", type=float, action="append", help="repeatable; default 0.5")
    ap.add_argument("--min-width", type=int, default=None, help="baseline: upscale frames narrower than this")
    ap.add_argument(
        "--trim", type=float, nargs=2, metavar=("DX", "DY"), default=None,
        help="diagnostic: shrink each predicted box by these fractions of its width/height per side",
    )  # fmt: skip
    args = ap.parse_args(argv)
    video = args.video or vtest_path()
    if video is None:
        ap.error("vtest.avi not found; install opencv-doc or pass --video")
    truth = load_truth(args.truth)
    config = BaselineEngineConfig(min_width=args.min_width) if args.min_width else None
    trim_xy = (args.trim[0], args.trim[1]) if args.trim else None
    for scores in measure(truth, video, args.query, args.iou or [0.5], config=config, trim_xy=trim_xy):
        print(scores.table(), end="\n\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
