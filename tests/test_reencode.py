"""The re-encoder's own work, in-process (tests/test_images.py runs it as the child it is)."""

import io

import pytest
from PIL import Image as PILImage

from flaskr.reencode import Refused, reencode
from toolkit.hostile import repeated_scans_jpeg
from toolkit.images import image_bytes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_pixels_stay_in_their_format_without_metadata(fmt) -> None:
    source = image_bytes(fmt, (40, 30), **({"comment": b"private note"} if fmt == "JPEG" else {}))
    found, size, out = reencode(source, [fmt], 12_000_000, 32)
    assert (found, size) == (fmt, (40, 30))
    image = PILImage.open(io.BytesIO(out))
    assert (image.format, image.size) == (fmt, (40, 30))
    assert b"private note" not in out


def test_only_the_named_format_is_read() -> None:
    with pytest.raises(Refused, match="not a JPEG, PNG, GIF or WebP"):
        reencode(image_bytes("PNG"), ["JPEG"], 12_000_000, 32)


@pytest.mark.parametrize(("pixels", "refused"), [(1200, False), (1199, True), (599, True)])
def test_pixels_are_counted_from_the_header(pixels: int, refused: bool) -> None:
    """Past the limit Pillow warns, past twice the limit it raises: both are a refusal."""
    data = image_bytes("PNG", (40, 30))
    if refused:
        with pytest.raises(Refused, match=f"more than {pixels:,} pixels"):
            reencode(data, ["PNG"], pixels, 32)
    else:
        assert reencode(data, ["PNG"], pixels, 32)[1] == (40, 30)


def test_a_jpeg_with_too_many_scans_is_refused_before_decoding() -> None:
    data = repeated_scans_jpeg((64, 64), 40)
    with pytest.raises(Refused, match="more than 32 progressive scans"):
        reencode(data, ["JPEG"], 12_000_000, 32)
