"""Untrusted markdown (model responses, imported prompts, guidelines) to safe HTML.

Two layers: markdown-it-py runs with raw HTML *off* (a ``<script>`` in a response is
shown as text), then nh3 keeps only an allow-list of tags, attributes, classes and
URL schemes (no event handlers, no ``javascript:`` links, no relative links into this
site). Remote images are replaced by a placeholder unless the project allows them.
TeX (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``) is kept verbatim instead of being
read as emphasis or escapes. Fenced code with a language is highlighted by Pygments.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml
from markdown_it.rules_inline import StateInline

try:  # Pygments comes with the dev tools; without it code is shown unhighlighted.
    from pygments import highlight as pygments_highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.token import STANDARD_TYPES
    from pygments.util import ClassNotFound
except ImportError:  # pragma: no cover
    pygments_highlight = None
    STANDARD_TYPES = {}

HIGHLIGHT_MAX_CHARS = 20_000
CACHE_MAX_CHARS = 8_000
TAGS = {
    "p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "span", "blockquote",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
    "table", "thead", "tbody", "tr", "th", "td",
}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
CLASSES = {"span": {"math", "math-display", "md-img-blocked"} | set(STANDARD_TYPES.values())}
MATH_DELIMITERS = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"))


def _cleaner(*, images: bool) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=TAGS | ({"img"} if images else set()),
        clean_content_tags={"script", "style"},
        attributes=ATTRIBUTES,
        allowed_classes=CLASSES,
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def _highlight(code: str, lang: str, _attrs: str) -> str:
    if not lang or pygments_highlight is None or len(code) > HIGHLIGHT_MAX_CHARS:
        return ""  # markdown-it escapes the code itself
    try:
        lexer = get_lexer_by_name(lang.split()[0])
    except ClassNotFound:
        return ""
    return pygments_highlight(code, lexer, HtmlFormatter(nowrap=True))


def _math_end(src: str, pos: int, maximum: int) -> int | None:
    """End (exclusive) of a single-dollar span at ``pos``: pandoc's rules, and (for
    prices such as "$5") no digit right after the opening dollar."""
    if pos + 1 >= maximum or src[pos + 1].isspace() or src[pos + 1].isdigit():
        return None
    j = pos + 1
    while True:
        j = src.find("$", j + 1, maximum)
        if j == -1:
            return None
        before_ok = not src[j - 1].isspace() and src[j - 1] != "\\"
        after_ok = j + 1 >= maximum or not src[j + 1].isdigit()
        if before_ok and after_ok:
            return j + 1


def _math_rule(state: StateInline, silent: bool) -> bool:
    src, pos, maximum = state.src, state.pos, state.posMax
    end, display = None, False
    for opening, closing in MATH_DELIMITERS:
        if src.startswith(opening, pos):
            found = src.find(closing, pos + len(opening), maximum)
            if found > pos + len(opening):
                end, display = found + len(closing), opening != "\\("
            break
    if end is None and src[pos] == "$" and not src.startswith("$$", pos):
        end = _math_end(src, pos, maximum)
    if end is None:
        return False
    if not silent:
        token = state.push("math", "", 0)
        token.content, token.info = src[pos:end], "display" if display else "inline"
    state.pos = end
    return True


def _render_math(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    css = "math-display" if token.info == "display" else "math"
    return f'<span class="{css}">{escapeHtml(token.content)}</span>'


def _render_blocked_image(self, tokens, idx, options, env) -> str:
    alt = self.renderInlineAsText(tokens[idx].children or [], options, env)
    return f'<span class="md-img-blocked">[image: {escapeHtml(alt or "no description")}]</span>'


@lru_cache(maxsize=2)
def _parser(*, images: bool) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.inline.ruler.before("escape", "math", _math_rule)
    md.add_render_rule("math", _render_math)
    if not images:
        md.add_render_rule("image", _render_blocked_image)
    return md


@lru_cache(maxsize=2)
def _sanitiser(*, images: bool) -> nh3.Cleaner:
    return _cleaner(images=images)


def render_markdown(text: str, *, allow_remote_images: bool = False) -> SafeString:
    """Markdown to sanitised HTML, safe to put in a page as is. Short texts are cached
    (a task's texts are rendered again when an annotator comes back to it)."""
    text = text or ""
    if len(text) > CACHE_MAX_CHARS:
        return _render(text, allow_remote_images)
    return _render_cached(text, allow_remote_images)


def _render(text: str, images: bool) -> SafeString:
    html = _parser(images=images).render(text)
    return mark_safe(_sanitiser(images=images).clean(html))


_render_cached = lru_cache(maxsize=512)(_render)
