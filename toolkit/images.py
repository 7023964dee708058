"""Small real images to upload: the unit tests' maker (tests/helpers.py), so that the suites
and the unit tests build their pictures one way."""

from __future__ import annotations

from tests.helpers import image_bytes


def png(color: tuple[int, int, int] = (10, 120, 200), size: tuple[int, int] = (16, 12)) -> bytes:
    """An RGB PNG of one colour: the app re-encodes it, so each colour stays recognisable."""
    return image_bytes("PNG", size, color=color, mode="RGB")
