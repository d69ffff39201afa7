"""parse_response / parse_summary over real GLM output shapes and adversarial text."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from glm45v_engine.parsing import parse_response, parse_summary, to_normalised, to_pixels

W, H = 1280, 720
PIECES = [
    *'[]{},:0123456789.-" abc\n',
    "<think>",
    "</think>",
    "<|begin_of_box|>",
    "<|end_of_box|>",
    '"bbox_2d"',
    '"label"',
]


def px(x1: float, y1: float, x2: float, y2: float) -> tuple[float, float, float, float]:
    return (x1 / 1000 * W, y1 / 1000 * H, x2 / 1000 * W, y2 / 1000 * H)


# (name, text, expected [(label, 0-1000 quad)], expected thinking substring or None)
CORPUS = [
    (
        "glm45v box tokens, double brackets",
        "The person in the red jacket is at <|begin_of_box|>[[102,230,288,901]]<|end_of_box|>.",
        [(None, (102, 230, 288, 901))],
        None,
    ),
    (
        "box tokens, single brackets",
        "<|begin_of_box|>[512, 40, 640, 388]<|end_of_box|>",
        [(None, (512, 40, 640, 388))],
        None,
    ),
    (
        "several boxes in one box-token span",
        "I found two people here: <|begin_of_box|>[[10,20,110,520],[600,100,700,900]]<|end_of_box|>",
        [(None, (10, 20, 110, 520)), (None, (600, 100, 700, 900))],
        None,
    ),
    (
        "several box-token spans with list labels",
        "- person: <|begin_of_box|>[[10,20,110,520]]<|end_of_box|>\n"
        "- bicycle: <|begin_of_box|>[[300,400,500,800]]<|end_of_box|>",
        [("person", (10, 20, 110, 520)), ("bicycle", (300, 400, 500, 800))],
        None,
    ),
    (
        "vLLM reasoning parser off: inline think block, with coordinates inside that must be ignored",
        "<think>The figure near [[1,1,999,999]] might be a shadow; the real one is left.</think>"
        "<|begin_of_box|>[[120,300,220,860]]<|end_of_box|>",
        [(None, (120, 300, 220, 860))],
        "shadow",
    ),
    (
        "template opened <think> in the prompt: output starts inside thinking",
        "Looking at [0,0,500,500] first.\n</think>\n<|begin_of_box|>[[50,60,70,80]]<|end_of_box|>",
        [(None, (50, 60, 70, 80))],
        "Looking at",
    ),
    (
        "GLM-4.1V-Thinking answer tags",
        "<think>Scan the scene.</think>"
        "<answer>The dog <|begin_of_box|>[200,300,400,600]<|end_of_box|></answer>",
        [("The dog", (200, 300, 400, 600))],
        "Scan the scene",
    ),
    (
        "JSON in a code fence with bbox_2d and label",
        '```json\n[\n  {"bbox_2d": [379, 252, 542, 410], "label": "refrigerator"},\n'
        '  {"label": "person in red", "bbox_2d": [10, 20, 110, 520]}\n]\n```',
        [("refrigerator", (379, 252, 542, 410)), ("person in red", (10, 20, 110, 520))],
        None,
    ),
    (
        "JSON inside box tokens",
        '<|begin_of_box|>[{"label": "car", "bbox_2d": [1, 2, 300, 400]}]<|end_of_box|>',
        [("car", (1, 2, 300, 400))],
        None,
    ),
    (
        "JSON truncated mid-object keeps the complete boxes",
        '[{"label": "a", "bbox_2d": [10,10,100,100]}, {"label": "b", "bbox_2d": [200,200,300,300]}, '
        '{"label": "c", "bbox_2d": [400,4',
        [("a", (10, 10, 100, 100)), ("b", (200, 200, 300, 300))],
        None,
    ),
    (
        "bare double brackets, float coordinates, 0-999 grid edge",
        "[[0.0, 0.0, 999, 999]]",
        [(None, (0, 0, 999, 999))],
        None,
    ),
    (
        "reversed corners are normalised",
        "<|begin_of_box|>[[400,500,100,200]]<|end_of_box|>",
        [(None, (100, 200, 400, 500))],
        None,
    ),
    (
        "leaked special tokens",
        "<|assistant|>\n<|begin_of_box|>[[100,100,200,200]]<|end_of_box|><|endoftext|>",
        [(None, (100, 100, 200, 200))],
        None,
    ),
    (
        "no boxes: the model says nothing is there",
        "There are no people wearing red in this image.",
        [],
        None,
    ),
]


@pytest.mark.parametrize(("name", "text", "expected", "thinking"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(
    name: str, text: str, expected: list[tuple[str | None, tuple[int, ...]]], thinking: str | None
) -> None:
    r = parse_response(text, image_size=(W, H))
    got: list[Any] = [(b.label, b.bbox) for b in r.boxes]
    assert got == [(lbl, pytest.approx(px(*q))) for lbl, q in expected]
    if thinking is None:
        assert r.thinking is None
    else:
        assert r.thinking is not None and thinking in r.thinking
    assert "<think>" not in r.answer and "</think>" not in r.answer and "<|begin_of_box|>" not in r.answer


def test_clamps_out_of_range_and_drops_degenerate() -> None:
    r = parse_response(
        "[[-50, 100, 1200, 400]] [[500,500,500,900]] [[10,10,10.5,900]] [[990,10,1500,20]]", (W, H)
    )
    # 1st: clamped to the image; 2nd: zero width; 3rd: under a pixel; 4th: clamped to a 12.8 px sliver
    assert [b.bbox for b in r.boxes] == [
        pytest.approx((0.0, 72.0, float(W), 288.0)),
        pytest.approx((990 / 1000 * W, 7.2, float(W), 14.4)),
    ]


def test_truncated_inside_thinking_has_no_boxes_and_says_so() -> None:
    r = parse_response("<think>The person is around [[100,100,200,200]] and", (W, H))
    assert r.boxes == () and r.truncated and r.answer == ""
    assert r.thinking is not None and "[[100,100,200,200]]" in r.thinking


def test_truncated_inside_box_keeps_complete_quads() -> None:
    r = parse_response("<|begin_of_box|>[[100,100,200,200],[300,30", (W, H))
    assert r.truncated
    assert [b.bbox for b in r.boxes] == [pytest.approx(px(100, 100, 200, 200))]


def test_box_tokens_win_over_stray_brackets_in_prose() -> None:
    r = parse_response(
        "Indices [1, 2, 3, 4] aside, the cup is <|begin_of_box|>[[10,10,90,90]]<|end_of_box|>", (W, H)
    )
    assert [b.bbox for b in r.boxes] == [pytest.approx(px(10, 10, 90, 90))]


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        None,
        "<think>",
        "</think></think><think>",
        "<|begin_of_box|>",
        "<|begin_of_box|>[[nan, 1, 2, 3]]<|end_of_box|>",
        "[[1e999, 0, 5, 5]]",
        "{" * 5000 + "[" * 5000,
        '{"bbox_2d": "not a list", "label": 3}',
        "\x00\xff<|endoftext|>",
        "[[1,2,3]] [[1,2,3,4,5]]",
    ],
)
def test_garbage_never_raises(garbage: str | None) -> None:
    r = parse_response(garbage, (W, H))
    assert isinstance(r.answer, str)
    for b in r.boxes:
        x1, y1, x2, y2 = b.bbox
        assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=80).map("".join),
    st.integers(1, 4000),
    st.integers(1, 4000),
)
def test_fuzz_boxes_always_inside_the_image(text: str, w: int, h: int) -> None:
    r = parse_response(text, (w, h))
    for b in r.boxes:
        x1, y1, x2, y2 = b.bbox
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
        assert x2 - x1 >= 1 and y2 - y1 >= 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000), st.integers(0, 1000))
def test_roundtrip_normalised_to_pixels(a: int, b: int, c: int, d: int) -> None:
    quad = (a, b, c, d)
    bbox = to_pixels(quad, (W, H))
    if bbox is None:
        assert abs(a - c) / 1000 * W < 1 or abs(b - d) / 1000 * H < 1
        return
    assert to_normalised(bbox, (W, H)) == (min(a, c), min(b, d), max(a, c), max(b, d))


def test_summary_json_segments_with_mixed_time_formats() -> None:
    text = (
        "<think>frames 3..9 show red</think>```json\n"
        '{"summary": "A person in red crosses.", "segments": ['
        '{"start_s": 3.0, "end_s": 8.9, "description": "person in red walks right"},'
        '{"start": "0:10", "end": "00:00:12.5", "event": "scene empty"}]}\n```'
    )
    s = parse_summary(text)
    assert s.text == "A person in red crosses."
    assert [(x.start_s, x.end_s, x.description) for x in s.segments] == [
        (3.0, 8.9, "person in red walks right"),
        (10.0, 12.5, "scene empty"),
    ]
    assert s.thinking == "frames 3..9 show red"


def test_summary_plain_text_and_reasoning_field() -> None:
    s = parse_summary("Nothing happened.", reasoning="checked every frame")
    assert s.text == "Nothing happened." and s.segments == () and s.thinking == "checked every frame"


@pytest.mark.parametrize(
    "bad", [None, "", "{", '{"segments": [{"start_s": "soon"}, 5, {"end_s": 3}]}', "[{]}"]
)
def test_summary_garbage_never_raises(bad: str | None) -> None:
    s = parse_summary(bad)
    assert s.segments == ()


# --- bracket styles and Python-style JSON (GLM-V's documentation allows all of them) -----------


@pytest.mark.parametrize(
    "inner",
    [
        "[100,200,300,400]",
        "[[100,200,300,400]]",
        "(100,200,300,400)",
        "<100, 200, 300, 400>",
        "((100,200,300,400))",
    ],
)
def test_every_bracket_style_inside_box_tokens(inner: str) -> None:
    r = parse_response(f"person: <|begin_of_box|>{inner}<|end_of_box|>", (W, H))
    assert [b.bbox for b in r.boxes] == [px(100, 200, 300, 400)]
    assert not r.unreadable


def test_two_round_bracket_boxes_in_one_span() -> None:
    r = parse_response("<|begin_of_box|>(100,200,300,400), (500,500,600,700)<|end_of_box|>", (W, H))
    assert [b.bbox for b in r.boxes] == [px(100, 200, 300, 400), px(500, 500, 600, 700)]


def test_python_style_single_quoted_json_keeps_labels() -> None:
    text = (
        "[{'label': 'person in red', 'bbox_2d': [100, 200, 300, 400]}, "
        "{'label': 'dog', 'bbox_2d': [1, 2, 300, 400]}]"
    )
    r = parse_response(text, (W, H))
    assert [(b.label, b.bbox) for b in r.boxes] == [
        ("person in red", px(100, 200, 300, 400)),
        ("dog", px(1, 2, 300, 400)),
    ]


def test_python_style_json_inside_box_tokens() -> None:
    r = parse_response(
        "<|begin_of_box|>{'label': 'car', 'bbox_2d': [10, 20, 300, 400]}<|end_of_box|>", (W, H)
    )
    assert [(b.label, b.bbox) for b in r.boxes] == [("car", px(10, 20, 300, 400))]


def test_round_brackets_outside_box_tokens_stay_prose() -> None:
    # "(1, 2, 3, 4)" in free text is not markup; only box tokens widen the bracket styles
    r = parse_response("Counts per hour (1, 2, 3, 4) were low.", (W, H))
    assert r.boxes == () and not r.unreadable
