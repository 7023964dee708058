"""Rendered Markdown cannot run script: a corpus of known XSS payloads comes out inert."""

from html.parser import HTMLParser

import pytest
from markdown_it.parser_inline import ParserInline

from flaskr import rendering
from flaskr.rendering import (
    MAX_HTML_BYTES,
    MAX_TABLE_CELLS,
    MIN_HTML_BYTES,
    RenderTooCostly,
    html_limit,
    plain,
    render,
)
from toolkit.hostile import reference_links


def check_cost(text: str) -> int:
    """The size of the HTML ``text`` renders to, as the forms' render bounds it."""
    return len(render(text).encode())


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
    html = str(render(payload))
    audit = TagAudit()
    audit.feed(html)
    assert audit.problems == [], html


def test_safe_markdown_survives() -> None:
    html = str(render("**b** _i_ [l](https://example.com) ![p](https://example.com/p.png)"))
    assert "<strong>b</strong>" in html
    assert "<em>i</em>" in html
    assert 'href="https://example.com"' in html
    assert 'rel="nofollow noopener noreferrer"' in html
    assert '<img src="https://example.com/p.png" alt="p">' in html


def test_code_is_escaped_not_run() -> None:
    assert "&lt;script&gt;" in str(render("`<script>` in code is fine"))


def test_tables_and_strikethrough() -> None:
    html = str(render("| a | b |\n|---|---|\n| 1 | 2 |\n\n~~gone~~"))
    assert "<table>" in html and "<td>1</td>" in html
    assert "<s>gone</s>" in html


def test_reference_links_that_would_multiply_the_html_are_refused_before_rendering() -> None:
    text = reference_links(20_000, 9_000)  # 16.6 MB of HTML if rendered
    with pytest.raises(RenderTooCostly, match="more than 128 KB of HTML"):
        check_cost(text)


def test_html_is_bounded_relative_to_what_was_written() -> None:
    comment = reference_links(2_000, 1_000)  # 170 KB of HTML if rendered
    with pytest.raises(RenderTooCostly, match="more than 19 KB of HTML"):
        check_cost(comment)
    assert html_limit("a") == MIN_HTML_BYTES
    assert html_limit("a" * 2_000) == 20_000
    assert html_limit("a" * 20_000) == MAX_HTML_BYTES


def test_a_table_of_empty_cells_is_refused() -> None:
    # 100 header columns, then 9,000 one-cell rows: markdown-it fills in 65,536 empty cells.
    head = "|" + "a|" * 100 + "\n|" + "-|" * 100 + "\n"
    with pytest.raises(RenderTooCostly, match="at most 14,563 cells"):
        check_cost(head + "a\n" * ((20_000 - len(head)) // 2))


def test_a_render_past_its_cpu_budget_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A text within the size bounds whose render outlasts the budget (none at all here)."""
    table = "|a|b|\n|-|-|\n" + "|1|2|\n" * 1_000
    assert check_cost(table) > 0  # fine with the real budget
    monkeypatch.setattr(rendering, "MAX_RENDER_SECONDS", 0.0)
    with pytest.raises(RenderTooCostly, match="takes too long to render"):
        check_cost(table)


def test_ordinary_long_texts_pass_and_render_as_pages_do() -> None:
    prose = "Some *prose* with a [link](https://example.com) and `code`.\n\n" * 300
    table = "|a|b|\n|-|-|\n" + "|1|2|\n" * 1_000
    for text in (prose, table):
        assert check_cost(text) == len(rendering.clean(rendering._markdown.render(text)).encode())
    assert check_cost("") == 0


def test_html_lengthened_by_sanitising_counts_too() -> None:
    # Each empty link gains rel="nofollow noopener noreferrer": 5 characters, 51 bytes.
    with pytest.raises(RenderTooCostly, match="more than 48 KB of HTML"):
        check_cost("[](b)" * 1_000)


def test_a_table_of_too_many_cells_is_refused_before_it_is_built(monkeypatch) -> None:
    """markdown-it builds a table in one block step, which the deadline cannot interrupt."""
    built: list[int] = []
    table_rule = rendering._table

    def spy(state, start, end, silent):  # the original rule, noting each real build
        if not silent:
            built.append(start)
        return table_rule(state, start, end, silent)

    monkeypatch.setattr(rendering, "_table", spy)
    head = "|" + "a|" * 100 + "\n|" + "-|" * 100 + "\n"  # 100 columns, then 200 rows
    with pytest.raises(RenderTooCostly, match=f"at most {MAX_TABLE_CELLS:,} cells"):
        render(head + "a\n" * 200)
    assert built == []
    assert "<td>" in str(render("|a|b|\n|-|-|\n" + "|1|2|\n" * 500))  # built: 1,002 cells
    assert built


def test_a_long_paragraph_is_stopped_inside_its_block(monkeypatch) -> None:
    """One paragraph of 249,000 lines is one block step: its lines are checked too."""
    monkeypatch.setattr(rendering, "MAX_RENDER_SECONDS", 0.0)

    def inline_reached(*_args):
        raise AssertionError("the paragraph's block step ran to its end")

    monkeypatch.setattr(ParserInline, "parse", inline_reached)
    with pytest.raises(RenderTooCostly, match="takes too long to render"):
        render("a\n" * 249_000)


def test_plain_text_is_escaped_and_keeps_its_paragraphs() -> None:
    html = str(plain("**not bold** <script>x</script>\r\n\r\nsecond & last\n\n\n"))
    assert html == ("<p>**not bold** &lt;script&gt;x&lt;/script&gt;</p>\n<p>second &amp; last</p>")
