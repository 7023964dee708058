"""Markdown to safe HTML: markdown-it renders, nh3 (ammonia) removes anything that could run.

What a body may cost is checked when it is written (``check_cost``, from the forms): its HTML
is bounded in bytes, absolutely and relative to what was written, and so is the CPU time its
rendering takes. Twenty kilobytes of ``[a]`` pointing at one long reference would otherwise
render to 16 MB, and a table whose rows are left empty to 65,536 cells."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from functools import wraps
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

from flaskr.bounded_cache import BoundedCache

_markdown = MarkdownIt("commonmark", {"linkify": False}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "td": {"align"},
    "th": {"align"},
}
#: No javascript:, data: or vbscript: URLs: a link or image can only go somewhere real.
ALLOWED_SCHEMES = {"http", "https", "mailto"}

#: Rendered bodies each process keeps (texts and their HTML, 4 MB whatever users post): the
#: same bodies are shown again and again.
RENDERED = BoundedCache(4 * 1024 * 1024)


def remembered(render: Callable[[str], Markup]) -> Callable[[str], Markup]:
    """``render``, answering from RENDERED the texts it has rendered before."""

    @wraps(render)
    def cached_render(text: str) -> Markup:
        html = RENDERED.get(text)
        if html is None:
            html = render(text)
            RENDERED.put(text, html)
        return html

    return cached_render


@remembered
def markdown(text: str) -> Markup:
    """Render a post or comment. Cached: the same bodies are shown again and again."""
    return clean(_markdown.render(text or ""))


def clean(html: str) -> Markup:
    """Keep only the tags, attributes and URL schemes allowed above."""
    safe = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="nofollow noopener noreferrer",
    )
    # Safe to mark: nh3 removed every tag, attribute and URL scheme not allowed above.
    return Markup(safe)  # noqa: S704  # nosec B704


#: HTML a body may render to: at most MAX_HTML_BYTES, and at most MAX_HTML_RATIO times what
#: was written (never less than MIN_HTML_BYTES, so a short table still fits). Prose renders
#: to about twice its size, a table of short cells to five or six times.
MAX_HTML_BYTES = 128 * 1024
MAX_HTML_RATIO = 10
MIN_HTML_BYTES = 4 * 1024
#: CPU time a body may take to render: well above what long prose or a large table takes
#: (docs/security.md has the measured costs, from `python -m bench.hostile_costs`).
MAX_RENDER_SECONDS = 0.4


class RenderTooCostly(ValueError):
    """The body would render to too much HTML or take too long; the message says which."""


class _Budget:
    """Track the CPU time left to a render.

    The clock is read every CLOCK_EVERY steps: reading it is a system call, dearer than a step.
    """

    CLOCK_EVERY = 64

    def __init__(self, seconds: float) -> None:
        self.deadline = time.thread_time() + seconds
        self.steps = 0

    def check(self) -> None:
        self.steps += 1
        if self.steps % self.CLOCK_EVERY == 0:
            self.check_now()

    def check_now(self) -> None:
        if time.thread_time() > self.deadline:
            raise RenderTooCostly(
                "This text takes too long to render. "
                "Shorten it or split its tables into smaller ones."
            )


_budget: ContextVar[_Budget | None] = ContextVar("markdown_budget", default=None)


def _past_deadline(*_state: Any) -> bool:
    """Stop a render that ran out of time: a markdown-it rule tried before all others.

    It is tried at every block and inline position and matches nothing, but stops a render
    that has used up its CPU time (only ``check_cost`` gives a render a budget; pages render
    as before).
    """
    budget = _budget.get()
    if budget is not None:
        budget.check()
    return False


_markdown.block.ruler.before("table", "deadline", _past_deadline)
_markdown.inline.ruler.before("text", "deadline", _past_deadline)


def html_limit(text: str) -> int:
    """The most HTML bytes ``text`` may render to."""
    return min(MAX_HTML_BYTES, max(MIN_HTML_BYTES, MAX_HTML_RATIO * len(text.encode())))


def _estimated_size(tokens: Iterable[Any]) -> int:
    """About how many bytes of HTML the tokens make, counted before making them."""
    size = 0
    for token in tokens:
        size += 2 + sum(len(str(value)) for value in token.attrs.values())
        if token.children:
            size += _estimated_size(token.children)
        elif token.type != "inline":
            size += len(token.content)
    return size


def check_cost(text: str) -> int:
    """Render ``text`` as a page would and return the HTML's size, or raise RenderTooCostly.

    A body whose HTML would be too large is refused from its parsed tokens, before any of
    that HTML is made."""
    limit = html_limit(text)
    too_large = RenderTooCostly(
        f"This text would make more than {limit // 1024} KB of HTML "
        f"(at most {MAX_HTML_RATIO} times its own size): use fewer links, images or table cells."
    )
    # A collection of the whole heap that happens to start during the render is not the
    # text's cost: without this, a large heap could make an innocent post "too slow". What the
    # render allocates meanwhile is bounded by the text's size.
    collecting = gc.isenabled()
    gc.disable()
    budget = _Budget(MAX_RENDER_SECONDS)
    reset = _budget.set(budget)
    try:
        env: dict[str, Any] = {}
        tokens = _markdown.parse(text, env)
        if _estimated_size(tokens) > limit:
            raise too_large
        html = clean(_markdown.renderer.render(tokens, _markdown.options, env))
        budget.check_now()
    finally:
        _budget.reset(reset)
        if collecting:
            gc.enable()
    size = len(html.encode())
    if size > limit:
        raise too_large
    return size
