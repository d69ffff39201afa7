"""The `sightline replay` verb around `run_replay`: arguments, output file, closing table, scores, gates.

Its arguments are declared without importing the replay itself (PyAV, the analyzer), so every
`sightline` invocation can build the whole parser cheaply.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from configs.settings import Settings

if TYPE_CHECKING:
    from sightline.eval.scoring import Scores
    from sightline.eval.truth import GroundTruth
    from sightline.replay.run import ReplayResult


def add_args(rp: argparse.ArgumentParser) -> None:
    rp.add_argument("video")
    rp.add_argument("--query", action="append", default=[], help="grounding query (repeatable)")
    rp.add_argument("--summary", action="append", default=[], help="summary prompt (repeatable)")
    rp.add_argument("--sample-fps", type=float)
    rp.add_argument("--window-s", type=float, default=10.0, help="summary window length")
    rp.add_argument("--out", help="write ObjectEvent and Summary records as JSONL")
    rp.add_argument(
        "--rules", help="a rules file (zones, lines, rules): alerts are written next to the events in --out"
    )
    rp.add_argument("--camera", default="replay", help="camera id the events carry (what rules' zones name)")
    rp.add_argument("--truth", help="ground truth (Sightline JSON or MOT gt.txt)")
    rp.add_argument("--min-recall", type=float)
    rp.add_argument("--min-precision", type=float)
    rp.add_argument("--min-idf1", type=float, help="identity: how long each person kept one track id")
    rp.add_argument(
        "--label-alias",
        action="append",
        default=[],
        metavar="FROM=TO",
        help="score predicted label FROM as TO, e.g. 'red coat=person' (repeatable; after normalisation)",
    )
    rp.add_argument(
        "--ignore-labels",
        action="store_true",
        help="match boxes whatever their labels (free-text answers to a one-class query)",
    )
    rp.add_argument("--no-progress", action="store_true")
    rp.add_argument(
        "--keep-latency", action="store_true", help="keep measured latencies in the JSONL (not reproducible)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    """The verb: prints the closing table, writes JSONL, scores and gates on thresholds."""
    from glm45v_engine import EngineError
    from sightline.eval.truth import TruthError, load_truth
    from sightline.replay.run import ReplayIncomplete, make_queries, run_replay

    video = Path(args.video)
    if not video.is_file():
        print(f"replay: no such video file: {video}", file=sys.stderr)
        return 2
    try:
        queries = make_queries(args.query, args.summary, args.window_s)
    except ValueError as exc:
        print(f"replay: {exc}", file=sys.stderr)
        return 2
    if not queries:
        print("replay: give at least one --query TEXT or --summary TEXT", file=sys.stderr)
        return 2
    if args.rules:  # a bad rules file is said before the replay, not after it
        from pydantic import ValidationError

        from rules.book import RuleBook

        try:
            RuleBook.from_file(args.rules)
        except (OSError, ValueError, ValidationError) as exc:
            print(f"replay: rules file {args.rules}: {exc}", file=sys.stderr)
            return 2
    if args.sample_fps:
        settings = settings.model_copy(
            update={"ingest": settings.ingest.model_copy(update={"sample_fps": args.sample_fps})}
        )
    truth = None
    if args.truth:
        try:
            aliases(args.label_alias)
            truth = load_truth(args.truth, fps=_fps(video), video=video)
        except (TruthError, ValueError) as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
    try:
        if args.bootstrap:
            from sightline.replay.broker import run_replay_broker

            result = run_replay_broker(
                video,
                settings,
                queries,
                bootstrap=args.bootstrap,
                camera_id=args.camera,
                progress=not args.no_progress,
            )
        else:
            result = run_replay(
                video,
                settings,
                queries,
                camera_id=args.camera,
                progress=not args.no_progress and sys.stderr.isatty(),
            )
    except EngineError as exc:
        print(f"replay: engine error: {exc}", file=sys.stderr)
        return 1
    except ReplayIncomplete as exc:
        print(f"replay: incomplete, not scored: {exc}", file=sys.stderr)
        return 1
    if args.out and args.rules:
        from sightline.replay.alerts import jsonl, with_alerts

        records = with_alerts(result.records, args.rules)
        Path(args.out).write_text(jsonl(records, keep_latency=args.keep_latency))
        print(f"alerts: {sum(1 for r in records if r.schema_id == 'sightline.alert/1')}")
    elif args.out:
        Path(args.out).write_text(result.jsonl(keep_latency=args.keep_latency))
    print(result.table())
    if result.camera_state == "failed":
        print(f"replay: the video could not be read: {result.camera_reason}", file=sys.stderr)
        return 1
    if truth is None:
        return 0
    return _score_and_gate(result, truth, args)


def _score_and_gate(result: ReplayResult, truth: GroundTruth, args: argparse.Namespace) -> int:
    from sightline.eval.scoring import score_boxes, score_events

    grounding = sorted({e.query_id for e in result.events} | {b[3] for b in result.boxes})
    if len(grounding) != 1:
        print(
            f"replay: scoring needs exactly one grounding query with answers, got {grounding}",
            file=sys.stderr,
        )
        return 2
    match_labels, alias = not args.ignore_labels, aliases(args.label_alias)
    ev: Scores = score_events(result.events, truth, match_labels=match_labels, aliases=alias)
    boxes: Scores = score_boxes(
        [(t, bbox, label) for t, bbox, label, _ in result.boxes],
        truth,
        sampled=result.frame_times,
        match_labels=match_labels,
        aliases=alias,
    )
    print("\nevents against the ground truth (what subscribers receive):")
    print(ev.table())
    print("\nper-frame boxes against the ground truth (the engine alone):")
    print(boxes.table())
    try:
        failed, met = check_gates(
            ev, {"recall": args.min_recall, "precision": args.min_precision, "idf1": args.min_idf1}
        )
    except ValueError as exc:
        print(f"\nreplay: {exc}", file=sys.stderr)
        return 2
    if failed:
        print("\nFAILED: " + "; ".join(failed))
        return 1
    if met:
        print("\nPASSED: " + "; ".join(met))
    return 0


def aliases(pairs: list[str]) -> dict[str, str]:
    """`--label-alias FROM=TO` values as a mapping; ValueError names a malformed one."""
    out = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise ValueError(f"--label-alias {pair!r}: expected FROM=TO")
        out[src.strip()] = dst.strip()
    return out


def check_gates(scores: Scores, minimums: dict[str, float | None]) -> tuple[list[str], list[str]]:
    """(failed, met) descriptions for each metric with a minimum.

    A truth that judges nothing cannot pass a gate: with no annotated instant every metric is
    vacuous, and with nothing to find recall (and identity) is 1 by convention, not by merit.
    """
    wanted = {k: v for k, v in minimums.items() if v is not None}
    if not wanted:
        return [], []
    if scores.times == 0:
        raise ValueError("the ground truth has no annotated instant to judge: refusing to gate on it")
    if scores.tp + scores.fn == 0 and any(k != "precision" for k in wanted):
        raise ValueError("the ground truth has nothing to find: recall is undefined, refusing to gate on it")
    if "idf1" in wanted and scores.idf1 is None:
        raise ValueError("IDF1 needs track ids: these predictions are raw boxes")
    failed: list[str] = []
    met: list[str] = []
    for name, minimum in wanted.items():
        value = float(getattr(scores, name))
        (failed if value < minimum else met).append(
            f"{name} {value:.3f} {'<' if value < minimum else '>='} {minimum}"
        )
    return failed, met


def _fps(video: Path) -> float | None:
    import av

    try:
        with av.open(str(video)) as c:
            rate = c.streams.video[0].average_rate
            return float(rate) if rate else None
    except (av.FFmpegError, IndexError):
        return None
