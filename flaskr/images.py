"""Uploaded images, served from the database.

Each is checked and re-encoded (no metadata) by Pillow in a limited child process.
"""

from __future__ import annotations

import hashlib
import subprocess  # runs our own re-encoder, never a shell  # nosec B404
import sys
from pathlib import Path

from flask import Blueprint, abort, current_app, request
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from flaskr.db import db
from flaskr.models import Image, Post
from flaskr.reencode import UNREADABLE

bp = Blueprint("images", __name__)

#: Pillow format name -> MIME type, for the formats we accept.
MB = 1024 * 1024
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}


REENCODE = str(Path(__file__).with_name("reencode.py"))


class ImageError(ValueError):
    """The upload is not an image we accept; the message tells the user why."""


def read_image(upload: FileStorage) -> Image:
    """Check an upload and return it re-encoded, without EXIF or other metadata.

    The worker only reads the upload's bytes, bounded in number. Everything Pillow does with
    them runs in a child process with a CPU and a memory limit (``flaskr/reencode.py``): the
    header checks (format, pixel count and, for a JPEG, its number of scans), refused before
    any pixel is decoded, and then the decoding. A file crafted so that even its header is
    dear to read costs at most those limits, and never the worker's own CPU."""
    limit = current_app.config["MAX_IMAGE_BYTES"]
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"The image is larger than {limit // (1024 * 1024)} MB.")
    if not data:
        raise ImageError("The image file is empty.")
    fmt, width, height, encoded = reencode(data)
    return Image(mimetype=FORMATS[fmt], width=width, height=height, data=encoded)


def check_quota(user_id: int, post_id: int | None) -> None:
    """Refuse another image from an account whose posts' images hold IMAGE_BYTES_PER_USER.

    The images of its other posts count (a post's own image is replaced); checked before the
    upload is decoded. Without it one account filled 49 MB of disk a minute within its CPU
    budget (the third outside review): the quota bounds what an account can store.
    """
    quota = current_app.config["IMAGE_BYTES_PER_USER"]
    stored = (
        db.session.scalar(
            select(func.coalesce(func.sum(func.length(Image.data)), 0))
            .join(Post, Post.id == Image.post_id)
            .where(Post.author_id == user_id, Post.id != (post_id or 0))
        )
        or 0
    )
    if stored >= quota:
        raise ImageError(
            f"Your posts' images already hold {stored // MB} MB, the most an account may "
            f"store ({quota // MB} MB): remove an image or a post first."
        )


def reencode(data: bytes) -> tuple[str, int, int, bytes]:
    """Check, decode and re-encode an upload in a limited child process.

    The child, ``flaskr/reencode.py``, has IMAGE_CPU_SECONDS of CPU time and
    IMAGE_MEMORY_BYTES of address space; beyond either the kernel stops it. Returns the
    format, width, height and the re-encoded bytes.
    """
    config = current_app.config
    cpu_seconds = config["IMAGE_CPU_SECONDS"]
    command = [
        sys.executable,
        "-I",  # isolated: no environment variables, no user site-packages, no current folder
        REENCODE,
        str(cpu_seconds),
        str(config["IMAGE_MEMORY_BYTES"]),
        ",".join(FORMATS),
        str(config["MAX_IMAGE_PIXELS"]),
        str(config["MAX_JPEG_SCANS"]),
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
    header, _, encoded = done.stdout.partition(b"\n")
    if done.returncode != 0 or not encoded:
        current_app.logger.warning(
            "image re-encoding stopped: exit %s, %s", done.returncode, done.stderr[-300:]
        )
        raise costly
    fmt, width, height = header.decode().split()
    return fmt, int(width), int(height), encoded


@bp.get("/<int:id>/image")
def image(id: int) -> Response:
    """Serve a post's image with a validator: browsers and proxies keep it, and ask again.

    `no-cache` (with the ETag, so a 304 answers a copy still right): a cache may keep the
    image but must check it each time, so an image changed or removed by a moderator goes at
    once, from nginx's micro-cache too. `max-age=3600` kept a removed post's image an hour.
    """
    row = db.session.execute(
        select(Image.id, Image.mimetype, Image.data).where(Image.post_id == id)
    ).first()
    if row is None:
        abort(404)
    response = current_app.response_class(row.data, mimetype=row.mimetype)
    # From the bytes themselves: SQLite gives a replaced image the id of the one it replaced.
    response.set_etag(hashlib.blake2b(row.data, digest_size=12).hexdigest())
    response.cache_control.public = True
    response.cache_control.no_cache = True
    response.headers["Content-Disposition"] = "inline"
    return response.make_conditional(request)
