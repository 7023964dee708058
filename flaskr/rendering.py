"""Markdown to safe HTML: markdown-it renders, nh3 (ammonia) removes anything that could run.

A body is rendered once, when it is written (``render``, from the forms), and its HTML is
stored beside it (``body_html``, migration 0010): pages show the stored HTML and never render.
That render is bounded: its HTML in bytes, absolutely and relative to what was written, a
table in cells, and its CPU time. Twenty kilobytes of ``[a]`` pointing at one long reference
would otherwise render to 16 MB, and a table whose rows are left empty to 65,536 cells.
``RENDERER`` names what made a stored HTML: ``flask init-db`` renders again the bodies a
different renderer made (flaskr/bodies.py)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterable
from contextvars import ContextVar
from importlib.metadata import version
from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_block.table import table as _table
from markupsafe import Markup

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

#: Raise when the rules above or markdown-it's options change what a body renders to.
RULES = 1
#: What made a stored HTML: these rules and the two libraries' versions. A body stored with
#: another is rendered again by ``flask init-db`` (flaskr/bodies.py).
RENDERER = f"{RULES}/markdown-it-py {version('markdown-it-py')}/nh3 {version('nh3')}"


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

    It is tried at every block and inline position, and at every line of a paragraph, and
    matches nothing, but stops a render that has used up its CPU time.
    """
    budget = _budget.get()
    if budget is not None:
        budget.check()
    return False


#: Cells a table may have: more could never fit in MAX_HTML_BYTES (each is at least
#: ``<td></td>``). markdown-it builds a whole table in one block step, so this is checked
#: before the table is built: the deadline above cannot interrupt it.
MAX_TABLE_CELLS = MAX_HTML_BYTES // len("<td></td>")


def _bounded_table(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """markdown-it's table rule, refusing a table of more than MAX_TABLE_CELLS first.

    The cells are counted from the delimiter row's columns and the lines up to the next blank
    one: never fewer than markdown-it makes, since it fills short rows in.
    """
    if silent or not _table(state, start, end, True):
        return _table(state, start, end, silent)
    delimiter = state.src[state.bMarks[start + 1] : state.eMarks[start + 1]]
    columns = sum(1 for cell in delimiter.split("|") if cell.strip())
    rows = 0
    while start + rows < end and not state.isEmpty(start + rows):
        rows += 1
    if columns * rows > MAX_TABLE_CELLS:
        raise RenderTooCostly(
            f"A table may have at most {MAX_TABLE_CELLS:,} cells: "
            "split it into smaller ones or leave fewer rows empty."
        )
    return _table(state, start, end, silent)


_markdown.block.ruler.at("table", _bounded_table)
# Also among the rules that may end a paragraph, a list, a quote or a reference, which try
# them at every line: a paragraph of many lines is one block step too.
_markdown.block.ruler.before(
    "table",
    "deadline",
    _past_deadline,
    {"alt": ["paragraph", "reference", "blockquote", "list"]},
)
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


def render(text: str) -> Markup:
    """Render a post or comment as pages show it, or raise RenderTooCostly saying why.

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
    if len(html.encode()) > limit:
        raise too_large
    return html


def plain(text: str) -> Markup:
    """``text`` shown as it was written, without Markdown: its paragraphs, escaped.

    For a body stored without its HTML (written by other means, or a render that a newer
    renderer refuses): showing it costs nothing and runs nothing."""
    paragraphs = (p.strip() for p in text.replace("\r\n", "\n").split("\n\n"))
    return Markup("\n").join(Markup("<p>%s</p>") % p for p in paragraphs if p)
