"""Decode an uploaded image and write its pixels again, run as a process of its own.

``flaskr/images.py`` runs this file with a CPU-time and an address-space limit, so an image
that is cheap to send but dear to decode (a progressive JPEG whose scans repeat, a huge
WebP) costs at most those limits, and the worker that waits for it is free again within
about a second. It imports nothing from flaskr: it runs with ``python -I``, outside the app.

    python -I reencode.py CPU_SECONDS MEMORY_BYTES  < upload  > re-encoded image
"""

from __future__ import annotations

import io
import resource
import sys

#: Exit status for an image Pillow cannot read; stderr then holds the message for the user.
UNREADABLE = 2


def limit(cpu_seconds: int, memory_bytes: int) -> None:
    """The kernel stops this process (SIGXCPU, MemoryError) beyond these; nothing else can."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def reencode(data: bytes, formats: list[str]) -> bytes:
    """The first frame's pixels in the upload's own format: no EXIF, GPS position, comment or
    ICC profile travels along, and no later frame of an animation is ever decoded."""
    from PIL import Image  # here, so the app can import UNREADABLE without loading Pillow

    image = Image.open(io.BytesIO(data), formats=formats)
    image.load()
    # Pillow writes what image.info holds (comment, exif, icc_profile): keep only transparency.
    image.info = {k: v for k, v in image.info.items() if k == "transparency"}
    out = io.BytesIO()
    fmt = image.format
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=88, optimize=True)
    elif fmt == "GIF":
        image.save(out, "GIF")
    elif fmt == "WEBP":
        # method 0 of 0-6: half the CPU of the default 4, for a slightly larger file.
        image.save(out, "WEBP", quality=88, method=0)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def main() -> int:  # pragma: no cover - runs in the child; tests/test_images.py drives it
    cpu_seconds, memory_bytes = int(sys.argv[1]), int(sys.argv[2])
    formats = sys.argv[3].split(",")
    limit(cpu_seconds, memory_bytes)
    data = sys.stdin.buffer.read()
    try:
        out = reencode(data, formats)
    except (OSError, ValueError, SyntaxError, KeyError, EOFError) as e:
        print(f"The image could not be read ({type(e).__name__}).", file=sys.stderr)
        return UNREADABLE
    sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
