"""Hostile content: uploads and Markdown built to cost the app as much as its bounds allow
(decoding, rendering). The unit tests hold the bounds, tests/e2e/test_hostile.py holds them
under gunicorn, and bench/hostile_costs.py measures what they cost."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image as PILImage

from toolkit.images import image_bytes


def repeated_scans_jpeg(size: tuple[int, int], repeats: int) -> bytes:
    """A progressive JPEG whose last (tiny) refinement scan is repeated ``repeats`` times: a
    few hundred bytes more, and the decoder goes over every pixel once more per copy."""
    out = io.BytesIO()
    PILImage.new("RGB", size, (120, 130, 140)).save(out, "JPEG", progressive=True)
    data = out.getvalue()[:-2]  # without the end-of-image marker
    scan = data[data.rfind(b"\xff\xda") :]
    return data + scan * repeats + b"\xff\xd9"


def jpeg_after_fill_bytes() -> bytes:
    """Five million 0xFF fill bytes after the start marker, then a valid 8x8 JPEG: Pillow
    steps over the fill a byte at a time, in Python."""
    return b"\xff\xd8" + b"\xff" * 5_000_000 + image_bytes("JPEG", (8, 8))[2:]


def png_after_empty_chunks() -> bytes:
    """430,000 empty chunks of an unknown kind between the header and the pixels."""
    png = image_bytes("PNG", (8, 8))
    empty = struct.pack(">I", 0) + b"abCd" + struct.pack(">I", zlib.crc32(b"abCd"))
    return png[:33] + empty * 430_000 + png[33:]  # 33: signature and IHDR chunk


def gif_with_a_long_comment() -> bytes:
    """A comment extension of 2.6 million one-byte sub-blocks before the image."""
    gif = image_bytes("GIF", (8, 8))
    head = 13 + (3 * 2 ** ((gif[10] & 7) + 1) if gif[10] & 0x80 else 0)  # and colour table
    comment = b"\x21\xfe" + b"\x01x" * 2_600_000 + b"\x00"
    return b"GIF89a" + gif[6:head] + comment + gif[head:]


def reference_links(size: int, url_length: int) -> str:
    """``[a]`` repeated, all pointing at one long reference: each copy repeats the URL."""
    url = "https://example.com/" + "a" * url_length
    return "[a]" * ((size - url_length - 40) // 3) + "\n\n[a]: " + url
