"""Turn GLM-4.5V / GLM-4.1V-Thinking text into an answer, its thinking, and boxes in pixels.

    r = parse_response(text, image_size=(width, height))   # size of the ORIGINAL image
    r.answer, r.thinking, r.boxes                           # boxes: Box(label, bbox=(x1, y1, x2, y2))

GLM writes boxes as [x1, y1, x2, y2] normalised to 0–1000 of the image it saw, which is the
original image scaled, so the same numbers map straight onto the original size. Formats seen in
practice: `<|begin_of_box|>[[..],[..]]<|end_of_box|>`, bare single or double brackets, JSON lists of
`{"label": .., "bbox_2d": [..]}` (often in a ```json fence), `<answer>` wrappers from the
Thinking models. Models trained on a 0–999 grid put the far edge at 999, which maps to 99.9 % of the
side — less than a pixel on typical frames, so one scale serves both.

The parser never raises: a model answer is untrusted input and a bad one must cost one frame's
boxes, not the consumer.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from glm45v_engine.types import BBox, Box, TimedSegment

COORD_SCALE = 1000.0
MIN_SIDE_PX = 1.0  # boxes thinner than this after clamping are degenerate
LABEL_KEYS = ("label", "name", "category", "class", "object", "description")
BOX_KEYS = ("bbox_2d", "bbox", "box_2d", "box", "bbox2d", "coordinates")

_NUM = r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?"
_QUAD = re.compile(rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]")
# Inside box tokens GLM-V's documentation allows any bracket style: [..], [[..]], (..), <..>.
_ANY_QUAD = re.compile(rf"[\[(<]\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*[\])>]")
_BOX_TOKENS = re.compile(r"<\|begin_of_box\|>(.*?)(?:<\|end_of_box\|>|$)", re.S)
_KEYED_QUAD = re.compile(
    rf"[\"']?(?:{'|'.join(BOX_KEYS)})[\"']?\s*:\s*(\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\])",
    re.I,
)
_LABEL_IN_OBJ = re.compile(
    rf"[\"']?(?:{'|'.join(LABEL_KEYS)})[\"']?\s*:\s*(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)')", re.I
)  # JSON's double quotes, or Python-style single quotes ({'label': 'person', ...})
# Special tokens that may leak into decoded text (skip_special_tokens=False, or a raw server).
_SPECIAL = re.compile(
    r"<\|(?:endoftext|user|assistant|system|observation|begin_of_image|end_of_image|begin_of_video|"
    r"end_of_video|image|video)\|>|\[gMASK\]|<sop>|<eop>"
)
# Control characters (NUL above all) a model may emit: no reader wants them, PostgreSQL refuses them.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# A short list-item label in front of a box: "person: [..]", "- red car [..]", "1. dog - [..]".
_LINE_LABEL = re.compile(r"(?:^|\n)\s*(?:[-*•]|\d+[.)])?\s*\**([^\n:\[\]<>{}\"]{1,40}?)\**\s*([:=\-–]?)\s*$")
# Words that end prose rather than a label ("the person is at [..]").
_NOT_LABEL_END = {
    "at",
    "is",
    "are",
    "in",
    "on",
    "of",
    "the",
    "a",
    "an",
    "located",
    "here",
    "box",
    "boxes",
    "to",
}


@dataclass(frozen=True)
class ParsedResponse:
    answer: str
    thinking: str | None
    boxes: tuple[Box, ...]
    truncated: bool = False  # the text ended inside a think block or a box
    unreadable: bool = False  # box markup, yet no usable box (see `Grounding.unreadable`)


def parse_response(text: str | None, image_size: tuple[int, int]) -> ParsedResponse:
    """Split thinking from the answer and read every box in the answer, in original-image pixels."""
    raw = text if isinstance(text, str) else ""
    try:
        return _parse(raw, image_size)
    except Exception:  # last line of defence; _parse is written not to raise
        return ParsedResponse(answer=raw, thinking=None, boxes=(), truncated=True)


def split_thinking(text: str, reasoning: str | None = None) -> tuple[str, str | None, bool]:
    """(answer, thinking, truncated). `reasoning` is a server-side reasoning field, if any."""
    thinking_parts = [reasoning.strip()] if reasoning and reasoning.strip() else []
    truncated = False
    answer = text
    opened = answer.find("<think>")
    closed = answer.find("</think>")
    if closed >= 0 and (opened < 0 or opened > closed):
        # The chat template opened <think> in the prompt, so the output starts inside it.
        thinking_parts.append(answer[:closed].strip())
        answer = answer[closed + len("</think>") :]
    while True:
        start = answer.find("<think>")
        if start < 0:
            break
        end = answer.find("</think>", start)
        if end < 0:  # cut off while thinking: no answer yet
            thinking_parts.append(answer[start + len("<think>") :].strip())
            answer, truncated = answer[:start], True
            break
        thinking_parts.append(answer[start + len("<think>") : end].strip())
        answer = answer[:start] + answer[end + len("</think>") :]
    answer = answer.replace("</think>", "")
    m = re.search(r"<answer>(.*?)(?:</answer>|$)", answer, re.S)
    if m:
        answer = m.group(1)
    thinking = "\n".join(p for p in thinking_parts if p) or None
    return answer, thinking, truncated


def _parse(raw: str, image_size: tuple[int, int]) -> ParsedResponse:
    text = _CONTROL.sub("", _SPECIAL.sub("", raw))
    answer, thinking, truncated = split_thinking(text)
    spans = _box_spans(answer)
    if answer.count("<|begin_of_box|>") > answer.count("<|end_of_box|>"):
        truncated = True  # cut off inside a box; complete quads before the cut still count
    boxes = []
    for label, quad in spans:
        bbox = to_pixels(quad, image_size)
        if bbox is not None:
            boxes.append(Box(label=label, bbox=bbox))
    clean = answer.replace("<|begin_of_box|>", "").replace("<|end_of_box|>", "").strip()
    return ParsedResponse(
        answer=clean,
        thinking=thinking,
        boxes=tuple(boxes),
        truncated=truncated,
        unreadable=not boxes and _unreadable(answer, spans),
    )


_BRACKET_NUMBER = re.compile(r"\[\s*-?\d")


def _unreadable(answer: str, spans: list[tuple[str | None, tuple[float, ...]]]) -> bool:
    """Box markup (box tokens, or a bracket opening a number) with no box that is usable at all
    (judged on a 1000×1000 grid: a box too small for *this* image is "nothing there", not garbage)."""
    if "<|begin_of_box|>" not in answer and not _BRACKET_NUMBER.search(answer):
        return False
    return not any(to_pixels(quad, (1000, 1000)) for _, quad in spans)


def _box_spans(answer: str) -> list[tuple[str | None, tuple[float, ...]]]:
    """Boxes by priority: inside box tokens, else keyed JSON, else bare brackets."""
    tokened = list(_BOX_TOKENS.finditer(answer))
    if tokened:
        found: list[tuple[str | None, tuple[float, ...]]] = []
        for m in tokened:
            inner = m.group(1)
            keyed = _keyed(inner)
            if keyed:
                found.extend(keyed)
                continue
            label = _line_label(answer[: m.start()])
            found.extend((label, q) for q in _quads(inner, _ANY_QUAD))
        return found
    keyed = _keyed(answer)
    if keyed:
        return keyed
    found = []
    for m in _QUAD.finditer(answer):
        prefix = answer[: m.start()].rstrip("[ \t")
        found.append((_line_label(prefix), _floats(m)))
    return found


def _keyed(text: str) -> list[tuple[str | None, tuple[float, ...]]]:
    """`"bbox_2d": [..]` entries, each labelled from its own {...} object (works on truncated JSON)."""
    out: list[tuple[str | None, tuple[float, ...]]] = []
    for m in _KEYED_QUAD.finditer(text):
        start = text.rfind("{", 0, m.start())
        stop = text.find("}", m.end())
        obj = text[start + 1 if start >= 0 else 0 : stop if stop >= 0 else len(text)]
        lm = _LABEL_IN_OBJ.search(obj)
        label = _unescape(lm.group(1)) if lm and lm.group(1) is not None else None
        if lm and lm.group(2) is not None:
            label = _unescape(lm.group(2).replace('"', '\\"').replace("\\'", "'"))
        q = _QUAD.match(m.group(1))
        if q:
            out.append((label or None, _floats(q)))
    return out


def _quads(text: str, pattern: re.Pattern[str] = _QUAD) -> list[tuple[float, ...]]:
    return [_floats(m) for m in pattern.finditer(text)]


def _floats(m: re.Match[str]) -> tuple[float, ...]:
    return tuple(float(g) for g in m.groups())


def _line_label(prefix: str) -> str | None:
    """A short label written right before a box on its own line ("person: [..]"), else None."""
    tail = prefix[-80:]
    m = _LINE_LABEL.search(tail)
    if not m:
        return None
    label = m.group(1).strip(" *`'\"-–:")
    words = label.lower().split()
    limit = 5 if m.group(2) else 3  # an explicit "label:" allows a longer phrase
    if not words or len(words) > limit or words[-1] in _NOT_LABEL_END or re.search(r"[.!?,;]", label):
        return None
    return label


def _unescape(s: str) -> str:
    try:
        value = json.loads(f'"{s}"')
        return _CONTROL.sub("", str(value)).strip()  # "\u0000" in JSON is a NUL once decoded
    except ValueError:
        return s.strip()


def to_pixels(
    quad: tuple[float, ...], image_size: tuple[int, int], scale: float = COORD_SCALE
) -> BBox | None:
    """0–`scale` corners → clamped pixel corners of an image of `image_size` (w, h); None if degenerate."""
    if len(quad) != 4 or not all(math.isfinite(v) for v in quad):
        return None
    w, h = float(image_size[0]), float(image_size[1])
    if w <= 0 or h <= 0:
        return None
    x1, y1, x2, y2 = quad
    x1, x2 = sorted((x1, x2))
    y1, y2 = sorted((y1, y2))
    px1 = min(max(x1 / scale * w, 0.0), w)
    px2 = min(max(x2 / scale * w, 0.0), w)
    py1 = min(max(y1 / scale * h, 0.0), h)
    py2 = min(max(y2 / scale * h, 0.0), h)
    if px2 - px1 < MIN_SIDE_PX or py2 - py1 < MIN_SIDE_PX:
        return None
    return (px1, py1, px2, py2)


def to_normalised(bbox: BBox, image_size: tuple[int, int], scale: float = COORD_SCALE) -> tuple[int, ...]:
    """Pixel corners → GLM's integer 0–`scale` corners (used by the scripted server and tests)."""
    w, h = image_size
    x1, y1, x2, y2 = bbox
    return (
        round(x1 / w * scale),
        round(y1 / h * scale),
        round(x2 / w * scale),
        round(y2 / h * scale),
    )


