"""What we ask GLM-4.5V, in one place, so every backend (and the scripted server) agrees.

Grounding asks for GLM's native box format: [x1,y1,x2,y2] normalised to 0–1000, which the model
wraps in <|begin_of_box|>…<|end_of_box|> itself. Summaries ask for JSON segments in seconds of
media time, so they line up with the frames' `pts_s`.
"""

from __future__ import annotations

from collections.abc import Sequence

GROUNDING_TEMPLATE = (
    "Find every {query} in this image. For each one, write one line with a short label and its "
    "bounding box, like: label: [[x1,y1,x2,y2]] — coordinates are the top-left and bottom-right "
    "corners normalised to 0-1000. Use a separate box for each instance. "
    "If there is none, answer exactly: none."
)

SUMMARY_TEMPLATE = (
    "{prompt}\n\n"
    "The video runs from {start:.1f} s to {end:.1f} s. Answer in JSON only: "
    '{{"summary": "<one or two sentences>", "segments": [{{"start_s": <seconds>, "end_s": <seconds>, '
    '"description": "<what happens>"}}]}}. Times are seconds of the video as given. '
    "Use an empty segments list if nothing relevant happens."
)

FRAME_CAPTION = "Frame at t={t:.1f}s:"

ASK_SUFFIX = (
    "\n\nIf you refer to positions in the image, give bounding boxes as [[x1,y1,x2,y2]] normalised to 0-1000."
)


def grounding_prompt(query: str) -> str:
    q = " ".join(query.split()) or "object"
    return GROUNDING_TEMPLATE.format(query=q)


def summary_prompt(prompt: str, start_s: float, end_s: float) -> str:
    p = prompt.strip() or "Describe what happens in this video."
    return SUMMARY_TEMPLATE.format(prompt=p, start=start_s, end=end_s)


def frames_preamble(timestamps: Sequence[float]) -> str:
    """Text sent before a clip that goes as separate images, so the model knows each frame's time."""
    ts = ", ".join(f"{t:.1f}" for t in timestamps)
    return f"The following {len(timestamps)} images are frames of one video, at t = {ts} seconds."


def ask_prompt(prompt: str) -> str:
    return prompt.strip() + ASK_SUFFIX


# Descriptions (queries with `describe: true`): one sentence about one tracked object, from a crop
# with some context around it. The first line is a fixed marker so the baseline engine and the
# scripted server can tell a description request from a free question.
DESCRIBE_MARKER = "Describe the object in one sentence."
DESCRIBE_TEMPLATE = (
    DESCRIBE_MARKER + "\n"
    "The image is a crop around a {label} found by the question {query!r}. In one short sentence "
    "(at most 20 words), say what it is and what distinguishes it: colours, clothing, what it carries "
    "or does. No preamble, no coordinates."
)

# Questions about history: retrieved events are listed with short handles ([E1], [E2], …) that the
# answer must cite, so every claim points at a stored event (handles are mapped back to ids).
HISTORY_MARKER = "Answer from the recorded events below."
HISTORY_TEMPLATE = (
    HISTORY_MARKER + "\n"
    "Each line is one event: [handle] camera, start–end (UTC), what was seen. Images, when present, "
    "are the snapshots of the first events, in order. Cite every event you rely on by its handle in "
    "square brackets, like [E1]. If the events do not answer the question, say so.\n\n"
    "{events}\n\nQuestion: {question}"
)


def describe_prompt(label: str, query: str) -> str:
    return DESCRIBE_TEMPLATE.format(label=" ".join(label.split()) or "object", query=query)


def is_describe_prompt(text: str) -> bool:
    return DESCRIBE_MARKER in text


def history_prompt(question: str, events: Sequence[str]) -> str:
    return HISTORY_TEMPLATE.format(events="\n".join(events), question=question.strip())
