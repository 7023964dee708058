"""Uploaded images: checked with Pillow, re-encoded to drop metadata, served from the database."""

from __future__ import annotations

import io
import subprocess  # runs our own re-encoder, never a shell  # nosec B404
import sys
import warnings
from pathlib import Path

from flask import Blueprint, abort, current_app, request
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from flaskr.db import db
from flaskr.models import Image
from flaskr.reencode import UNREADABLE

bp = Blueprint("images", __name__)

#: Pillow format name -> MIME type, for the formats we accept.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


REENCODE = str(Path(__file__).with_name("reencode.py"))


class ImageError(ValueError):
    """The upload is not an image we accept; the message tells the user why."""


def read_image(upload: FileStorage) -> Image:
    """Check an upload and return it re-encoded, without EXIF or other metadata.

    What an image may cost is decided before any pixel is decoded: its size in bytes, its
    pixel count and, for a JPEG, its number of scans are read from the header and refused in
    milliseconds. The decoding itself runs in a child process with a CPU and a memory limit
    (``flaskr/reencode.py``), so whatever the header hides costs at most those limits."""
    # Pillow only here, where uploads are read: serving workers stay 2 MB smaller without it
    # (`bench/in_process.py --imports`).
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError
    from PIL.Image import DecompressionBombWarning

    limit = current_app.config["MAX_IMAGE_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"The image is larger than {limit // (1024 * 1024)} MB.")
    if not data:
        raise ImageError("The image file is empty.")
    max_pixels = current_app.config["MAX_IMAGE_PIXELS"]
    try:
        with warnings.catch_warnings():
            # Pillow refuses far larger images itself, as soon as it reads the header.
            warnings.simplefilter("error", DecompressionBombWarning)
            source = PILImage.open(io.BytesIO(data), formats=list(FORMATS))
            width, height = source.size
            fmt = source.format or ""
    except (PILImage.DecompressionBombError, DecompressionBombWarning):
        raise ImageError(f"The image has more than {max_pixels:,} pixels.") from None
    except UnidentifiedImageError:
        raise ImageError("The file is not a JPEG, PNG, GIF or WebP image.") from None
    except (OSError, ValueError, SyntaxError, KeyError, EOFError) as e:
        raise ImageError(f"The image could not be read ({type(e).__name__}).") from None
    if width * height > max_pixels:
        raise ImageError(f"The image has more than {max_pixels:,} pixels.")
    max_scans = current_app.config["MAX_JPEG_SCANS"]
    if fmt == "JPEG" and jpeg_scans(data) > max_scans:
        raise ImageError(f"The JPEG has more than {max_scans} progressive scans.")
    return Image(mimetype=FORMATS[fmt], width=width, height=height, data=reencode(data, fmt))


def jpeg_scans(data: bytes) -> int:
    """How many scans (SOS markers) a JPEG holds, at most: each one makes the decoder go over
    every pixel again. Inside compressed data 0xFF is always escaped, so the marker's two
    bytes only appear where a scan starts (or inside a metadata segment: counting those too
    errs on the safe side)."""
    return data.count(b"\xff\xda")


def reencode(data: bytes, fmt: str) -> bytes:
    """Decode and re-encode in ``flaskr/reencode.py``, a child process with IMAGE_CPU_SECONDS
    of CPU time and IMAGE_MEMORY_BYTES of address space; beyond either the kernel stops it."""
    config = current_app.config
    cpu_seconds = config["IMAGE_CPU_SECONDS"]
    command = [
        sys.executable,
        "-I",  # isolated: no environment variables, no user site-packages, no current folder
        REENCODE,
        str(cpu_seconds),
        str(config["IMAGE_MEMORY_BYTES"]),
        fmt,
    ]
    costly = ImageError("The image takes too much work to decode. Upload a smaller one.")
    try:
        # The CPU limit is the bound; this is only a net for a child that stopped running,
        # wide enough for a machine so loaded that a second of CPU takes many more to get.
        done = subprocess.run(  # our interpreter and file  # noqa: S603  # nosec B603
            command, input=data, capture_output=True, timeout=cpu_seconds * 20, check=False
        )
    except subprocess.TimeoutExpired:
        raise costly from None
    if done.returncode == UNREADABLE:
        raise ImageError(done.stderr.decode(errors="replace").strip()[:200])
    if done.returncode != 0 or not done.stdout:
        current_app.logger.warning(
            "image re-encoding stopped: exit %s, %s", done.returncode, done.stderr[-300:]
        )
        raise costly
    return done.stdout


@bp.get("/<int:id>/image")
def image(id: int) -> Response:
    """Serve a post's image with a validator, so browsers and proxies can cache it."""
    row = db.session.execute(
        select(Image.id, Image.mimetype, Image.data).where(Image.post_id == id)
    ).first()
    if row is None:
        abort(404)
    response = current_app.response_class(row.data, mimetype=row.mimetype)
    response.set_etag(f"{id}-{row.id}")
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    response.headers["Content-Disposition"] = "inline"
    return response.make_conditional(request)