# --- temporal summaries ------------------------------------------------------------------------

_TIME = re.compile(r"^\s*(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)\s*$")
_START_KEYS = ("start_s", "start", "start_time", "from", "begin")
_END_KEYS = ("end_s", "end", "end_time", "to", "until")
_DESC_KEYS = ("description", "event", "text", "summary", "caption", "label")


@dataclass(frozen=True)
class ParsedSummary:
    text: str
    segments: tuple[TimedSegment, ...]
    thinking: str | None


def parse_summary(text: str | None, reasoning: str | None = None) -> ParsedSummary:
    """Read `{"summary": .., "segments": [{"start_s", "end_s", "description"}]}` or a bare segment list.

    Falls back to the plain answer text with no segments; never raises.
    """
    raw = _CONTROL.sub("", _SPECIAL.sub("", text if isinstance(text, str) else ""))
    reasoning = _CONTROL.sub("", reasoning) if isinstance(reasoning, str) else None
    try:
        answer, thinking, _ = split_thinking(raw, reasoning)
        data = _first_json(answer)
        summary = ""
        items: list[object] = []
        if isinstance(data, dict):
            summary = str(data.get("summary") or data.get("text") or "")
            segs = data.get("segments") or data.get("events") or []
            items = list(segs) if isinstance(segs, list) else []
        elif isinstance(data, list):
            items = list(data)
        segments = tuple(s for s in (_segment(i) for i in items) if s is not None)
        if data is None:
            summary = _strip_fences(answer).strip()
        elif not summary:
            summary = "; ".join(s.description for s in segments)
        return ParsedSummary(_CONTROL.sub("", summary).strip(), segments, thinking)
    except Exception:
        return ParsedSummary(raw.strip(), (), None)


