"""What the scripted GLM server answers: scenario models and the colour oracle.

A scenario is JSON (or a dict). `steps` are consumed one per chat request, in order; when they run
out the server falls back to `mode`: "script" repeats `default`, "colour" looks at the pixels it
was sent and boxes blobs of the configured BGR colours — so tests on generated clips get truthful
boxes through the real protocol. The model name is whatever the scenario says; the default says
plainly that this is a stand-in, not GLM-4.5V.
"""

from __future__ import annotations

import base64
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from analyzer.intake import jpeg_size
from glm45v_engine.parsing import to_normalised
from glm45v_engine.types import Image

STANDIN_MODEL = "scripted-glm-standin"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BoxSpec(_M):
    label: str | None = None
    bbox: tuple[float, float, float, float]  # GLM's 0–1000 corners


class ColourSpec(_M):
    name: str = "red"
    bgr: tuple[int, int, int] = (30, 30, 220)
    tolerance: int = Field(40, ge=0, le=255, description="max per-channel distance (codec noise)")
    label: str = "person"
    min_area: int = Field(30, ge=1, description="pixels, in the image as received")
    head_ratio: float = Field(0.2, ge=0, description="extend the box upward by this share of its height")
    # GLM names one object differently from answer to answer: the n-th answer labels this colour's
    # boxes wordings[n % len] (None: a box without a label). Empty: always `label`.
    wordings: tuple[str | None, ...] = ()


Fault = Literal["hang", "malformed", "garbage", "empty_choices", "disconnect"]


class Step(_M):
    status: int = 200
    text: str | None = None  # the answer, verbatim (boxes are appended in `box_format`)
    boxes: tuple[BoxSpec, ...] = ()
    thinking: str | None = None  # overrides the scenario's thinking text for this reply
    delay_s: float = Field(0.0, ge=0)
    fault: Fault | None = None
    usage: bool = True
    error: str = "scripted failure"


class Scenario(_M):
    model: str = STANDIN_MODEL
    mode: Literal["script", "colour"] = "script"
    steps: tuple[Step, ...] = ()
    default: Step = Step(text="none")
    box_format: Literal["tokens", "json", "brackets"] = "tokens"
    reasoning: Literal["inline", "reasoning_content", "reasoning"] = "inline"
    thinking_text: str = "Let me look at the image carefully before answering."
    latency_s: float = Field(0.0, ge=0)
    latency_by_width: dict[int, float] = Field(default_factory=dict)  # extra latency per image width
    hang_s: float = Field(30.0, ge=0)
    video: bool = True  # accept video_url parts (vLLM/SGLang do; a 400 like a server without it otherwise)
    colours: tuple[ColourSpec, ...] = (ColourSpec(),)
    embedding_dim: int = Field(32, ge=2, le=4096, description="/v1/embeddings: hashed bag of words")
    embeddings_status: int = Field(200, description="/v1/embeddings answers this (500: a failing server)")

    @classmethod
    def load(cls, source: str | dict[str, Any] | Scenario | None) -> Scenario:
        if source is None:
            return cls()
        if isinstance(source, Scenario):
            return source
        if isinstance(source, str):
            with open(source, encoding="utf-8") as fh:
                return cls.model_validate(json.load(fh))
        return cls.model_validate(source)


def render_boxes(boxes: tuple[BoxSpec, ...], fmt: str) -> str:
    """Boxes the way GLM-4.5V writes them."""
    if not boxes:
        return ""
    if fmt == "json":
        items = [{"label": b.label or "object", "bbox_2d": [round(v) for v in b.bbox]} for b in boxes]
        return "```json\n" + json.dumps(items) + "\n```"
    lines = []
    for b in boxes:
        quad = "[[" + ",".join(str(round(v)) for v in b.bbox) + "]]"
        body = f"<|begin_of_box|>{quad}<|end_of_box|>" if fmt == "tokens" else quad
        lines.append(f"{b.label}: {body}" if b.label else body)
    return "\n".join(lines)


# --- reading the request -----------------------------------------------------------------------

_TS = re.compile(r"t\s*=\s*(\d+(?:\.\d+)?)\s*s")


@dataclass
class Media:
    images: list[tuple[float | None, Image]]  # (timestamp from the caption before it, pixels)
    videos: list[bytes]
    text: str
    sizes: list[tuple[int, int]] = field(default_factory=list)  # (w, h) of each image, read from its header


def read_media(body: dict[str, Any], decode: bool) -> Media:
    """Images, videos and text of the last user message. `decode=False` skips pixel decoding."""
    media = Media([], [], "")
    messages = body.get("messages") or []
    user = next((m for m in reversed(messages) if isinstance(m, dict) and m.get("role") == "user"), None)
    content = user.get("content") if user else None
    parts = content if isinstance(content, list) else [{"type": "text", "text": str(content or "")}]
    last_ts: float | None = None
    texts = []
    for part in parts:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            t = str(part.get("text", ""))
            texts.append(t)
            found = _TS.findall(t)
            last_ts = float(found[-1]) if found else None
        elif kind == "image_url":
            data = _data_url_bytes(_url(part, "image_url"))
            img = _decode_image(data) if decode and data else None
            size = jpeg_size(data) if data else None
            media.sizes.append(size or (1, 1))
            media.images.append((last_ts, img if img is not None else np.zeros((1, 1, 3), np.uint8)))
            last_ts = None
        elif kind == "video_url":
            data = _data_url_bytes(_url(part, "video_url"))
            if data:
                media.videos.append(data)
    media.text = "\n".join(texts)
    return media


