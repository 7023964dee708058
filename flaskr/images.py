"""Uploaded images: checked with Pillow, re-encoded to drop metadata, served from the database."""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING

from flask import Blueprint, abort, current_app, request
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from flaskr.db import db
from flaskr.models import Image

if TYPE_CHECKING:
    from PIL import Image as PILImage

bp = Blueprint("images", __name__)

#: Pillow format name -> MIME type, for the formats we accept.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


class ImageError(ValueError):
    """The upload is not an image we accept; the message tells the user why."""


def read_image(upload: FileStorage) -> Image:
    """Check an upload and return it re-encoded, without EXIF or other metadata.

    The pixel count is checked from the header before any decoding, so a small file that
    would decompress to gigabytes (a decompression bomb) is refused, not decoded."""
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
            if width * height > max_pixels:
                raise ImageError(f"The image has more than {max_pixels:,} pixels.")
            mimetype = FORMATS[source.format or ""]
            source.load()
            out = io.BytesIO()
            save_as(source, out)
    except ImageError:
        raise
    except (PILImage.DecompressionBombError, DecompressionBombWarning):
        raise ImageError(f"The image has more than {max_pixels:,} pixels.") from None
    except UnidentifiedImageError:
        raise ImageError("The file is not a JPEG, PNG, GIF or WebP image.") from None
    except (OSError, ValueError, SyntaxError, KeyError, EOFError) as e:
        raise ImageError(f"The image could not be read ({type(e).__name__}).") from None
    return Image(mimetype=mimetype, width=width, height=height, data=out.getvalue())


def save_as(image: PILImage.Image, out: io.BytesIO) -> None:
    """Write pixels only: no EXIF, GPS position, comments or ICC profile travel along."""
    fmt = image.format
    # Pillow writes what image.info holds (comment, exif, icc_profile): keep only transparency.
    image.info = {k: v for k, v in image.info.items() if k == "transparency"}
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
    elif fmt == "GIF":
        image.save(out, "GIF")
    elif fmt == "WEBP":
        image.save(out, "WEBP", quality=88)
    else:
        image.save(out, "PNG", optimize=True)


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
