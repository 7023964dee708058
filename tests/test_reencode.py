"""The re-encoder's own work, in-process (tests/test_images.py runs it as the child it is)."""

import io

import pytest
from PIL import Image as PILImage

from flaskr.reencode import reencode
from tests.conftest import image_bytes


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_pixels_stay_in_their_format_without_metadata(fmt) -> None:
    source = image_bytes(fmt, (40, 30), **({"comment": b"private note"} if fmt == "JPEG" else {}))
    out = reencode(source, [fmt])
    image = PILImage.open(io.BytesIO(out))
    assert (image.format, image.size) == (fmt, (40, 30))
    assert b"private note" not in out


def test_only_the_named_format_is_read() -> None:
    with pytest.raises(OSError):
        reencode(image_bytes("PNG"), ["JPEG"])
