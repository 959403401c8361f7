"""Untrusted markdown becomes inert HTML (``frontend.markdown``)."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from frontend.markdown import render_markdown

DANGEROUS_TAGS = {"script", "iframe", "svg", "style", "object", "embed", "img", "form"}


class Elements(HTMLParser):
    """Every (tag, attributes) of a fragment, as a browser would build them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs) -> None:
        self.found.append((tag, dict(attrs)))


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        "[x](javascript:alert(1))",
        "[x](JaVaScRiPt:alert(1))",
        "[x](  javascript:alert(1))",
        '<a href="javascript:alert(1)">x</a>',
        "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "<svg onload=alert(1)>",
        '<iframe src="https://example.com"></iframe>',
        "```html\n<script>alert(1)</script>\n```",
        "<style>body{display:none}</style>",
    ],
)
def test_nothing_executable_survives(text):
    for tag, attrs in Elements(render_markdown(text)).found:
        assert tag not in DANGEROUS_TAGS
        assert not [name for name in attrs if name.startswith("on")]
        href = (attrs.get("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "data:", "vbscript:"))


def test_remote_images_are_placeholders_unless_allowed():
    text = "![chart](https://example.com/c.png)"
    assert "<img" not in render_markdown(text)
    assert "[image: chart]" in render_markdown(text)
    assert '<img src="https://example.com/c.png" alt="chart">' in render_markdown(
        text, allow_remote_images=True
    )


def test_links_open_safely_and_relative_links_lose_their_target():
    html = render_markdown("[a](https://example.com) [b](/admin/)")
    assert 'href="https://example.com"' in html and 'rel="noopener noreferrer nofollow"' in html
    assert 'href="/admin/"' not in html


def test_tex_is_kept_verbatim():
    html = render_markdown(r"Area $\pi r_1^2$ and $$\frac{a_1}{b_2}$$ cost $5 or $10.")
    assert r'<span class="math">$\pi r_1^2$</span>' in html
    assert r'<span class="math-display">$$\frac{a_1}{b_2}$$</span>' in html
    assert "cost $5 or $10." in html and "<em>" not in html


def test_code_is_highlighted_and_escaped():
    html = render_markdown('```python\nx = "<b>"\n```')
    assert '<span class="n">x</span>' in html and "&lt;b&gt;" in html and "<b>" not in html


def test_tables_lists_and_emphasis_render():
    html = render_markdown("**bold** *it*\n\n- one\n\n| a |\n|---|\n| 1 |")
    assert "<strong>bold</strong>" in html and "<li>one</li>" in html and "<td>1</td>" in html
