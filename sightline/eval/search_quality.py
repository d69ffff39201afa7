"""Search quality on a labelled set built from generated clips and the scripted engine.

Each clip is one camera with six figures, one per colour of `PALETTE`, each drawn as one of
`LABELS` (a different colour→label assignment per clip, seeded). The clips are replayed through
the real analyzer with a `describe: true` query against the scripted colour server, which boxes
the figures from their pixels and describes each as its scenario colour and label ("a person in
red", "a red car"); the sink's indexing path stores them. Truth is the clip design: a track is
relevant to a query when its figure has the query's colour and label. Queries are paraphrases
("someone wearing red", "a red vehicle", "red luggage"), so words alone do not always match.

Reported per mode (words only, meaning only, hybrid): recall@10 (relevant tracks in the top 10
over all relevant tracks) and MRR (1 / rank of the first relevant track), averaged over queries.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus.contracts import CameraSpec, QuerySpec
from configs.settings import Settings, load_settings
from sightline.samples import Figure, generate_clip

PALETTE: dict[str, tuple[int, int, int]] = {  # BGR, far apart and from the figures' head colour
    "red": (30, 30, 220),
    "blue": (220, 60, 30),
    "green": (40, 180, 40),
    "yellow": (30, 220, 230),
    "purple": (160, 40, 130),
    "orange": (0, 140, 255),
}
LABELS = ("person", "car", "dog", "bag", "bicycle", "umbrella")
PHRASES: dict[str, str] = {  # how people ask: not the stored words
    "person": "someone wearing {c}",
    "car": "a {c} vehicle",
    "dog": "a {c} animal",
    "bag": "{c} luggage",
    "bicycle": "a {c} bike",
    "umbrella": "somebody with a {c} umbrella",
}
CAMERAS = ("Front door", "Back gate", "Garage", "Lobby", "Parking lot", "Garden")
CLIPS = 34  # 34 clips x 6 figures = 204 tracks
QUERY = QuerySpec(id="things", text="people and objects", describe=True)
MODES: dict[str, tuple[Any, ...]] = {
    "words": ("words",),
    "meaning": ("meaning",),
    "hybrid": ("words", "meaning"),
}
TARGETS = {"recall@10": 0.9, "mrr": 0.7}


@dataclass(frozen=True)
class Labelled:
    camera_id: str
    colour: str
    label: str


def clip_design(i: int) -> tuple[dict[str, str], list[Figure]]:
    """Colour → label for clip i, and its figures: six rows crossing the frame at staggered times."""
    rng = random.Random(1000 + i)
    labels = list(LABELS)
    rng.shuffle(labels)
    mapping = dict(zip(PALETTE, labels, strict=True))
    figures = []
    for row, bgr in enumerate(PALETTE.values()):
        y = 0.1 + row * 0.155
        t0 = 0.3 + 0.3 * row
        figures.append(Figure(bgr, t0, t0 + 5.0, (0.1, y), (0.9, y), size=(0.06, 0.1)))
    return mapping, figures


def build(
    workdir: Path, glm_url: str, set_colours: Callable[[list[dict[str, Any]]], None]
) -> tuple[str, list[tuple[str, Labelled]]]:
    """Replay every clip into one store; returns its URL and the truth of every stored track."""
    from sightline.replay.run import run_replay
    from sinks.eventwrite import track_key
    from sinks.store import Store

    settings: Settings = load_settings(
        None,
        data_dir=str(workdir),
        ingest={"max_width": 640},
        engine={"type": "openai", "base_url": glm_url, "api_key": "t", "model": "glm-4.5v"},
    )
    store = Store(settings.store_url)
    truth: dict[str, Labelled] = {}
    for i in range(CLIPS):
        camera_id = f"cam{i:02d}"
        store.put_camera(
            CameraSpec(id=camera_id, url=f"file:///clips/{i}.mp4", name=CAMERAS[i % len(CAMERAS)])
        )
        mapping, figures = clip_design(i)
        set_colours(
            [
                {"name": c, "bgr": list(PALETTE[c]), "label": lab, "head_ratio": 0.2}
                for c, lab in mapping.items()
            ]
        )
        clip = generate_clip(
            workdir / "clips" / f"{i:02d}.mp4", duration_s=6, fps=10, figures=figures, seed=i
        )
        result = run_replay(clip, settings, [QUERY], camera_id=camera_id, store_url=settings.store_url)
        by_label = {lab: c for c, lab in mapping.items()}
        for e in result.events:
            if e.label in by_label:
                truth[track_key(camera_id, QUERY.id, e.track_id)] = Labelled(
                    camera_id, by_label[e.label], e.label
                )
    store.close()
    return settings.store_url, list(truth.items())


def queries() -> list[tuple[str, str, str]]:
    return [(PHRASES[lab].format(c=c), c, lab) for lab in LABELS for c in PALETTE]


def evaluate(store_url: str, truth: list[tuple[str, Labelled]], settings: Settings) -> dict[str, Any]:
    from sinks.search import open_search
    from sinks.store import Store

    store = Store(store_url)
    index = open_search(store.engine, settings.search)
    assert index is not None
    table: dict[str, dict[str, float]] = {}
    for mode, legs in MODES.items():
        recalls, rrs = [], []
        for text, colour, label in queries():
            relevant = {tid for tid, t in truth if t.colour == colour and t.label == label}
            if not relevant:
                continue
            ranked = [h.id for h in index.search(text, limit=10, legs=legs)]
            recalls.append(len(relevant & set(ranked)) / len(relevant))
            rrs.append(next((1 / (r + 1) for r, tid in enumerate(ranked) if tid in relevant), 0.0))
        table[mode] = {
            "queries": len(recalls),
            "recall@10": round(sum(recalls) / len(recalls), 3),
            "mrr": round(sum(rrs) / len(rrs), 3),
        }
    store.close()
    return {"tracks": len(truth), "embedder": index.signature.describe(), "modes": table}


def run_quality(workdir: Path, settings: Settings) -> dict[str, Any]:
    from sightline.testing.scripted_server import ScriptedServer

    t0 = time.perf_counter()
    with ScriptedServer({"mode": "colour"}) as glm:
        url, truth = build(
            workdir, glm.base_url, lambda colours: glm.set_scenario({"mode": "colour", "colours": colours})
        )
    report = evaluate(url, truth, settings)
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    return report


def add_args(p: Any) -> None:
    p.add_argument("--report", help="write the report here as JSON")


def run(args: Any, settings: Settings) -> int:
    """`sightline bench search-quality`: the table of docs/evaluation.md; exit 1 when hybrid misses."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="search-quality-") as tmp:
        report = run_quality(Path(tmp), settings)
    hybrid = report["modes"]["hybrid"]
    report["targets"] = {
        k: {"value": hybrid[k], "target": v, "ok": hybrid[k] >= v} for k, v in TARGETS.items()
    }
    print(f"{report['tracks']} tracks, {len(queries())} queries, embedder {report['embedder']}")
    print(f"  {'mode':<8} {'recall@10':>10} {'MRR':>7}")
    for mode, row in report["modes"].items():
        print(f"  {mode:<8} {row['recall@10']:>10.3f} {row['mrr']:>7.3f}")
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    ok = all(t["ok"] for t in report["targets"].values())
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1
