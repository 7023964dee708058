"""Small real images to upload, made by Pillow: the unit tests, the suites and bench/ build
their pictures one way."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image as PILImage


def png(color: tuple[int, int, int] = (10, 120, 200), size: tuple[int, int] = (16, 12)) -> bytes:
    """An RGB PNG of one colour: the app re-encodes it, so each colour stays recognisable."""
    return image_bytes("PNG", size, color=color, mode="RGB")


def image_bytes(
    fmt: str = "PNG",
    size: tuple[int, int] = (8, 6),
    color: int | tuple[int, ...] | None = None,
    mode: str | None = None,
    **save: Any,
) -> bytes:
    """A small real image in ``fmt``, of one ``color`` (in ``mode``, else the format's own)."""
    out = io.BytesIO()
    mode = mode or ("RGB" if fmt in ("JPEG", "WEBP") else "RGBA" if fmt == "PNG" else "P")
    if color is None:
        color = 1 if mode == "P" else 0 if mode == "1" else (200, 30, 60)
    PILImage.new(mode, size, color=color).save(out, fmt, **save)
    return out.getvalue()
