"""Rendered Markdown cannot run script: a corpus of known XSS payloads comes out inert."""

from html.parser import HTMLParser

import pytest

from flaskr.rendering import RENDERED, markdown

XSS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    '<img src=x onerror="alert(1)">',
    "<img src=x onerror=alert(1)//",
    '<svg onload="alert(1)"><circle r="1"/></svg>',
    "<svg><script>alert(1)</script></svg>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href="&#106;avascript:alert(1)">x</a>',
    '<a href="  javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    '<a href="vbscript:msgbox(1)">x</a>',
    '<iframe src="https://evil.example"></iframe>',
    '<object data="x.swf"></object><embed src="x.swf">',
    '<form action="https://evil.example"><input name="p"></form>',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<p onclick="alert(1)">click</p>',
    '<body onload="alert(1)">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="https://evil.example/">',
    '<link rel="stylesheet" href="https://evil.example/x.css">',
    "<details open ontoggle=alert(1)>",
    '"><script>alert(1)</script>',
    "`<script>` in code is fine",
]

FORBIDDEN_TAGS = {
    "script", "iframe", "object", "embed", "form", "input", "style", "meta", "base", "link",
    "svg", "math", "body", "details", "noscript",
}  # fmt: skip


class TagAudit(HTMLParser):
    """Collects what a browser would treat as markup: tags, attributes and URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in FORBIDDEN_TAGS:
            self.problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"{tag} {name}=")
            if name in ("href", "src") and value is not None:
                scheme = value.strip().split(":", 1)[0].lower() if ":" in value else ""
                if scheme not in ("", "http", "https", "mailto"):
                    self.problems.append(f"{tag} {name}={value}")


@pytest.mark.parametrize("payload", XSS)
def test_xss_payloads_come_out_inert(payload: str) -> None:
    html = str(markdown(payload))
    audit = TagAudit()
    audit.feed(html)
    assert audit.problems == [], html


def test_safe_markdown_survives() -> None:
    html = str(markdown("**b** _i_ [l](https://example.com) ![p](https://example.com/p.png)"))
    assert "<strong>b</strong>" in html
    assert "<em>i</em>" in html
    assert 'href="https://example.com"' in html
    assert 'rel="nofollow noopener noreferrer"' in html
    assert '<img src="https://example.com/p.png" alt="p">' in html


def test_code_is_escaped_not_run() -> None:
    assert "&lt;script&gt;" in str(markdown("`<script>` in code is fine"))


def test_tables_and_strikethrough() -> None:
    html = str(markdown("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~"))
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>gone</s>" in html


def test_rendered_bodies_kept_are_bounded_in_bytes() -> None:
    for i in range(200):
        markdown(f"{i} " + "[a] " * 2_000 + "\n\n[a]: https://example.com/" + "x" * 500)
    assert 0 < RENDERED.bytes <= RENDERED.max_bytes
    assert markdown("*kept*") is markdown("*kept*")
