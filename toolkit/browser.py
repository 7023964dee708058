"""A real browser for the end-to-end suite: Debian's Chromium driven by Playwright for Python,
started headless with a fresh profile and the flags that keep it off the closed network; a
watch on each page's console; pictures made with Pillow; where the screenshots go."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage
from PIL import ImageDraw, ImageOps
from playwright.sync_api import ConsoleMessage, Page, Playwright

from toolkit import ROOT

CHROMIUM = "/usr/bin/chromium"
#: From /work/shared/notes/browser.md. Playwright adds --headless itself (headless=True) and
#: --user-data-dir from launch_persistent_context's first argument.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
TIMEOUT_MS = 15_000


@dataclass
class Site:
    """A site the browser visits: its address (``http://127.0.0.1:PORT``) and environment."""

    base: str
    env: dict[str, str]

    def url(self, path: str) -> str:
        return self.base + path


class ConsoleWatch:
    """Collects what a page reports going wrong: console errors and warnings (Content
    Security Policy violations among them) and uncaught exceptions. Pages that answer an
    error status on purpose (a 404 page, a form sent back with 400) are declared first."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.expected: set[tuple[str, int]] = set()
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.problems.append(f"uncaught: {error}"))

    def expect_status(self, url: str, status: int) -> None:
        """The browser will log loading ``url`` with ``status`` as an error: that's fine."""
        self.expected.add((url, status))

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        if message.type not in ("error", "warning") and "Content Security Policy" not in text:
            return
        url = message.location.get("url", "")
        for expected_url, status in self.expected:
            failed_load = f"the server responded with a status of {status} "
            if url.split("#")[0] == expected_url and failed_load in text:
                return
        self.problems.append(f"{message.type}: {text} ({url})")


@contextmanager
def chromium(playwright: Playwright, profile: Path, **options: Any) -> Iterator[Page]:
    """One headless Chromium with an empty profile in ``profile``, closed however the block
    ends; yields its first tab. ``options`` are Playwright's context options."""
    profile.mkdir(parents=True, exist_ok=False)  # fresh: never a previous run's profile
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=CHROMIUM_FLAGS,
        **{**DESKTOP, **options},
    )
    try:
        context.set_default_timeout(TIMEOUT_MS)
        yield context.pages[0] if context.pages else context.new_page()
    finally:
        context.close()


def screenshot_dir(fallback: Path) -> Path:
    """Where screenshots go: ``FLASKR_SCREENSHOTS=1`` means docs/screenshots (what the README
    shows, refreshed by scripts/screenshots); another value is a folder to write them to (a CI
    artifact); unset, ``fallback``, a temporary folder, so a test run leaves the tree clean."""
    value = os.environ.get("FLASKR_SCREENSHOTS", "")
    if value == "1":
        folder = ROOT / "docs" / "screenshots"
    elif value and value != "0":
        folder = Path(value)
    else:
        folder = fallback
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def writes_docs() -> bool:
    return os.environ.get("FLASKR_SCREENSHOTS", "") == "1"


def picture(
    size: tuple[int, int] = (1200, 600),
    sky: tuple[str, str] = ("#1d3557", "#f4a261"),
    land: tuple[str, str] = ("#264653", "#2a9d8f"),
) -> bytes:
    """A small landscape PNG (a gradient sky, a sun, two hills): something worth looking at
    in a screenshot, the same bytes every run."""
    width, height = size
    gradient = PILImage.linear_gradient("L").resize((width, height))
    image = ImageOps.colorize(gradient, black=sky[0], white=sky[1]).convert("RGB")
    draw = ImageDraw.Draw(image)
    sun = (int(width * 0.68), int(height * 0.52), int(height * 0.16))
    draw.ellipse([sun[0] - sun[2], sun[1] - sun[2], sun[0] + sun[2], sun[1] + sun[2]],
                 fill="#ffd166")  # fmt: skip
    draw.polygon([(0, height), (0, int(height * 0.62)), (int(width * 0.3), int(height * 0.48)),
                  (int(width * 0.62), int(height * 0.7)), (width, int(height * 0.58)),
                  (width, height)], fill=land[0])  # fmt: skip
    draw.polygon([(0, height), (0, int(height * 0.82)), (int(width * 0.45), int(height * 0.72)),
                  (width, int(height * 0.86)), (width, height)], fill=land[1])  # fmt: skip
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (0: no sideways scrolling).
    Measured against the emulated screen, not ``innerWidth``: a mobile browser widens its
    layout viewport (and zooms out) to fit content that is too wide, so ``innerWidth`` grows
    with the very overflow being looked for."""
    viewport = page.viewport_size
    assert viewport is not None
    scroll_width = page.evaluate("() => document.scrollingElement.scrollWidth")
    return max(0, scroll_width - viewport["width"])


def focus_by_tab(page: Page, selector: str, limit: int = 30) -> int:
    """Press Tab until the element matching ``selector`` has the focus, as a keyboard user
    would; returns the number of presses. Fails after ``limit`` presses."""
    target = page.locator(selector)
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return presses
    raise AssertionError(f"Tab never reached {selector} in {limit} presses")


def focus_outline(page: Page) -> str:
    """The computed outline of the focused element: 'none' would hide where the keyboard is."""
    return page.evaluate(
        "() => { const s = getComputedStyle(document.activeElement);"
        " return `${s.outlineStyle} ${s.outlineWidth}`; }"
    )
