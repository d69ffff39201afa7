"""Checks on a frame message before the analyzer works on it: bad ones are dead-lettered, not crashed on.

`bus.kafka.decode_frame` already refuses a missing or invalid `FrameMeta` and a payload that does
not start like a JPEG. This adds what needs a look inside the JPEG, cheaply: its size (from the
SOF header, without decoding), agreement with the metadata (boxes are mapped back through it),
and that it decodes at all (at 1/8 scale, a fraction of a full decode).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from bus.contracts import FrameMeta
from bus.kafka import PoisonMessage

MAX_SIDE = 16384  # no camera sends more; a larger header is a decompression bomb
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the first SOF marker, or None if the header is not a readable JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if length < 2:
            return None
        if marker in _SOF:
            if i + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        i += 2 + length
    return None


def check_frame(meta: FrameMeta, jpeg: bytes, max_bytes: int) -> None:
    """Raise PoisonMessage with the reason if this frame must not reach the engine."""
    if len(jpeg) > max_bytes:
        raise PoisonMessage(f"frame payload of {len(jpeg)} bytes is over bus.max_frame_bytes ({max_bytes})")
    size = jpeg_size(jpeg)
    if size is None:
        raise PoisonMessage("frame payload is not a readable JPEG (no frame header)")
    if size != (meta.encoded_width, meta.encoded_height):
        raise PoisonMessage(
            f"JPEG is {size[0]}x{size[1]} but its metadata says {meta.encoded_width}x{meta.encoded_height}"
        )
    if max(size) > MAX_SIDE or min(size) < 1:
        raise PoisonMessage(f"JPEG size {size[0]}x{size[1]} is out of range (1..{MAX_SIDE} per side)")
    probe = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_8)
    if probe is None:
        raise PoisonMessage("frame payload does not decode as a JPEG")