def _url(part: dict[str, Any], kind: str) -> str:
    inner = part.get(kind)
    url = inner.get("url") if isinstance(inner, dict) else None
    return url if isinstance(url, str) else ""


def _data_url_bytes(url: str) -> bytes | None:
    if not isinstance(url, str) or not url.startswith("data:") or "," not in url:
        return None
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=False)
    except ValueError:
        return None


def _decode_image(data: bytes) -> Image | None:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if img is None else np.asarray(img, np.uint8)


def decode_video(data: bytes) -> list[tuple[float, Image]]:
    import av

    frames: list[tuple[float, Image]] = []
    with av.open(io.BytesIO(data), mode="r") as container:
        for frame in container.decode(video=0):
            frames.append((float(frame.time or 0.0), np.asarray(frame.to_ndarray(format="bgr24"), np.uint8)))
    return frames


# --- the colour oracle -------------------------------------------------------------------------


def wanted_colours(colours: tuple[ColourSpec, ...], query: str) -> tuple[ColourSpec, ...]:
    """The colours the question names, or all of them when it names none."""
    q = query.lower()
    named = tuple(c for c in colours if re.search(rf"\b{re.escape(c.name.lower())}\b", q))
    return named or colours


def find_blobs(image: Image, colours: tuple[ColourSpec, ...]) -> tuple[BoxSpec, ...]:
    """Boxes (0–1000) around connected blobs of each colour, left to right."""
    h, w = image.shape[:2]
    found: list[BoxSpec] = []
    for c in colours:
        diff = np.abs(image.astype(np.int16) - np.array(c.bgr, np.int16)).max(axis=2)
        mask = (diff <= c.tolerance).astype(np.uint8)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < c.min_area:
                continue
            y1 = max(0.0, y - c.head_ratio * bh)
            quad = to_normalised((float(x), y1, float(x + bw), float(y + bh)), (w, h))
            found.append(BoxSpec(label=c.label, bbox=(quad[0], quad[1], quad[2], quad[3])))
    found.sort(key=lambda b: b.bbox[0])
    return tuple(found)


def presence_segments(times_hits: list[tuple[float, int]]) -> list[dict[str, Any]]:
    """Runs of consecutive frames with at least one hit → [{start_s, end_s, description}]."""
    segs: list[dict[str, Any]] = []
    run: list[tuple[float, int]] = []
    for t, n in [*sorted(times_hits), (float("inf"), 0)]:
        if n and t != float("inf"):
            run.append((t, n))
        elif run:
            most = max(k for _, k in run)
            segs.append({"start_s": run[0][0], "end_s": run[-1][0], "description": f"{most} visible"})
            run = []
    return segs


def colour_summary(media: Media, colours: tuple[ColourSpec, ...]) -> str:
    """A JSON summary answer: segments where the wanted colours are on screen."""
    wanted = wanted_colours(colours, media.text)
    frames: list[tuple[float, Image]] = []
    for data in media.videos:
        frames.extend(decode_video(data))
    frames.extend((t if t is not None else float(i), img) for i, (t, img) in enumerate(media.images))
    hits = [(t, len(find_blobs(img, wanted))) for t, img in frames]
    label = " or ".join(sorted({f"{c.name} {c.label}" for c in wanted}))
    segs = presence_segments(hits)
    for s in segs:
        s["description"] = f"{s['description'].split()[0]} {label} visible"
    summary = f"{label} visible in {sum(1 for _, n in hits if n)} of {len(hits)} frames."
    return json.dumps({"summary": summary, "segments": segs})


def colour_description(media: Media, colours: tuple[ColourSpec, ...]) -> str:
    """A description answer: the scenario colour covering most of the crop, in words."""
    best: tuple[float, ColourSpec] | None = None
    for _, img in media.images:
        for c in colours:
            diff = np.abs(img.astype(np.int16) - np.array(c.bgr, np.int16)).max(axis=2)
            share = float((diff <= c.tolerance).mean())
            if share >= 0.02 and (best is None or share > best[0]):
                best = (share, c)
    if best is None:
        return "an object of no clear colour"
    c = best[1]
    return f"a {c.label} in {c.name}" if c.label == "person" else f"a {c.name} {c.label}"


def history_answer(text: str, colours: tuple[ColourSpec, ...]) -> str:
    """An answer over listed events: cites the events whose text names a colour the question names."""
    question = text.rsplit("Question:", 1)[-1]
    named = [c.name for c in colours if re.search(rf"\b{re.escape(c.name)}\b", question.lower())]
    cited = [
        (m.group(1), m.group(2))
        for m in re.finditer(r"^\[(E\d+)\]\s*(.*)$", text, flags=re.M)
        if any(re.search(rf"\b{re.escape(n)}\b", m.group(2).lower()) for n in named)
    ]
    if not cited:
        return "None of the recorded events answers this."
    return "Seen: " + "; ".join(f"{line.split(': ', 1)[-1]} [{h}]" for h, line in cited) + "."
