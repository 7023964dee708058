"""What hostile content costs the app, in CPU seconds of this process (or of the image
re-encoder it starts): the figures docs/security.md quotes. Prints one line per case.

    .venv/bin/python -m bench.hostile_costs
"""

from __future__ import annotations

import gzip
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from markdown_it import MarkdownIt
from PIL import Image, ImageFilter

from flaskr import rendering
from flaskr.rendering import RenderTooCostly, render
from toolkit.apps import make_app
from toolkit.hostile import reference_links
from toolkit.images import image_bytes

ROOT = Path(__file__).resolve().parent.parent


def markdown_cases() -> dict[str, str]:
    head = "|" + "a|" * 100 + "\n|" + "-|" * 100 + "\n"
    return {
        "20 KB of reference links": reference_links(20_000, 9_000),
        "2,000-character comment of reference links": reference_links(2_000, 1_000),
        "20 KB table, 100 columns, 9,000 one-cell rows": head + "a\n" * 9_000,
        "20 KB table, 2 columns, 3,300 rows": "|a|b|\n|-|-|\n" + "|a|b|\n" * 3_300,
        "19 KB of prose with links": "Some *prose*, a [link](https://example.com).\n\n" * 400,
        "498 KB paragraph of one-letter lines": "a\n" * 249_000,
        "14 KB of unclosed images (the audit's visitors' pages)": "![" * 7_000,
    }


#: markdown-it as flaskr configures it, without its bounds: what rendering costs unchecked.
UNCHECKED = MarkdownIt("commonmark", {"linkify": False}).enable(["table", "strikethrough"])


def feed_sizes() -> None:
    """The feed's bytes with twenty posts of each kind, whole and at gzip's level 1 (nginx's)."""
    from flaskr.feed import FEED_SIZE

    bodies = {
        "19 KB of links (the audit's)": "[a link](https://example.com/a/long/address) " * 420,
        "3.5 KB of prose": "Some *prose*, a [link](https://example.com) and `code`.\n\n" * 60,
    }
    for name, body in bodies.items():
        with tempfile.TemporaryDirectory() as tmp:
            app = make_app(Path(tmp), WTF_CSRF_ENABLED=False)
            writer = app.test_client()
            writer.post("/auth/login", data={"username": "test", "password": "test"})
            for n in range(FEED_SIZE):
                posted = writer.post("/create", data={"title": f"post {n}", "body": body})
                assert posted.status_code == 302, posted.text
            feed = app.test_client().get("/feed.atom").data
        print(f"feed      {FEED_SIZE} posts of {name}: {len(feed) // 1024} KB, "
              f"{len(gzip.compress(feed, 1)) // 1024} KB gzipped")  # fmt: skip


def photo(size: tuple[int, int], fmt: str) -> bytes:
    """A photo-like image: a gradient with blurred noise, dearer to encode than one colour."""
    w, h = size
    bands = (
        Image.linear_gradient("L").resize(size),
        Image.effect_noise(size, 60).filter(ImageFilter.GaussianBlur(3)),
        Image.effect_noise((w, h), 20),
    )
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, fmt, quality=90)
    return out.getvalue()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    for name, text in markdown_cases().items():
        start = time.thread_time()
        try:
            verdict = f"accepted, {len(render(text).encode()) // 1024} KB of HTML"
        except RenderTooCostly as e:
            verdict = "refused: " + str(e).split(":")[0].split(". ")[0]
        checked = time.thread_time() - start
        start = time.thread_time()
        unchecked = "reference" not in name and len(text) < 100_000
        html = rendering.clean(UNCHECKED.render(text)) if unchecked else None
        plain = "" if html is None else f"; unchecked render {time.thread_time() - start:.3f} s"
        print(f"markdown  {name}: {verdict} in {checked:.3f} s CPU{plain}")
    feed_sizes()
    reencoder = ROOT / "flaskr" / "reencode.py"
    for fmt in ("WEBP", "JPEG", "PNG", "GIF"):
        kinds = {"one colour": image_bytes(fmt, (4000, 3000))}
        if fmt in ("WEBP", "JPEG"):  # a photo-like PNG or GIF of 12 Mpx is over 5 MB
            kinds["photo-like"] = photo((4000, 3000), fmt)
        for kind, data in kinds.items():
            before = children_cpu()
            done = subprocess.run(  # noqa: S603 - our interpreter, our file
                [sys.executable, "-I", str(reencoder), "5", str(512 * 2**20), fmt,
                 "12000000", "32"],
                input=data, capture_output=True, check=True,
            )  # fmt: skip
            cpu = children_cpu() - before
            print(f"image     12 Mpx {fmt} {kind} ({len(data) // 1024} KB): re-encoded to "
                  f"{len(done.stdout) // 1024} KB in {cpu:.2f} s CPU (child included)")  # fmt: skip


if __name__ == "__main__":
    main()
