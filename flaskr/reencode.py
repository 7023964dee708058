"""Check an uploaded image and write its pixels again, run as a process of its own.

``flaskr/images.py`` runs this file with a CPU-time and an address-space limit, and hands it
the upload's bytes untouched: every step Pillow takes through them happens here, under those
limits. A header that is cheap to send but dear to read (megabytes of fill bytes before a
JPEG's frame, hundreds of thousands of empty PNG chunks, a GIF comment of a million one-byte
blocks), like pixels that are dear to decode (a progressive JPEG whose scans repeat, a huge
WebP), costs at most those limits, and the worker that waits for it is free again within
about a second. It imports nothing from flaskr: it runs with ``python -I``, outside the app.

    python -I reencode.py CPU_SECONDS MEMORY_BYTES FORMATS MAX_PIXELS MAX_SCANS
        < upload  > "FORMAT WIDTH HEIGHT\\n" and the re-encoded image
"""

from __future__ import annotations

import io
import resource
import sys
import warnings

#: Exit status for an image refused or unreadable; stderr then holds the message for the user.
UNREADABLE = 2


class Refused(ValueError):
    """The image is not one we accept; the message tells the user why."""


def limit(cpu_seconds: int, memory_bytes: int) -> None:
    """The kernel stops this process (SIGXCPU, MemoryError) beyond these; nothing else can."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def jpeg_scans(data: bytes) -> int:
    """Count how many scans (SOS markers) a JPEG holds, at most.

    Each one makes the decoder go over every pixel again. Inside compressed data 0xFF is
    always escaped, so the marker's two bytes only appear where a scan starts (or inside a
    metadata segment: counting those too errs on the safe side).
    """
    return data.count(b"\xff\xda")


def reencode(
    data: bytes, formats: list[str], max_pixels: int, max_scans: int
) -> tuple[str, tuple[int, int], bytes]:
    """Give the image's format and size, and its first frame's pixels in that format.

    No EXIF, GPS position, comment or ICC profile travels along, and no later frame of an
    animation is ever decoded. What the pixels may cost is checked from the header before
    any is decoded: their number and, for a JPEG, its number of scans.
    """
    from PIL import Image, UnidentifiedImageError  # here: the app imports UNREADABLE alone

    Image.MAX_IMAGE_PIXELS = max_pixels  # this process's own: a warning past it, an error at 2x
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=formats)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(f"The image has more than {max_pixels:,} pixels.") from None
    except UnidentifiedImageError:
        raise Refused("The file is not a JPEG, PNG, GIF or WebP image.") from None
    fmt = image.format or ""
    if fmt == "JPEG" and jpeg_scans(data) > max_scans:
        raise Refused(f"The JPEG has more than {max_scans} progressive scans.")
    image.load()
    # Pillow writes what image.info holds (comment, exif, icc_profile): keep only transparency.
    image.info = {k: v for k, v in image.info.items() if k == "transparency"}
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
    elif fmt == "GIF":
        image.save(out, "GIF")
    elif fmt == "WEBP":
        # method 0 of 0-6: half the CPU of the default 4, for a slightly larger file.
        image.save(out, "WEBP", quality=88, method=0)
    else:
        image.save(out, "PNG")
    return fmt, image.size, out.getvalue()


def main() -> int:  # pragma: no cover - runs in the child; tests/test_images.py drives it
    cpu_seconds, memory_bytes = int(sys.argv[1]), int(sys.argv[2])
    formats = sys.argv[3].split(",")
    max_pixels, max_scans = int(sys.argv[4]), int(sys.argv[5])
    limit(cpu_seconds, memory_bytes)
    data = sys.stdin.buffer.read()
    try:
        fmt, (width, height), out = reencode(data, formats, max_pixels, max_scans)
    except Refused as e:
        print(e, file=sys.stderr)
        return UNREADABLE
    except (OSError, ValueError, SyntaxError, KeyError, EOFError) as e:
        print(f"The image could not be read ({type(e).__name__}).", file=sys.stderr)
        return UNREADABLE
    sys.stdout.buffer.write(f"{fmt} {width} {height}\n".encode() + out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
