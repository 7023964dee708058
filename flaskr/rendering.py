"""Markdown to safe HTML: markdown-it renders, nh3 (ammonia) removes anything that could run."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

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
    """Render a post or comment."""
    html = _markdown.render(text or "")
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_SCHEMES,
        link_rel="nofollow noopener noreferrer",
    )
    # Safe to mark: nh3 removed every tag, attribute and URL scheme not allowed above.
    return Markup(clean)  # noqa: S704  # nosec B704