def _segment(item: object) -> TimedSegment | None:
    if not isinstance(item, dict):
        return None
    start = _seconds(next((item[k] for k in _START_KEYS if k in item), None))
    end = _seconds(next((item[k] for k in _END_KEYS if k in item), None))
    if start is None:
        return None
    end = start if end is None else end
    start, end = min(start, end), max(start, end)
    desc = next((str(item[k]) for k in _DESC_KEYS if k in item and item[k] is not None), "")
    return TimedSegment(start, end, _CONTROL.sub("", desc).strip())


def _seconds(v: object) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        f = float(v)
        return f if math.isfinite(f) and f >= 0 else None
    if isinstance(v, str):
        s = v.strip().rstrip("s").strip()
        m = _TIME.match(s)
        if m:
            h, mi, sec = m.groups()
            return int(h or 0) * 3600 + int(mi) * 60 + float(sec)
        try:
            f = float(s)
        except ValueError:
            return None
        return f if math.isfinite(f) and f >= 0 else None
    return None


def _strip_fences(s: str) -> str:
    return re.sub(r"```[a-zA-Z]*\n?|```", "", s)


def _first_json(text: str) -> object:
    """The first JSON object or list in the text (fenced or not), or None."""
    body = _strip_fences(text)
    decoder = json.JSONDecoder()
    starts = [i for i, ch in enumerate(body) if ch in "[{"][:64]  # bounded work on garbage
    for i in starts:
        try:
            value, _ = decoder.raw_decode(body, i)
        except ValueError:
            continue
        if isinstance(value, dict | list):
            return value
    return None
